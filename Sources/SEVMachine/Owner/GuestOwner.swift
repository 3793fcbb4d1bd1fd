import Crypto
import TraceFormat

/// A guest owner: the party that trusts neither the host nor the hypervisor, only AMD's key hierarchy.
/// It checks a platform's certificate chain, opens a launch session with its PDH, checks the launch
/// measurement against the image it expects, and only then sends secrets.
public struct GuestOwner: Sendable {
    public let name: String
    public let policy: UInt32
    /// The owner's ephemeral Diffie-Hellman key (GODH).
    public let godh: KeyPair
    /// The session agreed for the current launch.
    public private(set) var session: LaunchSession?
    /// The measurement the firmware returned, once the owner has checked it.
    public private(set) var verifiedMeasurement: [UInt8]?

    public init(name: String, policy: UInt32, rng: inout SeededGenerator) {
        self.name = name
        self.policy = policy
        godh = KeyPair(rng: &rng)
    }

    /// The owner's DH certificate, passed to LAUNCH_START.
    public var dhCertificate: SEVCertificate {
        SEVCertificate(apiMajor: 0, apiMinor: 0, usage: .pdh, algorithm: .ecdhSHA256, publicKey: godh.publicKey)
    }

    /// Why the owner refuses a platform or a launch.
    public enum Refusal: Error, Equatable, Sendable, CustomStringConvertible {
        case badChain
        case measurementMismatch(expected: [UInt8], got: [UInt8])

        public var description: String {
            switch self {
            case .badChain: "the platform's certificate chain does not lead to AMD"
            case .measurementMismatch: "the launch measurement does not match the expected image"
            }
        }
    }

    /// Checks the chain PDH ← PEK ← CEK ← AMD, and (when `oca` is given) that the PEK is signed by that OCA.
    public static func checkChain(pdh: SEVCertificate, chain: [UInt8]) -> Bool { chainProblem(pdh: pdh, chain: chain) == nil }

    /// What is wrong with `pdh` and its chain, or nil when the PDH is signed by the chain's PEK, the PEK
    /// by the CEK, and the CEK by AMD. The chain is PEK, OCA, CEK as sev-tool's `cert_chain.cert` has
    /// it, or PDH, PEK, OCA, CEK as sevctl exports the whole chain (then its PDH must be `pdh`).
    public static func chainProblem(pdh: SEVCertificate, chain: [UInt8]) -> String? {
        let size = SEVCertificate.size
        var certs = chain
        if chain.count == 4 * size {
            guard Array(chain[0..<size]) == pdh.bytes else { return "the PDH is not the one the chain starts with" }
            certs = Array(chain[size...])
        }
        guard certs.count == 3 * size else {
            return "a chain is 3 certificates (PEK, OCA, CEK) or 4 (PDH, PEK, OCA, CEK) of \(size) bytes, not \(chain.count) bytes"
        }
        guard let pek = SEVCertificate(bytes: Array(certs[0..<size])), let cek = SEVCertificate(bytes: Array(certs[2 * size..<3 * size])),
              let pekKey = pek.publicKeyX963, let cekKey = cek.publicKeyX963 else { return "the chain's certificates do not parse" }
        guard pdh.isECDHP384 else { return "the PDH is not a P-384 ECDH certificate" }
        guard pdh.isSigned(slot: 0, by: pekKey) else { return "the PDH is not signed by the chain's PEK: it does not belong to this chain" }
        guard pek.isSigned(slot: 1, by: cekKey) else { return "the PEK is not signed by the chain's CEK" }
        guard cek.isSigned(slot: 0, by: PlatformIdentity.amdSigningKey.publicKey) else { return "the CEK is not signed by AMD: the chain does not lead to AMD" }
        return nil
    }

    /// Verifies the platform and builds a launch session against its PDH.
    public mutating func startSession(pdh: SEVCertificate, chain: [UInt8], rng: inout SeededGenerator) throws(Refusal) {
        guard Self.checkChain(pdh: pdh, chain: chain), let pdhKey = pdh.publicKeyX963,
              let s = LaunchSession.create(own: godh, pdh: pdhKey, policy: policy, rng: &rng) else { throw .badChain }
        session = s
        verifiedMeasurement = nil
    }

    /// Checks `measurement || mnonce` (48 bytes) against the image the owner expects to be launched,
    /// on a firmware of the given version.
    public mutating func verify(measurement out: [UInt8], image: [UInt8], apiMajor: UInt8, apiMinor: UInt8,
                                build: UInt8) throws(Refusal) {
        guard let session, out.count >= 48 else { throw .badChain }
        let expected = LaunchMeasurement.compute(
            apiMajor: apiMajor, apiMinor: apiMinor, build: build, policy: policy,
            digest: Array(SHA256.hash(data: image)), mnonce: Array(out[32..<48]), tik: session.tik)
        guard expected == Array(out[0..<32]) else {
            throw .measurementMismatch(expected: expected, got: Array(out[0..<32]))
        }
        verifiedMeasurement = expected
    }

    /// A LAUNCH_SECRET packet for `secret` (a multiple of 16 bytes), for a verified launch.
    public func secretPacket(_ secret: [UInt8], rng: inout SeededGenerator) -> (header: [UInt8], trans: [UInt8])? {
        guard let session, let measurement = verifiedMeasurement else { return nil }
        return TransportPacket.launchSecret(secret, tek: session.tek, tik: session.tik, iv: rng.bytes(16),
                                            measurement: measurement)
    }
}
