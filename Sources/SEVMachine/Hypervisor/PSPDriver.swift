import TraceFormat

/// The host's PSP driver (Linux `drivers/crypto/ccp/sev-dev.c`): it copies a command buffer into a host
/// page, points the mailbox at it, rings the doorbell, and reads back the buffer and the status. Data
/// the command points to (certificates, sessions, blobs) is staged in host pages the driver owns.
public final class PSPDriver {
    unowned let platform: Platform
    /// The host page holding the command buffer.
    let commandPage: UInt64
    /// Host pages for the data commands point to.
    let dataArea: UInt64
    static let dataAreaSize: UInt64 = 256 << 10
    private var dataNext: UInt64 = 0

    init(platform: Platform, base: UInt64) {
        self.platform = platform
        commandPage = base
        dataArea = base + 4096
    }

    /// Copies `bytes` into a fresh 32-byte-aligned spot of the data area (hypervisor writes); returns its
    /// system physical address. The area is reused from the start by every command.
    func stage(_ bytes: [UInt8]) throws(MachineError) -> UInt64 {
        let spa = try allocate(bytes.count)
        try hostWrite(spa, bytes)
        return spa
    }

    /// A fresh 32-byte-aligned spot of `count` bytes in the data area, left as it is.
    func allocate(_ count: Int) throws(MachineError) -> UInt64 {
        let size = UInt64(max(count, 1) + 31) & ~31
        guard dataNext + size <= Self.dataAreaSize else { throw .invalid("PSP driver: staged data exceeds \(Self.dataAreaSize) bytes") }
        let spa = dataArea + dataNext
        dataNext += size
        return spa
    }

    /// Frees the data area for the next command (what `issue` does when it returns).
    func releaseStaged() { dataNext = 0 }

    /// Reserves a 32-byte-aligned spot for the firmware to write into.
    func reserve(_ count: Int) throws(MachineError) -> UInt64 { try stage([UInt8](repeating: 0, count: count)) }

    /// Reads back what the firmware wrote (hypervisor reads).
    func fetch(_ spa: UInt64, count: Int) throws(MachineError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        for (offset, size) in try Platform.granules(start: spa, count: count) {
            let v = try platform.read(actor: .hypervisor, vm: MemoryAccess.noVM, asid: 0, kind: .read, gva: 0, gpa: 0,
                                      spa: spa + UInt64(offset), size: size, cbit: false, reason: .host, key: nil)
            Platform.store(v, into: &out, at: offset, size: size)
        }
        return out
    }

    func hostWrite(_ spa: UInt64, _ bytes: [UInt8]) throws(MachineError) {
        for (offset, size) in try Platform.granules(start: spa, count: bytes.count) {
            try platform.write(actor: .hypervisor, vm: MemoryAccess.noVM, asid: 0, kind: .write, gva: 0, gpa: 0,
                               spa: spa + UInt64(offset), size: size, value: Platform.value(bytes, at: offset, size: size),
                               cbit: false, reason: .host, key: nil)
        }
    }

    /// Issues one command through the mailbox; returns the status and the buffer as the firmware left it.
    /// Staged data stays valid until the next call.
    @discardableResult
    public func issue(_ command: SEVCommand, _ buffer: CommandBuffer) throws(MachineError) -> (SEVStatus, CommandBuffer) {
        defer { dataNext = 0 }
        let fw = platform.firmware
        var address: UInt64 = 0
        if !buffer.bytes.isEmpty {
            try hostWrite(commandPage, buffer.bytes)
            address = commandPage
        }
        fw.mailboxWrite(.cmdBuffAddrLo, UInt32(truncatingIfNeeded: address))
        fw.mailboxWrite(.cmdBuffAddrHi, UInt32(truncatingIfNeeded: address >> 32))
        fw.mailboxWrite(.cmdResp, UInt32(command.rawValue) << 16 | 1)
        let response = fw.mailboxRead(.cmdResp)
        let status = SEVStatus(rawValue: UInt16(truncatingIfNeeded: response)) ?? .invalidCommand
        let out = buffer.bytes.isEmpty ? buffer : CommandBuffer(bytes: try fetch(commandPage, count: buffer.bytes.count))
        return (status, out)
    }

    /// Issues one command with a typed buffer; returns the status and the buffer as the firmware left it.
    @discardableResult
    public func issue<Data: BufferLayout>(_ command: SEVCommand, _ data: Data) throws(MachineError) -> (SEVStatus, Data) {
        let (status, out) = try issue(command, data.buffer)
        return (status, Data(out))
    }
}
