import TraceFormat

/// The platform's key hierarchy as the firmware keeps it: the chip's CEK (endorsed by AMD), the owner's
/// OCA, the PEK signed by both, and the PDH signed by the PEK.
///
/// AMD signs real CEKs with its ASK (RSA-4096, under the ARK). The simulator stands in a fixed P-384 key
/// for the ASK, the same in every run and every platform, so a chain can be checked end to end.
public struct PlatformIdentity: Sendable {
    /// The simulated AMD signing key (stands for the ASK).
    public static let amdSigningKey: KeyPair = {
        var g = SeededGenerator(seed: 0x414D_445F_4153_4B00)  // "AMD_ASK"
        return KeyPair(rng: &g)
    }()

    public private(set) var cek: KeyPair
    public private(set) var cekCert: SEVCertificate
    public private(set) var oca: KeyPair?
    public private(set) var ocaCert: SEVCertificate
    public private(set) var pek: KeyPair
    public private(set) var pekCert: SEVCertificate
    public private(set) var pdh: KeyPair
    public private(set) var pdhCert: SEVCertificate
    /// False once an OCA-signed PEK was imported.
    public private(set) var selfOwned = true
    let apiMajor: UInt8
    let apiMinor: UInt8

    /// A chip's identity, and a self-owned PEK/PDH.
    init(apiMajor: UInt8, apiMinor: UInt8, rng: inout SeededGenerator) {
        self.apiMajor = apiMajor
        self.apiMinor = apiMinor
        cek = KeyPair(rng: &rng)
        cekCert = SEVCertificate(apiMajor: apiMajor, apiMinor: apiMinor, usage: .cek, algorithm: .ecdsaSHA256,
                                 publicKey: cek.publicKey)
        cekCert.sign(slot: 0, signer: .ask, privateKey: Self.amdSigningKey.privateKey)
        // Placeholders, replaced at once by a self-owned key set.
        oca = nil
        ocaCert = cekCert
        pek = cek
        pekCert = cekCert
        pdh = cek
        pdhCert = cekCert
        regenerateSelfOwned(rng: &rng)
    }

    /// PEK_GEN and FACTORY_RESET: a new self-signed OCA, PEK and PDH.
    mutating func regenerateSelfOwned(rng: inout SeededGenerator) {
        let o = KeyPair(rng: &rng)
        var oc = SEVCertificate(apiMajor: apiMajor, apiMinor: apiMinor, usage: .oca, algorithm: .ecdsaSHA256, publicKey: o.publicKey)
        oc.sign(slot: 0, signer: .oca, privateKey: o.privateKey)
        oca = o
        ocaCert = oc
        pek = KeyPair(rng: &rng)
        pekCert = SEVCertificate(apiMajor: apiMajor, apiMinor: apiMinor, usage: .pek, algorithm: .ecdsaSHA256,
                                 publicKey: pek.publicKey)
        pekCert.sign(slot: 0, signer: .oca, privateKey: o.privateKey)
        pekCert.sign(slot: 1, signer: .cek, privateKey: cek.privateKey)
        selfOwned = true
        regeneratePDH(rng: &rng)
    }

    /// PDH_GEN: a new PDH signed by the PEK.
    mutating func regeneratePDH(rng: inout SeededGenerator) {
        pdh = KeyPair(rng: &rng)
        pdhCert = SEVCertificate(apiMajor: apiMajor, apiMinor: apiMinor, usage: .pdh, algorithm: .ecdhSHA256,
                                 publicKey: pdh.publicKey)
        pdhCert.sign(slot: 0, signer: .pek, privateKey: pek.privateKey)
    }

    /// PEK_CSR: a new PEK, waiting for the owner's OCA signature; its certificate signed by nobody yet.
    mutating func pekSigningRequest(rng: inout SeededGenerator) -> SEVCertificate {
        pek = KeyPair(rng: &rng)
        pekCert = SEVCertificate(apiMajor: apiMajor, apiMinor: apiMinor, usage: .pek, algorithm: .ecdsaSHA256,
                                 publicKey: pek.publicKey)
        return pekCert
    }

    /// PEK_CERT_IMPORT: the PEK certificate must be for the pending PEK and signed by the OCA, whose
    /// certificate must be self-signed. The platform becomes externally owned and gets a new PDH.
    mutating func importPEK(_ cert: SEVCertificate, oca ocaCertificate: SEVCertificate,
                            rng: inout SeededGenerator) -> SEVStatus {
        guard selfOwned else { return .alreadyOwned }
        guard let ocaKey = ocaCertificate.publicKeyX963, ocaCertificate.usage == SEVCertificate.Usage.oca.rawValue,
              ocaCertificate.isSigned(slot: 0, by: ocaKey) else { return .invalidCertificate }
        guard cert.publicKeyX963 == pek.publicKey, cert.usage == SEVCertificate.Usage.pek.rawValue,
              cert.isSigned(slot: 0, by: ocaKey) else { return .invalidCertificate }
        var signed = cert
        signed.sign(slot: 1, signer: .cek, privateKey: cek.privateKey)
        pekCert = signed
        ocaCert = ocaCertificate
        oca = nil
        selfOwned = false
        regeneratePDH(rng: &rng)
        return .success
    }

    /// The chain PDH_CERT_EXPORT returns after the PDH: PEK, OCA, CEK.
    public var chain: [UInt8] { pekCert.bytes + ocaCert.bytes + cekCert.bytes }

    /// GET_ID: 64 bytes identifying the chip (derived from its CEK).
    public var chipID: [UInt8] { SEVKDF.derive(key: cek.publicKey, length: 64, label: "sev-trace chip id") }

    /// Checks a platform's certificates as SEND_START does: the PDH signed by the PEK, the PEK signed
    /// by the OCA and the CEK; with `sameDomain`, the OCA must be this platform's; with `amdOnly`, the CEK
    /// must be signed by AMD.
    func checkTarget(pdh: SEVCertificate, pek: SEVCertificate, oca: SEVCertificate, cek: SEVCertificate,
                     sameDomain: Bool, amdOnly: Bool) -> SEVStatus {
        guard let pekKey = pek.publicKeyX963, let ocaKey = oca.publicKeyX963, let cekKey = cek.publicKeyX963,
              pdh.isECDHP384, pdh.isSigned(slot: 0, by: pekKey),
              pek.isSigned(slot: 0, by: ocaKey), pek.isSigned(slot: 1, by: cekKey) else { return .invalidCertificate }
        if sameDomain && ocaKey != ocaCert.publicKeyX963 { return .policyFailure }
        if amdOnly && !cek.isSigned(slot: 0, by: Self.amdSigningKey.publicKey) { return .policyFailure }
        return .success
    }
}
