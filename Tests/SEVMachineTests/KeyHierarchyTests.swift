import TraceFormat
import Testing
@testable import SEVMachine

/// Platform certificates: export, chain checks, ownership.
struct KeyHierarchyTests {
    @Test("PDH_CERT_EXPORT returns a PDH signed by the PEK, signed by the OCA and the CEK, endorsed by AMD")
    func exportedChain() throws {
        let f = try MachineFixture([Instruction(.halt)], launch: false)
        let (pdh, chain) = try f.platform.vmm.exportPDH()
        #expect(GuestOwner.checkChain(pdh: pdh, chain: chain))
        let pek = try #require(SEVCertificate(bytes: Array(chain[0..<SEVCertificate.size])))
        let oca = try #require(SEVCertificate(bytes: Array(chain[SEVCertificate.size..<2 * SEVCertificate.size])))
        #expect(pek.usage == SEVCertificate.Usage.pek.rawValue && pdh.usage == SEVCertificate.Usage.pdh.rawValue)
        #expect(pek.isSigned(slot: 0, by: try #require(oca.publicKeyX963)))
        var forged = pdh
        forged.bytes[0x20] ^= 1
        #expect(!GuestOwner.checkChain(pdh: forged, chain: chain))
    }

    @Test("a platform's keys depend on the seed and its place only")
    func reproducibleIdentity() {
        let a = Machine(config: PlatformConfig(), seed: 5, sink: CountingSink()).primary.firmware.identity
        let b = Machine(config: PlatformConfig(), seed: 5, sink: CountingSink()).primary.firmware.identity
        let c = Machine(config: PlatformConfig(), seed: 6, sink: CountingSink()).primary.firmware.identity
        #expect(a.pdhCert == b.pdhCert)
        #expect(a.pdhCert != c.pdhCert)
    }

    @Test("PEK_CSR then PEK_CERT_IMPORT of an OCA-signed PEK makes the platform externally owned, once")
    func ownership() throws {
        let f = try MachineFixture([Instruction(.halt)], launch: false)
        let fw = f.platform.firmware
        let driver = f.platform.kvm.driver
        f.platform.kvm.sevInit()
        var csr = SEVData.Blob()
        (csr.address, csr.length) = (try driver.reserve(SEVCertificate.size), UInt32(SEVCertificate.size))
        let (status, out) = try driver.issue(.pekCSR, csr)
        #expect(status == .success)
        var pek = try #require(SEVCertificate(bytes: try driver.fetch(out.address, count: SEVCertificate.size)))
        var g = SeededGenerator(seed: 77)
        let ocaKey = KeyPair(rng: &g)
        var oca = SEVCertificate(apiMajor: 0, apiMinor: 17, usage: .oca, algorithm: .ecdsaSHA256, publicKey: ocaKey.publicKey)
        oca.sign(slot: 0, signer: .oca, privateKey: ocaKey.privateKey)
        pek.sign(slot: 0, signer: .oca, privateKey: ocaKey.privateKey)
        func importPEK() throws -> SEVStatus {
            var b = SEVData.PEKCertImport()
            (b.pekAddress, b.pekLength) = (try driver.stage(pek.bytes), UInt32(SEVCertificate.size))
            (b.ocaAddress, b.ocaLength) = (try driver.stage(oca.bytes), UInt32(SEVCertificate.size))
            return try driver.issue(.pekCertImport, b).0
        }
        #expect(try importPEK() == .success)
        #expect(!fw.identity.selfOwned)
        #expect(fw.identity.pekCert.isSigned(slot: 0, by: ocaKey.publicKey))
        #expect(try importPEK() == .alreadyOwned)
        var status2 = CommandBuffer(for: .platformStatus)
        _ = fw.execute(SEVCommand.platformStatus.rawValue, buffer: &status2)
        #expect(SEVData.PlatformStatus(status2).flags & 1 == 1, "PLATFORM_STATUS reports the owner flag")
    }

    @Test("GET_ID answers INVALID_LENGTH with the length needed, then 64 bytes")
    func getID() throws {
        let f = try MachineFixture([Instruction(.halt)], launch: false)
        let driver = f.platform.kvm.driver
        let (s1, o1) = try driver.issue(.getID, SEVData.Blob())
        #expect(s1 == .invalidLength && o1.length == 64)
        var b = SEVData.Blob()
        (b.address, b.length) = (try driver.reserve(64), 64)
        let (s2, o2) = try driver.issue(.getID, b)
        #expect(s2 == .success)
        #expect(try driver.fetch(o2.address, count: 64) == f.platform.firmware.identity.chipID)
    }
}
