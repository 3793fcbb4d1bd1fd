import Crypto

/// A P-384 key pair whose private scalar came from the simulation's seeded randomness.
public struct KeyPair: Equatable, Sendable {
    /// The private scalar, 48 bytes big-endian.
    public let privateKey: [UInt8]
    /// The public key, x963 (`04 || X || Y`).
    public let publicKey: [UInt8]

    /// Draws a valid private scalar from `rng`.
    public init(rng: inout SeededGenerator) {
        while true {
            let raw = rng.bytes(48)
            if let k = try? P384.KeyAgreement.PrivateKey(rawRepresentation: raw) {
                privateKey = raw
                publicKey = Array(k.publicKey.x963Representation)
                return
            }
        }
    }

    /// Rebuilds a key pair from its private scalar.
    public init?(privateKey: [UInt8]) {
        guard let k = try? P384.KeyAgreement.PrivateKey(rawRepresentation: privateKey) else { return nil }
        self.privateKey = privateKey
        publicKey = Array(k.publicKey.x963Representation)
    }

    /// The ECDH shared secret with a peer's x963 public key (its x-coordinate, 48 bytes).
    public func sharedSecret(with peer: [UInt8]) -> [UInt8]? {
        guard let me = try? P384.KeyAgreement.PrivateKey(rawRepresentation: privateKey),
              let other = try? P384.KeyAgreement.PublicKey(x963Representation: peer),
              let secret = try? me.sharedSecretFromKeyAgreement(with: other) else { return nil }
        return secret.withUnsafeBytes { Array($0) }
    }
}
