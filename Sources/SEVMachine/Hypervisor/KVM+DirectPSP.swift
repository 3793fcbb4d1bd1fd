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
    /// and GET_ID (default: what they need) and the firmware image DOWNLOAD_FIRMWARE installs (`SEVF`, then
    /// the API major, minor and build of `firmware`, default the running one's). Returns the status; the
    /// command is recorded like every other.
    public func issueDirect(_ command: SEVCommand, vm: VirtualMachine?, asid: UInt16? = nil, gpa: UInt64? = nil,
                            destination: UInt64? = nil, length: UInt32? = nil, policy: UInt32? = nil,
                            firmware image: (major: UInt8, minor: UInt8, build: UInt8)? = nil) throws(MachineError) -> SEVStatus {
        defer { driver.releaseStaged() }
        var buffer = CommandBuffer(size: CommandBuffer.size(of: command))
        if let vm, command != .launchStart { buffer.setU32(0, vm.handle) }
        switch command {
        case .activate:
            buffer.setU32(4, UInt32(asid ?? vm?.asid ?? 0))
        case .launchStart:
            buffer.setU32(4, policy ?? vm?.policy ?? 0)
        case .launchUpdateData:
            guard let vm else { break }
            try loadImage(vm)
            let start = gpa ?? 0
            buffer.setU64(8, (try? vm.translate(start)) ?? start)
            buffer.setU32(16, length ?? 0)
        case .copy:
            // COPY: length, then the source and destination system physical addresses (C-bit set, as the
            // guest's pages are private): the guest page at `gpa` moved to the frame behind `destination`.
            guard let vm else { break }
            let c = platform.config.cbitMask
            buffer.setU32(4, length ?? 0)
            buffer.setU64(8, ((try? vm.translate(gpa ?? 0)) ?? 0) | c)
            buffer.setU64(16, ((try? vm.translate(destination ?? 0)) ?? 0) | c)
        case .launchMeasure:
            let n = length ?? 48
            if n > 0 && n <= 0x4000 { buffer.setU64(8, try driver.reserve(Int(n))) }
            buffer.setU32(16, n)
        case .pekCSR, .getID:
            let n = length ?? UInt32(command == .getID ? 64 : SEVCertificate.size)
            if n > 0 && n <= 0x4000 { buffer.setU64(0, try driver.reserve(Int(n))) }
            buffer.setU32(8, n)
        case .pdhCertExport:
            let pdh = length ?? UInt32(SEVCertificate.size), chain = UInt32(3 * SEVCertificate.size)
            if pdh > 0 && pdh <= 0x4000 { buffer.setU64(0, try driver.reserve(Int(pdh))) }
            buffer.setU32(8, pdh)
            buffer.setU64(16, try driver.reserve(Int(chain)))
            buffer.setU32(24, chain)
        case .downloadFirmware:
            let fw = platform.firmware
            let version = image ?? (fw.apiMajor, fw.apiMinor, fw.build)
            let bytes: [UInt8] = Array("SEVF".utf8) + [version.major, version.minor, version.build]
            buffer.setU64(0, try driver.stage(bytes))
            buffer.setU32(8, UInt32(bytes.count))
        default:
            break
        }
        let status = platform.firmware.execute(command.rawValue, buffer: &buffer)
        if command == .launchStart, status == .success, let vm { vm.handle = buffer.u32(0) }
        return status
    }
}
