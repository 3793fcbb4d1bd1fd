import Crypto

/// The guest owner's side of an SEV launch session (and the sending firmware's side of a migration):
/// the 128-byte SESSION buffer that carries the transport keys to the firmware, wrapped under keys
/// derived from an ECDH agreement with the platform's PDH.
///
/// `Z = ECDH(own key, peer PDH)`; `master = KDF(Z, "sev-master-secret", context: nonce)`;
/// `KEK = KDF(master, "sev-kek")`, `KIK = KDF(master, "sev-kik")`; SESSION = `nonce[16] ||
/// AES-128-CTR(KEK, wrap_iv, TEK || TIK)[32] || wrap_iv[16] || HMAC-SHA256(KIK, wrapped)[32] ||
/// HMAC-SHA256(TIK, policy LE32)[32]`.
public struct LaunchSession: Equatable, Sendable {
    public static let size = 128

    public var tek: [UInt8]
    public var tik: [UInt8]
    public var blob: [UInt8]

    /// Builds a session for `policy` between `own` and the platform whose PDH public key is `pdh`.
    public static func create(own: KeyPair, pdh: [UInt8], policy: UInt32, rng: inout SeededGenerator) -> LaunchSession? {
        guard let z = own.sharedSecret(with: pdh) else { return nil }
        let nonce = rng.bytes(16), tek = rng.bytes(16), tik = rng.bytes(16), iv = rng.bytes(16)
        let (kek, kik) = transportWrappingKeys(z: z, nonce: nonce)
        let wrapped = AESCTR.apply(key: kek, iv: iv, tek + tik)
        let wrapMAC = hmac(kik, wrapped)
        let policyMAC = hmac(tik, SEVKDF.le32(policy))
        return LaunchSession(tek: tek, tik: tik, blob: nonce + wrapped + iv + wrapMAC + policyMAC)
    }

    /// What the firmware does with a SESSION buffer: derive the wrapping keys from `z`, check the wrap
    /// MAC, unwrap TEK and TIK, check the policy MAC.
    public enum OpenError: Error, Equatable { case wrapMAC, policyMAC }

    public static func open(blob: [UInt8], z: [UInt8], policy: UInt32) -> Result<(tek: [UInt8], tik: [UInt8]), OpenError> {
        let nonce = Array(blob[0..<16]), wrapped = Array(blob[16..<48]), iv = Array(blob[48..<64])
        let wrapMAC = Array(blob[64..<96]), policyMAC = Array(blob[96..<128])
        let (kek, kik) = transportWrappingKeys(z: z, nonce: nonce)
        guard hmac(kik, wrapped) == wrapMAC else { return .failure(.wrapMAC) }
        let keys = AESCTR.apply(key: kek, iv: iv, wrapped)
        let tek = Array(keys[0..<16]), tik = Array(keys[16..<32])
        guard hmac(tik, SEVKDF.le32(policy)) == policyMAC else { return .failure(.policyMAC) }
        return .success((tek, tik))
    }

    static func transportWrappingKeys(z: [UInt8], nonce: [UInt8]) -> (kek: [UInt8], kik: [UInt8]) {
        let master = SEVKDF.derive(key: z, length: 16, label: "sev-master-secret", context: nonce)
        return (SEVKDF.derive(key: master, length: 16, label: "sev-kek"), SEVKDF.derive(key: master, length: 16, label: "sev-kik"))
    }

    public static func sha256(_ data: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: data)) }

    static func hmac(_ key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
    }
}
