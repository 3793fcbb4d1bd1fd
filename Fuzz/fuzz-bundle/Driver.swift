import FuzzTargets
import Foundation

/// libFuzzer's entry for callers that own main(); linked from libclang_rt.fuzzer by -sanitize=fuzzer.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// SwiftPM links an executable's main to `<module>_main`; this one hands the process to libFuzzer,
/// or with `--write-seeds DIR ROOT` writes the seed corpus made from ROOT/Traces into DIR.
@_cdecl("fuzz_bundle_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    FuzzTarget.bundle.main(argc, argv) { argc, argv in
        LLVMFuzzerRunDriver(argc, argv) { data, size in
            FuzzTarget.bundle.run(UnsafeRawBufferPointer(start: data, count: size))
            return 0
        }
    }
}
