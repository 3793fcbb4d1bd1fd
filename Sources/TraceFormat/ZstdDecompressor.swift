import CZstd

/// An owning wrapper around a reusable `ZSTD_DCtx`.
public final class ZstdDecompressor {
    private let dctx: OpaquePointer

    /// Creates a decompressor; the corresponding C function is `ZSTD_createDCtx`.
    public init() {
        guard let d = ZSTD_createDCtx() else { fatalError("ZSTD_createDCtx failed: out of memory") }
        dctx = d
    }

    deinit { ZSTD_freeDCtx(dctx) }

    /// Decompresses one frame whose content is exactly `expectedSize` bytes.
    ///
    /// - Throws: ``ZstdError`` when the frame is corrupt or its size differs.
    ///   The corresponding C function is `ZSTD_decompressDCtx`.
    public func decompress(_ input: [UInt8], expectedSize: Int) throws(ZstdError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: expectedSize + 1)
        let dctx = self.dctx
        let rc = out.withUnsafeMutableBytes { dst in
            input.withUnsafeBytes { src in
                ZSTD_decompressDCtx(dctx, dst.baseAddress, dst.count, src.baseAddress, src.count)
            }
        }
        let n = try ZstdError.check(rc)
        guard n == expectedSize else {
            throw ZstdError(name: "frame holds \(n) bytes, header says \(expectedSize)")
        }
        out.removeLast()
        return out
    }
}
