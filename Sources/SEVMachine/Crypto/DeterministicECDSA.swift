import BigInt
import Crypto
import Foundation

/// ECDSA on P-384 over a SHA-256 digest (the SEV API's ECDSA-SHA256 with P-384 keys), with the nonce
/// derived from the key and the digest (in the spirit of RFC 6979), so that the same key signs the same
/// message identically in every run, as the simulator's determinism requires.
///
/// The point multiplication `k·G` is done by swift-crypto's ECDH (`k` as a private key, the generator as
/// the peer's public key, the shared secret is the x-coordinate); the arithmetic modulo the group order
/// by BigInt. Signatures verify with swift-crypto's `P384.Signing` (the tests check that).
public enum DeterministicECDSA {
    /// The order of the P-384 group.
    static let n = BigUInt("ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973", radix: 16)!
    /// The P-384 generator, uncompressed (x963).
    static let generator: [UInt8] = [0x04] + hexBytes(
        "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7"
        + "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f")

    static func hexBytes(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            out.append(UInt8(s[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    /// Big-endian bytes of `v`, left-padded to `count`.
    static func bytes(_ v: BigUInt, count: Int) -> [UInt8] {
        let raw = Array(v.serialize())
        return [UInt8](repeating: 0, count: max(0, count - raw.count)) + raw.suffix(count)
    }

    /// Signs `digest` (32 bytes) with the private scalar `d` (48 bytes, big-endian); returns (r, s) as
    /// 48-byte big-endian values.
    public static func sign(digest: [UInt8], privateKey d: [UInt8]) -> (r: [UInt8], s: [UInt8]) {
        let dInt = BigUInt(Data(d))
        let z = BigUInt(Data(digest))  // a 256-bit digest is shorter than n: no truncation
        let g = try! P384.KeyAgreement.PublicKey(x963Representation: generator)
        var counter: UInt32 = 0
        while true {
            var seed = d + digest
            seed += withUnsafeBytes(of: counter.bigEndian) { Array($0) }
            let mac = HMAC<SHA384>.authenticationCode(for: seed, using: SymmetricKey(data: d + Array("sev-trace ecdsa nonce".utf8)))
            let k = BigUInt(Data(mac)) % (n - 1) + 1
            counter += 1
            guard let kKey = try? P384.KeyAgreement.PrivateKey(rawRepresentation: bytes(k, count: 48)),
                  let shared = try? kKey.sharedSecretFromKeyAgreement(with: g) else { continue }
            let x = shared.withUnsafeBytes { BigUInt(Data($0)) }
            let r = x % n
            guard r != 0, let kInv = k.inverse(n) else { continue }
            let s = (kInv * ((z + r * dInt) % n)) % n
            guard s != 0 else { continue }
            return (bytes(r, count: 48), bytes(s, count: 48))
        }
    }

    /// Verifies a signature made by ``sign(digest:privateKey:)`` (or any ECDSA P-384 signature over a
    /// SHA-256 digest) against an x963 public key.
    public static func verify(digest: [UInt8], r: [UInt8], s: [UInt8], publicKey x963: [UInt8]) -> Bool {
        guard let key = try? P384.Signing.PublicKey(x963Representation: x963),
              let sig = try? P384.Signing.ECDSASignature(rawRepresentation: r + s) else { return false }
        return key.isValidSignature(sig, for: SHA256DigestWrapper(bytes: digest))
    }
}

/// A precomputed SHA-256 digest handed to swift-crypto's verifier.
struct SHA256DigestWrapper: Digest {
    static let byteCount = 32
    let bytes: [UInt8]

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes(body)
    }

    func makeIterator() -> Array<UInt8>.Iterator { bytes.makeIterator() }
    var description: String { "SHA256DigestWrapper" }
    func hash(into hasher: inout Hasher) { hasher.combine(bytes) }
}
