import CAESNI

/// An AES-128 memory-encryption key (a VEK, or the host's SME key), expanded once.
public final class EncryptionKey {
    /// The key bytes (kept for migration and tests; the hardware never exposes them).
    public let bytes: [UInt8]
    /// The expanded key, allocated once at an address that does not move while the key lives, so that
    /// the memory path can hold it as a ``KeySchedule`` without reference counting.
    private let expanded: UnsafeMutablePointer<caesni_key128>

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 16, "AES-128 keys are 16 bytes")
        self.bytes = bytes
        expanded = .allocate(capacity: 1)
        expanded.initialize(to: caesni_key128())
        bytes.withUnsafeBufferPointer { caesni_expand128($0.baseAddress, expanded) }
    }

    deinit { expanded.deallocate() }

    /// The key as the memory path passes it.
    @inline(__always)
    var schedule: KeySchedule { KeySchedule(expanded: expanded, owner: self) }

    /// Encrypts one block in place.
    @inline(__always)
    func encrypt(_ block: UnsafeMutablePointer<UInt8>) { schedule.encrypt(block) }

    /// Decrypts one block in place.
    @inline(__always)
    func decrypt(_ block: UnsafeMutablePointer<UInt8>) { schedule.decrypt(block) }

    /// AES-128 of one 16-byte block (for tests against published vectors).
    public func encryptBlock(_ block: [UInt8]) -> [UInt8] {
        var b = block
        b.withUnsafeMutableBufferPointer { encrypt($0.baseAddress!) }
        return b
    }

    /// AES-128 inverse of one 16-byte block.
    public func decryptBlock(_ block: [UInt8]) -> [UInt8] {
        var b = block
        b.withUnsafeMutableBufferPointer { decrypt($0.baseAddress!) }
        return b
    }
}
