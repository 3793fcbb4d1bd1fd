/// AES-128 in counter mode as OpenSSL does it (the SEV API's transport encryption): the 16-byte IV is
/// a big-endian 128-bit counter incremented per block.
public enum AESCTR {
    /// Encrypts or decrypts (the same operation) `data`.
    public static func apply(key: [UInt8], iv: [UInt8], _ data: [UInt8]) -> [UInt8] {
        precondition(iv.count == 16, "the IV is one block")
        let k = EncryptionKey(bytes: key)
        var counter = iv
        var out = data
        var offset = 0
        while offset < data.count {
            let stream = k.encryptBlock(counter)
            for i in 0..<min(16, data.count - offset) { out[offset + i] ^= stream[i] }
            offset += 16
            var j = 15
            while j >= 0 {
                counter[j] &+= 1
                if counter[j] != 0 { break }
                j -= 1
            }
        }
        return out
    }
}
