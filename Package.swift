// swift-tools-version:6.1
import PackageDescription

/// The simulator and the analyzer touch class-held arrays on every event; runtime exclusivity checks on
/// those accesses cost a quarter of release time. Debug builds (and so the tests) keep the checks.
let hotPathSettings: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "sev-trace",
    products: [
        .executable(name: "sev-trace", targets: ["sev-trace"]),
        .library(name: "TraceFormat", targets: ["TraceFormat"]),
        .library(name: "SEVMachine", targets: ["SEVMachine"]),
        .library(name: "Scenario", targets: ["Scenario"]),
        .library(name: "Analyzer", targets: ["Analyzer"]),
        .library(name: "Query", targets: ["Query"]),
        /// The loadable SQLite extension (`libsevtrace.so`): the trace's tables in the sqlite3 shell and Python.
        .library(name: "sevtrace", type: .dynamic, targets: ["SQLiteExtension"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/attaswift/BigInt", from: "6.0.1"),
    ],
    targets: [
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .target(name: "CAESNI"),
        .target(name: "CFileSystem"),
        .target(name: "TraceFormat", dependencies: ["CZstd", "CSQLite", "CFileSystem"], swiftSettings: hotPathSettings),
        .target(name: "SEVMachine", dependencies: [
            "TraceFormat", "CAESNI",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "BigInt", package: "BigInt"),
        ], swiftSettings: hotPathSettings),
        .target(name: "Scenario", dependencies: ["SEVMachine", "TraceFormat"]),
        .target(name: "Analyzer", dependencies: ["TraceFormat"], swiftSettings: hotPathSettings),
        .target(name: "Query", dependencies: ["TraceFormat", "CSQLite", "Analyzer", "Scenario"]),
        .target(name: "SQLiteExtension", dependencies: ["Query", "TraceFormat", "CSQLite"]),
        .target(name: "TestSupport", path: "Sources/TestSupport"),
        .target(name: "FuzzTargets", dependencies: ["Scenario", "SEVMachine", "TraceFormat", "Analyzer"]),
        .executableTarget(name: "sev-trace", dependencies: [
            "TraceFormat", "SEVMachine", "Scenario", "Analyzer", "Query",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "TraceFormatTests", dependencies: ["TraceFormat", "TestSupport"]),
        .testTarget(name: "SEVMachineTests", dependencies: ["SEVMachine", "CAESNI",
            .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "ScenarioTests", dependencies: ["Scenario", "SEVMachine", "TraceFormat"]),
        .testTarget(name: "AnalyzerTests", dependencies: ["Analyzer", "Scenario", "TraceFormat"]),
        .testTarget(name: "QueryTests", dependencies: ["Query", "Scenario", "Analyzer", "TraceFormat", "TestSupport"]),
        .testTarget(name: "EndToEndTests", dependencies: ["Scenario", "Analyzer", "TraceFormat", "TestSupport"]),
        .testTarget(name: "FuzzTargetsTests", dependencies: ["FuzzTargets"]),
    ]
)

// `Fuzz/run` builds the libFuzzer driver with SEV_TRACE_FUZZ=1 (and -sanitize=fuzzer); ordinary builds
// and the tests never see it, since it needs libFuzzer to link.
if Context.environment["SEV_TRACE_FUZZ"] != nil {
    package.targets.append(.executableTarget(
        name: "fuzz", dependencies: ["FuzzTargets"], path: "Fuzz/driver",
        swiftSettings: [.unsafeFlags(["-parse-as-library"])], linkerSettings: [.unsafeFlags(["-use-ld=lld"])]))
}
