import Crypto

/// The key derivation of the SEV API: NIST SP 800-108 in counter mode with HMAC-SHA256 as the PRF.
/// Block `i` (from 1) is `HMAC(key, LE32(i) || label || 0x00 || context || LE32(length in bits))`.
public enum SEVKDF {
    /// Derives `length` bytes from `key`.
    public static func derive(key: [UInt8], length: Int, label: String, context: [UInt8] = []) -> [UInt8] {
        let k = SymmetricKey(data: key)
        var out: [UInt8] = []
        var i: UInt32 = 1
        while out.count < length {
            var message = le32(i)
            message += Array(label.utf8)
            message.append(0)
            message += context
            message += le32(UInt32(length * 8))
            out += Array(HMAC<SHA256>.authenticationCode(for: message, using: k))
            i += 1
        }
        return Array(out.prefix(length))
    }

    static func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
}
