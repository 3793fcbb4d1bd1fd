import Foundation
import FuzzTargets

/// libFuzzer's entry for callers that own main(); linked from libclang_rt.fuzzer by -sanitize=fuzzer.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// The target this process fuzzes, from FUZZ_TARGET (scenario, bundle or analyzer).
nonisolated(unsafe) var selected = FuzzTarget.scenario

/// SwiftPM links an executable's main to `<module>_main`; this one hands the process to libFuzzer, or
/// with `--write-seeds DIR ROOT` writes the seed corpus made from ROOT/Traces into DIR.
@_cdecl("fuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    let name = ProcessInfo.processInfo.environment["FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        FileHandle.standardError.write(Data("set FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
        return 2
    }
    selected = target
    return target.main(argc, argv) { argc, argv in
        LLVMFuzzerRunDriver(argc, argv) { data, size in
            selected.run(UnsafeRawBufferPointer(start: data, count: size))
            return 0
        }
    }
}
