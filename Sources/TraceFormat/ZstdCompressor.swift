import CZstd

/// An owning wrapper around a reusable `ZSTD_CCtx`.
public final class ZstdCompressor {
    private let cctx: OpaquePointer
    /// The compression level (1-19).
    public let level: Int32

    /// Creates a compressor; the corresponding C function is `ZSTD_createCCtx`.
    public init(level: Int32 = 3) {
        guard let c = ZSTD_createCCtx() else { fatalError("ZSTD_createCCtx failed: out of memory") }
        cctx = c
        self.level = level
    }

    deinit { ZSTD_freeCCtx(cctx) }

    /// The largest frame zstd makes of `count` bytes; the corresponding C function is `ZSTD_compressBound`.
    public static func bound(_ count: Int) -> Int { ZSTD_compressBound(count) }

    /// Compresses `input` into one zstd frame at ``level`` or the `level` given; the corresponding C
    /// function is `ZSTD_compressCCtx`.
    public func compress(_ input: [UInt8], level: Int32? = nil) throws(ZstdError) -> [UInt8] {
        let bound = ZSTD_compressBound(input.count)
        var out = [UInt8](repeating: 0, count: bound)
        let cctx = self.cctx, level = level ?? self.level
        let rc = out.withUnsafeMutableBytes { dst in
            input.withUnsafeBytes { src in
                ZSTD_compressCCtx(cctx, dst.baseAddress, dst.count, src.baseAddress, src.count, level)
            }
        }
        let n = try ZstdError.check(rc)
        out.removeSubrange(n...)
        return out
    }
}
