import CZstd

/// A failure reported by libzstd.
public struct ZstdError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The libzstd return code.
    public let code: Int
    /// libzstd's name for the error.
    public let name: String

    init(code: Int) {
        self.code = code
        self.name = String(cString: ZSTD_getErrorName(code))
    }

    init(name: String) {
        self.code = 0
        self.name = name
    }

    public var description: String { "zstd: \(name)" }

    /// Throws when `rc` is a libzstd error code; returns it otherwise.
    @discardableResult
    static func check(_ rc: Int) throws(ZstdError) -> Int {
        if ZSTD_isError(rc) != 0 { throw ZstdError(code: rc) }
        return rc
    }
}
