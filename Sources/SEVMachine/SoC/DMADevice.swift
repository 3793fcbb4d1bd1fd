import TraceFormat

/// A device that reads and writes guest memory by guest physical address through the IOMMU (which
/// maps a VM's guest physical addresses as its nested page table does). A device holds no key: it sees
/// and writes whatever DRAM holds.
public final class DMADevice {
    public let id: UInt16
    public let name: String
    unowned let platform: Platform

    init(id: UInt16, name: String, platform: Platform) {
        self.id = id
        self.name = name
        self.platform = platform
    }

    /// Reads `length` bytes of `vm`'s memory at `gpa` by DMA; returns what the device received.
    @discardableResult
    public func dmaRead(vm: VirtualMachine, gpa: UInt64, length: Int) throws(MachineError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        for (offset, size) in try Platform.granules(start: gpa, count: length) {
            let g = gpa + UInt64(offset)
            let spa = try vm.translate(g)
            let v = try platform.read(actor: .device(id), vm: vm.id, asid: 0, kind: .dmaRead, gva: 0, gpa: g, spa: spa,
                                     size: size, cbit: false, reason: .device, key: nil, cost: Platform.Cost.dma)
            Platform.store(v, into: &out, at: offset, size: size)
        }
        return out
    }

    /// Writes `bytes` into `vm`'s memory at `gpa` by DMA.
    public func dmaWrite(vm: VirtualMachine, gpa: UInt64, bytes: [UInt8]) throws(MachineError) {
        for (offset, size) in try Platform.granules(start: gpa, count: bytes.count) {
            let g = gpa + UInt64(offset)
            let spa = try vm.translate(g)
            try platform.write(actor: .device(id), vm: vm.id, asid: 0, kind: .dmaWrite, gva: 0, gpa: g, spa: spa, size: size,
                              value: Platform.value(bytes, at: offset, size: size), cbit: false, reason: .device,
                              key: nil, cost: Platform.Cost.dma)
        }
    }
}
