import CAESNI

/// An AES-128 memory-encryption key (a VEK, or the host's SME key), expanded once.
public final class EncryptionKey {
    /// The key bytes (kept for migration and tests; the hardware never exposes them).
    public let bytes: [UInt8]
    var expanded = caesni_key128()

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 16, "AES-128 keys are 16 bytes")
        self.bytes = bytes
        bytes.withUnsafeBufferPointer { caesni_expand128($0.baseAddress, &expanded) }
    }

    /// Encrypts one block in place.
    @inline(__always)
    func encrypt(_ block: UnsafeMutablePointer<UInt8>) {
        withUnsafePointer(to: &expanded) { caesni_encrypt_block($0, block, block) }
    }

    /// Decrypts one block in place.
    @inline(__always)
    func decrypt(_ block: UnsafeMutablePointer<UInt8>) {
        withUnsafePointer(to: &expanded) { caesni_decrypt_block($0, block, block) }
    }

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
