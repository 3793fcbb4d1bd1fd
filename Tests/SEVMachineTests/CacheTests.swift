import TraceFormat
import Testing
@testable import SEVMachine

/// The write-back cache with lines tagged by key.
struct CacheTests {
    /// A launched guest on a platform with a cache, running `program`.
    func fixture(_ program: [Instruction]) throws -> (Machine, VirtualMachine, CollectingSink) {
        var config = PlatformConfig()
        config.cacheBytes = 64 << 10
        let sink = CollectingSink()
        let machine = Machine(config: config, seed: 1, sink: sink)
        let vm = try machine.primary.kvm.createVM(name: "g", memoryBytes: 2 << 20, policy: 1, sev: true)
        vm.entry = 0x100000
        vm.addImage(gpa: 0x100000, bytes: program.flatMap(\.encoded))
        var none: GuestOwner?
        try machine.primary.vmm.launch(vm, owner: &none)
        try machine.primary.kvm.run(vm)
        return (machine, vm, sink)
    }

    static let store = [
        Instruction(.movImmediate, a: 1, immediate: 0x180000),
        Instruction(.movImmediate, a: 2, immediate: 0x1111),
        Instruction(.store, a: 1, b: 2, width: 8),
        Instruction(.load, a: 3, b: 1, width: 8),
        Instruction(.halt),
    ]

    @Test("a host CLFLUSH leaves the guest's dirty line in the cache; VM_PAGE_FLUSH with the guest's ASID writes it back")
    func vmPageFlush() throws {
        let (machine, vm, sink) = try fixture(Self.store)
        let p = machine.primary
        let spa = try vm.translate(0x180000)
        p.clflush(spa, count: 4096, keyID: 0)
        #expect(try p.memory.rawBytes(at: spa, count: 8) == [UInt8](repeating: 0, count: 8), "CLFLUSH from the host misses it")
        try p.kvm.flushGuestPage(vm, gpa: 0x180345)
        let after = try p.memory.rawBytes(at: spa, count: 8)
        #expect(after != [UInt8](repeating: 0, count: 8) && after != [0x11, 0x11, 0, 0, 0, 0, 0, 0], "written back encrypted")
        let op = try #require(sink.events.last { if case .cacheOp = $0.body { true } else { false } })
        guard case .cacheOp(let c) = op.body else { return }
        #expect(c.op == .pageFlush && c.asid == vm.asid && c.spa == p.traced(spa) && c.lines == 64)
    }

    @Test("KVM flushes both pages of a DBG request from the cache before the firmware touches them")
    func debugFlushes() throws {
        var config = PlatformConfig()
        config.cacheBytes = 64 << 10
        let f = try MachineFixture([Instruction(.halt)], policy: 0, config: config)
        let page = f.platform.traced(try f.vm.translate(0x180000))
        let before = f.sink.events.count
        _ = try f.platform.vmm.debugDecrypt(f.vm, gpa: 0x180010, length: 16)
        let flushed = f.sink.events[before...].compactMap { if case .cacheOp(let c) = $0.body, c.op == .clflush, c.lines == 64 { c.spa } else { nil } }
        #expect(flushed.contains(page), "the guest page")
        #expect(flushed.count == 2, "and the VMM's page")
    }

    @Test("KVM_MEMORY_ENCRYPT_REG_REGION at launch flushes every page of guest memory from the cache")
    func registerRegionFlushes() throws {
        let (machine, vm, sink) = try fixture(Self.store)
        let base = machine.primary.traced(try vm.translate(0))
        let pageFlushes = sink.events.compactMap { e -> CacheOp? in
            if case .cacheOp(let op) = e.body, op.op == .clflush, op.lines == 64, op.spa >= base, op.spa < base + (2 << 20) { op } else { nil }
        }
        #expect(Set(pageFlushes.map(\.spa)).count == 512)
    }

    @Test("a guest write stays in the cache until written back: DRAM changes only at WBINVD, and then holds ciphertext")
    func writeBack() throws {
        let (machine, vm, sink) = try fixture(Self.store)
        let p = machine.primary
        #expect(vm.vcpus[0].registers[3] == 0x1111, "the guest reads its own write from the cache")
        let spa = try vm.translate(0x180000)
        let before = try p.memory.rawBytes(at: spa, count: 16)
        #expect(before == [UInt8](repeating: 0, count: 16), "not yet in DRAM")
        p.wbinvdAllCores()
        let after = try p.memory.rawBytes(at: spa, count: 16)
        #expect(after != before && Array(after[0..<8]) != [0x11, 0x11, 0, 0, 0, 0, 0, 0], "written back encrypted")
        #expect(try p.controller.readValue(spa, size: 8, key: p.controller.key(forASID: vm.asid)) == 0x1111)
        let writeBacks = sink.events.filter { if case .cacheOp(let c) = $0.body { c.op == .writeBack && c.asid == vm.asid } else { false } }
        #expect(!writeBacks.isEmpty)
    }

    @Test("a flip to C=0 without a flush leaves a stale line whose write-back overwrites the shared data; with the flush it does not",
          arguments: [true, false])
    func cbitFlip(flush: Bool) throws {
        let (machine, vm, _) = try fixture([
            Instruction(.movImmediate, a: 1, immediate: 0x180000),
            Instruction(.movImmediate, a: 2, immediate: 0x1111),
            Instruction(.store, a: 1, b: 2, width: 8),
            Instruction(flush ? .setMemoryDecrypted : .setMemoryDecryptedNoFlush, a: 1, immediate: 1),
            Instruction(.movImmediate, a: 2, immediate: 0x2222),
            Instruction(.store, a: 1, b: 2, width: 8),
            Instruction(.halt),
        ])
        let nic = machine.primary.addDevice(name: "nic")
        let first = try nic.dmaRead(vm: vm, gpa: 0x180000, length: 8)
        #expect(first == [0x22, 0x22, 0, 0, 0, 0, 0, 0], "the device snoops the unkeyed line")
        machine.primary.wbinvdAllCores()
        let second = try nic.dmaRead(vm: vm, gpa: 0x180000, length: 8)
        #expect((second == first) == flush)
    }

    @Test("the hypervisor reading guest memory goes through its own (unkeyed) lines: it misses the guest's dirty data")
    func hostSeesDRAM() throws {
        let (machine, vm, _) = try fixture(Self.store)
        let seen = try machine.primary.kvm.read(vm, gpa: 0x180000, length: 8)
        #expect(seen == [UInt8](repeating: 0, count: 8), "DRAM still holds what was there before the guest's write")
    }
}
