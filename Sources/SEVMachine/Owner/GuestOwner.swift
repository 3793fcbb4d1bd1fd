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
    public static func checkChain(pdh: SEVCertificate, chain: [UInt8]) -> Bool {
        let size = SEVCertificate.size
        guard chain.count == 3 * size, let pek = SEVCertificate(bytes: Array(chain[0..<size])),
              let cek = SEVCertificate(bytes: Array(chain[2 * size..<3 * size])),
              let pekKey = pek.publicKeyX963, let cekKey = cek.publicKeyX963 else { return false }
        return pdh.isECDHP384 && pdh.isSigned(slot: 0, by: pekKey) && pek.isSigned(slot: 1, by: cekKey)
            && cek.isSigned(slot: 0, by: PlatformIdentity.amdSigningKey.publicKey)
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
