import TraceFormat

import Crypto

/// The SEV certificate structure (SEV API, 2084 bytes, little-endian): version, API version, the key's
/// usage and algorithm, the public key, and two signature slots.
///
/// Layout: `u32 version` (1) at 0x000, `u8 api_major, api_minor, rsvd, rsvd`, `u32 pubkey_usage` at 0x008,
/// `u32 pubkey_algo` at 0x00C, `pubkey[1028]` at 0x010 (for ECC: `u32 curve`, `qx[72]`, `qy[72]`, each
/// coordinate little-endian), then `u32 sig1_usage, u32 sig1_algo, sig1[512]` at 0x414 and the same for
/// sig2 at 0x61C (ECDSA: `r[72]`, `s[72]`, little-endian). Signatures cover bytes 0..<0x414.
public struct SEVCertificate: Equatable, Sendable {
    public static let size = 0x824
    static let signedLength = 0x414
    static let slotOffsets = [0x414, 0x61C]

    /// Key usages.
    public enum Usage: UInt32, Sendable {
        case ark = 0x0, ask = 0x13, invalid = 0x1000, oca = 0x1001, pek = 0x1002, pdh = 0x1003, cek = 0x1004
    }

    /// Key algorithms.
    public enum Algorithm: UInt32, Sendable {
        case invalid = 0, rsaSHA256 = 1, ecdsaSHA256 = 2, ecdhSHA256 = 3, rsaSHA384 = 0x101, ecdsaSHA384 = 0x102,
             ecdhSHA384 = 0x103
    }

    /// The curve id of P-384.
    public static let curveP384: UInt32 = 2

    public var bytes: [UInt8]

    /// Wraps 2084 bytes read from memory; nil if the length is wrong.
    public init?(bytes: [UInt8]) {
        guard bytes.count == Self.size else { return nil }
        self.bytes = bytes
    }

    /// A new, unsigned certificate for a P-384 public key (x963 form).
    public init(apiMajor: UInt8, apiMinor: UInt8, usage: Usage, algorithm: Algorithm, publicKey x963: [UInt8]) {
        var b = CommandBuffer(size: Self.size)
        b.setU32(0, 1)
        b.setU8(4, apiMajor)
        b.setU8(5, apiMinor)
        b.setU32(8, usage.rawValue)
        b.setU32(0xC, algorithm.rawValue)
        b.setU32(0x10, Self.curveP384)
        let x = Array(x963[1..<49]), y = Array(x963[49..<97])
        for (i, v) in x.reversed().enumerated() { b.setU8(0x14 + i, v) }
        for (i, v) in y.reversed().enumerated() { b.setU8(0x14 + 72 + i, v) }
        for slot in Self.slotOffsets { b.setU32(slot, Usage.invalid.rawValue) }
        bytes = b.bytes
    }

    var buffer: CommandBuffer { CommandBuffer(bytes: bytes) }
    public var version: UInt32 { buffer.u32(0) }
    public var usage: UInt32 { buffer.u32(8) }
    public var algorithm: UInt32 { buffer.u32(0xC) }
    public var curve: UInt32 { buffer.u32(0x10) }

    /// The public key as x963 (`04 || X || Y`, big-endian), if it is a P-384 key.
    public var publicKeyX963: [UInt8]? {
        guard curve == Self.curveP384 else { return nil }
        let x = Array(bytes[0x14..<0x14 + 48].reversed()), y = Array(bytes[0x14 + 72..<0x14 + 72 + 48].reversed())
        guard bytes[0x14 + 48..<0x14 + 72].allSatisfy({ $0 == 0 }), bytes[0x14 + 120..<0x14 + 144].allSatisfy({ $0 == 0 })
        else { return nil }
        return [0x04] + x + y
    }

    /// Whether the key is a well-formed ECDH P-384 key (what LAUNCH_START needs from a DH certificate).
    public var isECDHP384: Bool {
        version == 1 && algorithm == Algorithm.ecdhSHA256.rawValue && publicKeyX963.map {
            (try? P384.KeyAgreement.PublicKey(x963Representation: $0)) != nil
        } == true
    }

    /// The SHA-256 of the signed part.
    var signedDigest: [UInt8] { Array(SHA256.hash(data: bytes[0..<Self.signedLength])) }

    /// Signs into slot 0 or 1 with an ECDSA P-384 key.
    public mutating func sign(slot: Int, signer: Usage, privateKey: [UInt8]) {
        let (r, s) = DeterministicECDSA.sign(digest: signedDigest, privateKey: privateKey)
        var b = buffer
        let base = Self.slotOffsets[slot]
        b.setU32(base, signer.rawValue)
        b.setU32(base + 4, Algorithm.ecdsaSHA256.rawValue)
        for i in 0..<512 { b.setU8(base + 8 + i, 0) }
        for (i, v) in r.reversed().enumerated() { b.setU8(base + 8 + i, v) }
        for (i, v) in s.reversed().enumerated() { b.setU8(base + 8 + 72 + i, v) }
        bytes = b.bytes
    }

    /// The usage recorded in signature slot 0 or 1.
    public func signerUsage(slot: Int) -> UInt32 { buffer.u32(Self.slotOffsets[slot]) }

    /// Whether slot 0 or 1 holds a valid ECDSA signature by `signer` (an x963 public key).
    public func isSigned(slot: Int, by signer: [UInt8]) -> Bool {
        let base = Self.slotOffsets[slot]
        guard buffer.u32(base + 4) == Algorithm.ecdsaSHA256.rawValue else { return false }
        let r = Array(bytes[base + 8..<base + 8 + 48].reversed()), s = Array(bytes[base + 80..<base + 80 + 48].reversed())
        return DeterministicECDSA.verify(digest: signedDigest, r: r, s: s, publicKey: signer)
    }

    /// Whether either slot holds a valid signature by `signer`.
    public func isSigned(by signer: [UInt8]) -> Bool { isSigned(slot: 0, by: signer) || isSigned(slot: 1, by: signer) }
}
