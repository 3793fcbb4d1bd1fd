import Crypto

/// The launch digest the firmware keeps while LAUNCH_UPDATE_DATA measures a guest: SHA-256 over every
/// measured byte, in order, taken a piece at a time (so nothing holds the image whole).
public struct LaunchDigest: Sendable {
    private var hash = SHA256()

    public init() {}

    /// Adds measured bytes.
    public mutating func update(_ bytes: [UInt8]) { hash.update(data: bytes) }

    /// The 32-byte digest of everything added.
    public func finalize() -> [UInt8] { Array(hash.finalize()) }
}
