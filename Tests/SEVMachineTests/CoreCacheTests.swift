import TraceFormat
import Testing
@testable import SEVMachine

/// Per-core caches: coherent for one address under one key, WBINVD local to its core.
struct CoreCacheTests {
    /// A launched two-vCPU guest on a two-core platform with caches; vCPU 1 (core 1) stores 0x2222 at
    /// 0x180000, then vCPU 0 (core 0) loads it.
    func fixture() throws -> (Machine, VirtualMachine, CollectingSink) {
        var config = PlatformConfig()
        config.cacheBytes = 64 << 10
        config.cores = 2
        let sink = CollectingSink()
        let machine = Machine(config: config, seed: 1, sink: sink)
        let vm = try machine.primary.kvm.createVM(name: "g", memoryBytes: 2 << 20, policy: 1, sev: true, vcpus: 2)
        vm.entry = 0x100000
        vm.addImage(gpa: 0x100000, bytes: [
            Instruction(.movImmediate, a: 1, immediate: 0x180000),
            Instruction(.jumpIfNotZero, a: 7, immediate: 0x100040),     // r7: the vCPU index
            Instruction(.load, a: 3, b: 1, width: 8),                   // vCPU 0: read
            Instruction(.halt),
            Instruction(.movImmediate, a: 2, immediate: 0x2222),         // vCPU 1: write
            Instruction(.store, a: 1, b: 2, width: 8),
            Instruction(.halt),
        ].flatMap(\.encoded))
        var none: GuestOwner?
        try machine.primary.vmm.launch(vm, owner: &none)
        return (machine, vm, sink)
    }

    func writeBacks(_ sink: CollectingSink, spa: UInt64) -> [CacheOp] {
        sink.events.compactMap { if case .cacheOp(let c) = $0.body, c.op == .writeBack, c.spa == spa { c } else { nil } }
    }

    @Test("a line written on one core is read on another: the dirty copy is written back first")
    func coherentForOneKey() throws {
        let (machine, vm, sink) = try fixture()
        try machine.primary.kvm.run(vm, vcpu: 1)
        let spa = try vm.translate(0x180000)
        #expect(writeBacks(sink, spa: spa).isEmpty)
        try machine.primary.kvm.run(vm, vcpu: 0)
        #expect(vm.vcpus[0].registers[3] == 0x2222)
        #expect(writeBacks(sink, spa: spa).map(\.core) == [1])
        let present = sink.events.compactMap { if case .cacheOp(let c) = $0.body, c.op == .present { c.core } else { nil } }
        #expect(present == [0, 1], "each core announces its cache")
    }

    @Test("WBINVD on one core leaves the other core's dirty lines; on all cores it does not")
    func wbinvdIsPerCore() throws {
        let (machine, vm, _) = try fixture()
        let p = machine.primary
        try p.kvm.run(vm, vcpu: 1)
        let spa = try vm.translate(0x180000)
        let before = try p.memory.rawBytes(at: spa, count: 8)
        p.wbinvd(core: 0)
        #expect(try p.memory.rawBytes(at: spa, count: 8) == before, "core 1 still holds the line")
        p.wbinvdAllCores()
        #expect(try p.memory.rawBytes(at: spa, count: 8) != before)
    }

    @Test("the host reclaiming an SEV guest's page (swap or migration) writes back every core's cache first",
          arguments: [false, true])
    func reclaimFlushes(migrate: Bool) throws {
        var config = PlatformConfig()
        config.cacheBytes = 64 << 10
        config.cores = 2
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 1, immediate: 0x180000),
            Instruction(.movImmediate, a: 2, immediate: 0x77),
            Instruction(.store, a: 1, b: 2, width: 8),
            Instruction(.halt),
        ], config: config, pin: false)
        try f.platform.kvm.run(f.vm)
        let before = f.sink.events.count
        if migrate { try f.platform.kvm.migratePage(f.vm, gpa: 0x180000) } else { try f.platform.kvm.swapOut(f.vm, gpa: 0x180000, pages: 1) }
        let wbinvd = f.sink.events[before...].compactMap { if case .cacheOp(let c) = $0.body, c.op == .wbinvd { c.core } else { nil } }
        #expect(wbinvd == [0, 1])
    }

    @Test("DF_FLUSH after a DEACTIVATE wants WBINVD on every core: one core is not enough")
    func dfFlushNeedsEveryCore() throws {
        let (machine, vm, _) = try fixture()
        let p = machine.primary
        let deactivate = SEVData.Handle(vm.handle)
        #expect(try p.kvm.driver.issue(.deactivate, deactivate).0 == .success)
        p.wbinvd(core: 0)
        #expect(try p.kvm.driver.issue(.dfFlush, CommandBuffer(for: .dfFlush)).0 == .wbinvdRequired)
        p.wbinvd(core: 1)
        #expect(try p.kvm.driver.issue(.dfFlush, CommandBuffer(for: .dfFlush)).0 == .success)
    }
}
