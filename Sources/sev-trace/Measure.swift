import ArgumentParser
import SEVMachine

/// Parses numbers written in decimal or with a 0x prefix.
struct FlexibleNumber: ExpressibleByArgument {
    let value: UInt64

    init?(argument: String) {
        let s = argument.lowercased()
        guard let v = s.hasPrefix("0x") ? UInt64(s.dropFirst(2), radix: 16) : UInt64(s) else { return nil }
        value = v
    }
}

/// Hex arguments.
enum HexArgument {
    static func bytes(_ s: String, count: Int, name: String) throws -> [UInt8] {
        let digits = Array(s.lowercased().hasPrefix("0x") ? String(s.dropFirst(2)) : s)
        guard digits.count == 2 * count else {
            throw InputError(description: "--\(name) takes \(count) bytes (\(2 * count) hex digits), got \(digits.count) digits")
        }
        return try stride(from: 0, to: digits.count, by: 2).map {
            guard let b = UInt8(String(digits[$0...$0 + 1]), radix: 16) else {
                throw InputError(description: "--\(name): '\(String(digits[$0...$0 + 1]))' is not hex")
            }
            return b
        }
    }

    static func string(_ bytes: [UInt8]) -> String { bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }
}

struct Measure: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compute an SEV launch measurement, as a guest owner checks it.",
        discussion: "MEASURE = HMAC-SHA256(TIK, 0x04 || API_MAJOR || API_MINOR || BUILD || POLICY (LE32) || DIGEST || MNONCE); firmware older than API 0.17 omits the 0x04 || version prefix. Prints 32 bytes as lowercase hex.")

    @Option(help: "Firmware API major version.") var apiMajor: FlexibleNumber
    @Option(help: "Firmware API minor version.") var apiMinor: FlexibleNumber
    @Option(help: "Firmware build.") var build: FlexibleNumber
    @Option(help: "Guest policy.") var policy: FlexibleNumber
    @Option(help: "SHA-256 launch digest (64 hex digits).") var digest: String
    @Option(help: "Firmware nonce from LAUNCH_MEASURE (32 hex digits).") var mnonce: String
    @Option(help: "Transport integrity key (32 hex digits).") var tik: String

    func run() throws {
        for (name, v, max) in [("api-major", apiMajor.value, 255), ("api-minor", apiMinor.value, 255),
                               ("build", build.value, 255), ("policy", policy.value, UInt64(UInt32.max))] as [(String, UInt64, UInt64)] {
            guard v <= max else { throw InputError(description: "--\(name) \(v) is out of range (at most \(max))") }
        }
        let m = LaunchMeasurement.compute(
            apiMajor: UInt8(apiMajor.value), apiMinor: UInt8(apiMinor.value), build: UInt8(build.value),
            policy: UInt32(policy.value), digest: try HexArgument.bytes(digest, count: 32, name: "digest"),
            mnonce: try HexArgument.bytes(mnonce, count: 16, name: "mnonce"), tik: try HexArgument.bytes(tik, count: 16, name: "tik"))
        Console.line(HexArgument.string(m))
    }
}
