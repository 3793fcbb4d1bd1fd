import TraceFormat
import Testing
@testable import SEVMachine

/// KVM memory slots: guest RAM in several slots with separate host backing, launch data across them,
/// and a slot the VMM deletes under a running guest.
struct MemslotTests {
    /// A launched 6 MiB guest in `slots` memslots whose image has 32 bytes across the 2 MiB boundary.
    /// The machine comes back too: the VM refers to it without keeping it alive.
    func fixture(slots: Int, program: [Instruction] = [Instruction(.halt)]) throws
        -> (CollectingSink, VirtualMachine, [UInt8], Machine) {
        let sink = CollectingSink()
        let machine = Machine(config: PlatformConfig(), seed: 5, sink: sink)
        let vm = try machine.primary.kvm.createVM(name: "g", memoryBytes: 6 << 20, policy: 0, sev: true, slots: slots)
        vm.entry = 0x100000
        vm.addImage(gpa: 0x100000, bytes: program.flatMap(\.encoded))
        vm.addImage(gpa: 0x1FFFF0, bytes: Array(0..<32))
        var none: GuestOwner?
        let out = try machine.primary.vmm.launch(vm, owner: &none)
        return (sink, vm, out, machine)
    }

    @Test("each slot is backed by its own host memory: consecutive inside, a gap between")
    func layout() throws {
        let (sink, vm, _, machine) = try fixture(slots: 3)
        defer { withExtendedLifetime(machine) {} }
        #expect(vm.memslots.map(\.gpa) == [0, 2 << 20, 4 << 20])
        #expect(vm.memslots.map(\.userspaceAddress) == [0, 2 << 20, 4 << 20].map { vm.userspaceBase + $0 })
        let maps = sink.events.compactMap { if case .nptChange(let n) = $0.body, n.op == .map { n } else { nil } }
        #expect(maps.map(\.gpa) == [0, 2 << 20, 4 << 20] && maps.allSatisfy { $0.pages == 512 })
        #expect(try vm.translate(0x1FF000) + 0x1000 != vm.translate(0x200000), "slot 1 does not follow slot 0 in host memory")
        #expect(try vm.translate(0x200000) + 0x1000 == vm.translate(0x201000))
    }

    @Test("LAUNCH_UPDATE_DATA across two slots is one firmware command per contiguous run, with the same measurement")
    func launchAcrossSlots() throws {
        let (sinkOne, _, one, m1) = try fixture(slots: 1)
        let (sinkThree, vm, three, m3) = try fixture(slots: 3)
        defer { withExtendedLifetime((m1, m3)) {} }
        let updates = { (s: CollectingSink) in
            s.events.compactMap { if case .pspCommand(let p) = $0.body, p.command == SEVCommand.launchUpdateData.rawValue { p } else { nil } }
        }
        #expect(updates(sinkOne).count == 2)
        #expect(updates(sinkThree).count == 3)
        #expect(one == three, "the launch digest covers the bytes, not where they live")
        #expect(try vm.platform.vmm.debugDecrypt(vm, gpa: 0x1FFFF0, length: 32) == Array(0..<32))
    }

    @Test("a deleted slot turns the guest's private loads and stores there into MMIO exits the hypervisor answers")
    func deletedSlot() throws {
        let (sink, vm, _, machine) = try fixture(slots: 3, program: [
            Instruction(.movImmediate, a: 1, immediate: 0x300000),
            Instruction(.movImmediate, a: 2, immediate: 0xC0FFEE),
            Instruction(.store, a: 1, b: 2, width: 8),
            Instruction(.halt),
            Instruction(.store, a: 1, b: 2, width: 8),
            Instruction(.load, a: 3, b: 1, width: 8),
            Instruction(.halt),
        ])
        defer { withExtendedLifetime(machine) {} }
        let kvm = vm.platform.kvm
        try kvm.run(vm)
        try kvm.deleteMemslot(vm, slot: 1)
        #expect(vm.memslots.map(\.slot) == [0, 2])
        #expect(throws: MachineError.self) { try kvm.read(vm, gpa: 0x300000, length: 8) }
        #expect(throws: MachineError.invalid("g: guest physical address 0x300000 is in no memslot")) {
            try kvm.unmap(vm, gpa: 0x300000, pages: 1)
        }
        try kvm.run(vm)
        let exits = sink.events.compactMap { if case .vmExit(let x) = $0.body, x.exitCode == VMExit.npf { x } else { nil } }
        let cbit = vm.platform.config.cbitMask
        #expect(exits.map(\.exitInfo2) == [0x300000 | cbit, 0x300000 | cbit], "private accesses: the C-bit is in EXITINFO2")
        #expect(exits[0].exitInfo1 & 0x2 != 0 && exits[0].registers[2] == 0xC0FFEE, "the stored value, in the VMCB")
        #expect(vm.vcpus[0].registers[3] == 0, "unassigned memory reads as 0")
        #expect(throws: MachineError.invalid("g has no memslot 1")) { try kvm.deleteMemslot(vm, slot: 1) }
    }

    @Test("slots must split memory into equal multiples of 2 MiB")
    func unevenSlots() throws {
        let machine = Machine(config: PlatformConfig(), seed: 1, sink: CollectingSink())
        #expect(throws: MachineError.self) { try machine.primary.kvm.createVM(name: "g", memoryBytes: 6 << 20, policy: 1, sev: true, slots: 2) }
    }
}
