import TraceFormat

extension KVM {
    /// One firmware command handed straight to the PSP, the raw path firmware tests take (no mailbox, no
    /// KVM checks): its buffer is laid out as the SEV API has it, from `vm`'s handle (for the guest
    /// commands) and the arguments the command takes — ACTIVATE's ASID (default: the VM's), LAUNCH_START's
    /// policy (default: the VM's; no session, so the firmware chooses the transport keys, and the handle
    /// it returns becomes the VM's), LAUNCH_UPDATE_DATA's guest range (the image is in guest memory first,
    /// as a VMM puts it there), LAUNCH_MEASURE's output length (default 48; the output lands in the
    /// driver's buffer area), COPY's guest range and the guest address whose frame receives it, and for the
    /// platform's commands: the output lengths of PEK_CSR, PDH_CERT_EXPORT
    /// and GET_ID (default: what they need), the firmware image DOWNLOAD_FIRMWARE installs (`SEVF`, then
    /// the API major, minor and build of `firmware`, default the running one's), and what PEK_CERT_IMPORT
    /// takes from the platform owner: the pending PEK's certificate (as PEK_CSR gave it), signed by her
    /// OCA unless `ocaSigned` is false, and the OCA's self-signed certificate (`length`: the PEK's length
    /// field). Returns the status; the command is recorded like every other.
    public func issueDirect(_ command: SEVCommand, vm: VirtualMachine?, asid: UInt16? = nil, gpa: UInt64? = nil,
                            destination: UInt64? = nil, length: UInt32? = nil, policy: UInt32? = nil,
                            firmware image: (major: UInt8, minor: UInt8, build: UInt8)? = nil,
                            ocaSigned: Bool = true) throws(MachineError) -> SEVStatus {
        defer { driver.releaseStaged() }
        var buffer = CommandBuffer(size: CommandBuffer.size(of: command))
        if let vm, command != .launchStart { SEVData.Handle(vm.handle).store(into: &buffer) }
        /// A spot for the firmware's output, when KVM's own 16 KiB cap would let it through.
        func outputSpot(_ n: UInt32) throws(MachineError) -> UInt64 { n > 0 && n <= 0x4000 ? try driver.reserve(Int(n)) : 0 }
        switch command {
        case .activate:
            var d = SEVData.Activate(buffer)
            d.asid = UInt32(asid ?? vm?.asid ?? 0)
            d.store(into: &buffer)
        case .launchStart:
            var d = SEVData.LaunchStart(buffer)
            d.policy = policy ?? vm?.policy ?? 0
            d.store(into: &buffer)
        case .launchUpdateData:
            guard let vm else { break }
            try loadImage(vm)
            var d = SEVData.LaunchUpdateData(buffer)
            let start = gpa ?? 0
            d.address = (try? vm.translate(start)) ?? start
            d.length = length ?? 0
            d.store(into: &buffer)
        case .copy:
            // COPY: the guest page at `gpa` moved to the frame behind `destination`, both system physical
            // addresses with the C-bit set (the guest's pages are private).
            guard let vm else { break }
            let c = platform.config.cbitMask
            var d = SEVData.Copy(buffer)
            d.length = length ?? 0
            d.source = ((try? vm.translate(gpa ?? 0)) ?? 0) | c
            d.destination = ((try? vm.translate(destination ?? 0)) ?? 0) | c
            d.store(into: &buffer)
        case .launchMeasure:
            var d = SEVData.LaunchUpdateData(buffer)
            d.length = length ?? 48
            d.address = try outputSpot(d.length)
            d.store(into: &buffer)
        case .pekCSR, .getID:
            var d = SEVData.Blob()
            d.length = length ?? UInt32(command == .getID ? 64 : SEVCertificate.size)
            d.address = try outputSpot(d.length)
            d.store(into: &buffer)
        case .pdhCertExport:
            var d = SEVData.PDHCertExport()
            d.pdhLength = length ?? UInt32(SEVCertificate.size)
            d.pdhAddress = try outputSpot(d.pdhLength)
            d.chainLength = UInt32(3 * SEVCertificate.size)
            d.chainAddress = try driver.reserve(Int(d.chainLength))
            d.store(into: &buffer)
        case .downloadFirmware:
            let fw = platform.firmware
            let version = image ?? (fw.apiMajor, fw.apiMinor, fw.build)
            let bytes: [UInt8] = Array("SEVF".utf8) + [version.major, version.minor, version.build]
            var d = SEVData.Blob()
            d.address = try driver.stage(bytes)
            d.length = UInt32(bytes.count)
            d.store(into: &buffer)
        case .pekCertImport:
            let (pek, oca) = ownerCertificates(signed: ocaSigned)
            var d = SEVData.PEKCertImport()
            (d.pekAddress, d.pekLength) = (try driver.stage(pek.bytes), length ?? UInt32(SEVCertificate.size))
            (d.ocaAddress, d.ocaLength) = (try driver.stage(oca.bytes), UInt32(SEVCertificate.size))
            d.store(into: &buffer)
        default:
            break
        }
        let status = platform.firmware.execute(command.rawValue, buffer: &buffer)
        if command == .launchStart, status == .success, let vm { vm.handle = SEVData.LaunchStart(buffer).handle }
        return status
    }

    /// The platform owner's certificates for PEK_CERT_IMPORT: her OCA, with a key of her own (the same on
    /// every run: seeded by the platform), self-signed, and the pending PEK's certificate, signed by that
    /// OCA when `signed`.
    func ownerCertificates(signed: Bool) -> (pek: SEVCertificate, oca: SEVCertificate) {
        var rng = SeededGenerator(seed: 0x0CA0_0000 | UInt64(platform.id))
        let key = KeyPair(rng: &rng)
        let identity = platform.firmware.identity
        var oca = SEVCertificate(apiMajor: identity.apiMajor, apiMinor: identity.apiMinor, usage: .oca,
                                 algorithm: .ecdsaSHA256, publicKey: key.publicKey)
        oca.sign(slot: 0, signer: .oca, privateKey: key.privateKey)
        var pek = identity.pekCert
        if signed { pek.sign(slot: 0, signer: .oca, privateKey: key.privateKey) }
        return (pek, oca)
    }
}
