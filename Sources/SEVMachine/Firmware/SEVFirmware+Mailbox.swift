import TraceFormat

/// The PSP's mailbox: the registers the host driver writes a command through, as Linux's `sev-dev.c`
/// uses them (SEV API v1 offsets).
extension SEVFirmware {
    /// Register offsets in the PSP's MMIO space.
    public enum Register: UInt64, Sendable {
        /// Command id in bits 26:16, interrupt-on-completion in bit 0; on completion the firmware sets
        /// bit 31 and the status in bits 15:0.
        case cmdResp = 0x10580
        case cmdBuffAddrLo = 0x105E0
        case cmdBuffAddrHi = 0x105E4
    }

    /// Where the PSP's registers appear in the physical address space (above any simulated DRAM).
    public static let mmioBase: UInt64 = 1 << 39

    /// The response bit of CMDRESP.
    public static let responseBit: UInt32 = 1 << 31

    /// The host writes a mailbox register. Writing CMDRESP rings the doorbell: the firmware reads the
    /// command buffer from host memory, runs the command, writes the buffer back and posts the status.
    func mailboxWrite(_ register: Register, _ value: UInt32) {
        mmio(actor: .hypervisor, register, value, write: true)
        registers[register] = value
        guard register == .cmdResp else { return }
        let id = UInt8(truncatingIfNeeded: value >> 16)
        let address = UInt64(registers[.cmdBuffAddrLo] ?? 0) | UInt64(registers[.cmdBuffAddrHi] ?? 0) << 32
        let size = SEVCommand(rawValue: id).map(CommandBuffer.size) ?? 0
        var status: SEVStatus
        if size > 0, address != 0 {
            if let bytes = try? pspRead(address, count: size) {
                var buffer = CommandBuffer(bytes: bytes)
                status = execute(id, buffer: &buffer)
                if (try? pspWrite(address, buffer.bytes)) == nil { status = .invalidAddress }
            } else {
                var empty = CommandBuffer(size: 0)
                status = execute(id, buffer: &empty)
            }
        } else {
            var buffer = CommandBuffer(size: size)
            status = execute(id, buffer: &buffer)
        }
        let response = Self.responseBit | UInt32(status.rawValue)
        registers[.cmdResp] = response
        mmio(actor: .psp, .cmdResp, response, write: true)
    }

    /// The host reads a mailbox register.
    func mailboxRead(_ register: Register) -> UInt32 {
        let v = registers[register] ?? 0
        mmio(actor: .hypervisor, register, v, write: false)
        return v
    }

    private func mmio(actor: Actor, _ register: Register, _ value: UInt32, write: Bool) {
        platform.emit(.memoryAccess(MemoryAccess(
            actor: actor, vm: MemoryAccess.noVM, asid: 0, kind: write ? .write : .read, gva: 0, gpa: 0,
            spa: platform.traced(Self.mmioBase + register.rawValue), size: 4, cbit: false,
            reason: actor == .psp ? .firmware : .host, value: UInt64(value))), cost: Platform.Cost.control)
    }
}
