import TraceFormat
import Testing
@testable import SEVMachine

/// Swapped-out guest pages and KVM's async page faults (the Linux 4.x protocol: both notifications as
/// #PF with a token in CR2, the reason in the guest's `apf_reason`).
struct AsyncPageFaultTests {
    /// Enables async PF with `flags` (bit 0 enable, bit 1 SEND_ALWAYS) at `area`, stores into 0x180000,
    /// halts (the test swaps the page out), then loads from it twice.
    static func program(area: UInt64, flags: UInt64) -> [Instruction] {
        [
            Instruction(.movImmediate, a: 1, immediate: KVM.msrKVMAsyncPFEnable),
            Instruction(.movImmediate, a: 0, immediate: area | flags),
            Instruction(.movImmediate, a: 2, immediate: 0),
            Instruction(.wrmsr),
            Instruction(.movImmediate, a: 5, immediate: 0x180000),
            Instruction(.movImmediate, a: 6, immediate: 0x55),
            Instruction(.store, a: 5, b: 6, width: 8),
            Instruction(.halt),
            Instruction(.load, a: 7, b: 5, width: 8),
            Instruction(.load, a: 8, b: 5, width: 8),
            Instruction(.halt),
        ]
    }

    func swappedRun(area: UInt64, flags: UInt64, shared: Bool) throws -> MachineFixture {
        let f = try MachineFixture(Self.program(area: area, flags: flags), shared: shared ? [(area, UInt64(1))] : [], pin: false)
        try f.platform.kvm.run(f.vm)
        try f.platform.kvm.swapOut(f.vm, gpa: 0x180000, pages: 1)
        return f
    }

    var runs: (MachineFixture) -> [VMRun] = { f in f.sink.events.compactMap { if case .vmRun(let r) = $0.body { r } else { nil } } }

    @Test("with the area decrypted: NPF, #PF 'not present' and #PF 'page ready' with one token, and the guest carries on")
    func asyncPageFault() throws {
        let f = try swappedRun(area: 0x1f0000, flags: 3, shared: true)
        try f.platform.kvm.run(f.vm)
        #expect(f.vm.vcpus[0].isHalted)
        #expect(f.exits.map(\.exitCode) == [VMExit.msr, VMExit.hlt, VMExit.npf, VMExit.interrupt, VMExit.hlt])
        #expect(f.exits[2].exitInfo2 == 0x180000 | f.platform.config.cbitMask, "a private page: EXITINFO2 carries the C-bit")
        let injected = runs(f).filter { $0.injectedVector != nil }
        #expect(injected.count == 2 && injected.allSatisfy { $0.injectedVector == 14 && $0.cr2 == 0 })
        #expect(injected[0].eventInjection == VMRun.exception(vector: 14, errorCode: 0))
        // KVM's keyless writes of the reasons, each read back and cleared by the guest's handler.
        let area = f.accesses.filter { $0.gpa == 0x1f0000 && ($0.kind == .read || $0.kind == .write) }
        #expect(area.map(\.value) == [1, 1, 0, 2, 2, 0])
        #expect(area.map { $0.actor == .hypervisor } == [true, false, false, true, false, false])
        #expect(area.allSatisfy { !$0.cbit })
        // The page came back into another frame: the guest's value is garbage, the same both times.
        let r = f.vm.vcpus[0].registers
        #expect(r[7] != 0x55 && r[7] == r[8])
    }

    @Test("without SEND_ALWAYS the guest's kernel code is not interrupted: the vCPU waits for the page")
    func synchronousWithoutSendAlways() throws {
        let f = try swappedRun(area: 0x1f0000, flags: 1, shared: true)
        try f.platform.kvm.run(f.vm)
        #expect(f.exits.map(\.exitCode) == [VMExit.msr, VMExit.hlt, VMExit.npf, VMExit.hlt])
        #expect(runs(f).allSatisfy { $0.eventInjection == 0 })
    }

    @Test("with the area private the reason decrypts to garbage: the handler takes a page fault at the token")
    func privateArea() throws {
        let f = try swappedRun(area: 0x1e0000, flags: 3, shared: false)
        #expect(throws: MachineError.guestPageFault(vm: "guest", vcpu: 0, gva: 0, rip: 0x100080)) {
            try f.platform.kvm.run(f.vm)
        }
    }

    @Test("tokens count up per vCPU: id << 12 | vcpu")
    func tokens() throws {
        let f = try swappedRun(area: 0x1f0000, flags: 3, shared: true)
        try f.platform.kvm.run(f.vm)
        try f.platform.kvm.swapOut(f.vm, gpa: 0x180000, pages: 1)
        f.vm.vcpus[0].rip = 0x100080
        try f.platform.kvm.run(f.vm)
        #expect(runs(f).filter { $0.injectedVector != nil }.map(\.cr2) == [0, 0, 0x1000, 0x1000])
    }

    @Test("memory pinned by REG_REGION cannot be swapped out")
    func pinnedRefuses() throws {
        let f = try MachineFixture([Instruction(.halt)])
        #expect(throws: MachineError.self) { try f.platform.kvm.swapOut(f.vm, gpa: 0x180000, pages: 1) }
    }
}
