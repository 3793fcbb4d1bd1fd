import Crypto
import Testing
@testable import SEVMachine

/// The primitives of the launch crypto against published vectors and hand-derived ones.
struct CryptoVectorTests {
    static func hex(_ s: String) -> [UInt8] { AESTests.bytes(s) }

    @Test("HMAC-SHA256, RFC 4231 test cases 1 and 2")
    func hmac() {
        let k1 = [UInt8](repeating: 0x0b, count: 20)
        #expect(LaunchSession.hmac(k1, Array("Hi There".utf8))
                == Self.hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"))
        #expect(LaunchSession.hmac(Array("Jefe".utf8), Array("what do ya want for nothing?".utf8))
                == Self.hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"))
    }

    @Test("the SP 800-108 counter-mode KDF matches vectors derived by hand from its definition")
    func kdf() {
        // HMAC-SHA256(key, LE32(i) || label || 0x00 || context || LE32(bits)), computed independently.
        #expect(SEVKDF.derive(key: Array(0..<48), length: 16, label: "sev-master-secret", context: Array(0..<16))
                == Self.hex("f5c31a87dd1cca18a25dc55582f8d41f"))
        #expect(SEVKDF.derive(key: Array(0..<16), length: 32, label: "sev-kek")
                == Self.hex("688b943d82643f26a14040157deb47770428fbc5d1c7d525022aae8d5f7cf12a"))
    }

    @Test("AES-128-CTR, NIST SP 800-38A F.5.1")
    func ctr() {
        let out = AESCTR.apply(key: Self.hex("2b7e151628aed2a6abf7158809cf4f3c"),
                               iv: Self.hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"),
                               Self.hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"))
        #expect(out == Self.hex("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff"))
    }

    @Test("deterministic ECDSA: swift-crypto verifies it, the same input signs the same, a changed digest fails")
    func ecdsa() {
        var g = SeededGenerator(seed: 9)
        let key = KeyPair(rng: &g)
        let digest = Array(SHA256.hash(data: Array("sev".utf8)))
        let (r, s) = DeterministicECDSA.sign(digest: digest, privateKey: key.privateKey)
        #expect(DeterministicECDSA.verify(digest: digest, r: r, s: s, publicKey: key.publicKey))
        let again = DeterministicECDSA.sign(digest: digest, privateKey: key.privateKey)
        #expect(again.r == r && again.s == s)
        var other = digest
        other[0] ^= 1
        #expect(!DeterministicECDSA.verify(digest: other, r: r, s: s, publicKey: key.publicKey))
    }

    @Test("a session opens with the matching PDH and fails on a changed policy or wrap")
    func session() throws {
        var g = SeededGenerator(seed: 3)
        let owner = KeyPair(rng: &g), pdh = KeyPair(rng: &g)
        let s = try #require(LaunchSession.create(own: owner, pdh: pdh.publicKey, policy: 0x1, rng: &g))
        let z = try #require(pdh.sharedSecret(with: owner.publicKey))
        let opened = LaunchSession.open(blob: s.blob, z: z, policy: 0x1)
        #expect(try opened.get() == (s.tek, s.tik))
        #expect(throws: LaunchSession.OpenError.policyMAC) { try LaunchSession.open(blob: s.blob, z: z, policy: 0x3).get() }
        var tampered = s.blob
        tampered[20] ^= 1
        #expect(throws: LaunchSession.OpenError.wrapMAC) { try LaunchSession.open(blob: tampered, z: z, policy: 0x1).get() }
    }
}
