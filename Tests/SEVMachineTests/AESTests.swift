import CAESNI
import Testing
@testable import SEVMachine

/// FIPS-197 known answers, on the AES-NI path and the portable one.
@Suite(.serialized)
struct AESTests {
    static func bytes(_ hex: String) -> [UInt8] {
        stride(from: 0, to: hex.count, by: 2).map {
            UInt8(hex[hex.index(hex.startIndex, offsetBy: $0)..<hex.index(hex.startIndex, offsetBy: $0 + 2)], radix: 16)!
        }
    }

    static let vectors: [(key: String, plain: String, cipher: String)] = [
        ("000102030405060708090a0b0c0d0e0f", "00112233445566778899aabbccddeeff", "69c4e0d86a7b0430d8cdb78070b4c55a"),  // C.1
        ("2b7e151628aed2a6abf7158809cf4f3c", "3243f6a8885a308d313198a2e0370734", "3925841d02dc09fbdc118597196a0b32"),  // Appendix B
    ]

    @Test("known answers", arguments: [false, true])
    func knownAnswers(portable: Bool) {
        caesni_force_portable(portable ? 1 : 0)
        defer { caesni_force_portable(0) }
        for v in Self.vectors {
            let key = EncryptionKey(bytes: Self.bytes(v.key))
            #expect(key.encryptBlock(Self.bytes(v.plain)) == Self.bytes(v.cipher))
            #expect(key.decryptBlock(Self.bytes(v.cipher)) == Self.bytes(v.plain))
        }
    }

    @Test("both paths agree on random blocks")
    func pathsAgree() {
        var g = SeededGenerator(seed: 5)
        for _ in 0..<200 {
            let key = EncryptionKey(bytes: g.bytes(16))
            let block = g.bytes(16)
            caesni_force_portable(1)
            let slow = key.encryptBlock(block)
            caesni_force_portable(0)
            #expect(key.encryptBlock(block) == slow)
            #expect(key.decryptBlock(slow) == block)
        }
    }
}
