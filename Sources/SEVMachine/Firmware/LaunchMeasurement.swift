import Crypto

/// The launch measurement of the SEV API (§6.5.1):
/// `HMAC-SHA256(TIK, 0x04 || API_MAJOR || API_MINOR || BUILD || POLICY (LE32) || GCTX.LD || MNONCE)`;
/// firmware older than API 0.17 omits the `0x04 || version` prefix.
public enum LaunchMeasurement {
    /// Computes the 32-byte measurement.
    public static func compute(apiMajor: UInt8, apiMinor: UInt8, build: UInt8, policy: UInt32, digest: [UInt8],
                               mnonce: [UInt8], tik: [UInt8]) -> [UInt8] {
        var message: [UInt8] = []
        if (apiMajor, apiMinor) >= (0, 17) { message += [0x04, apiMajor, apiMinor, build] }
        message += withUnsafeBytes(of: policy.littleEndian) { Array($0) }
        message += digest
        message += mnonce
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: tik))
        return Array(mac)
    }
}
