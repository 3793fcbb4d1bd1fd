import TraceFormat
import Testing
@testable import SEVMachine

/// A host running with SME: slot 0 holds the host key, and everything without a guest key goes
/// through it.
struct SMETests {
    static let smeOn: PlatformConfig = { var c = PlatformConfig(); c.sme = true; return c }()

    static let program = [
        Instruction(.movImmediate, a: 1, immediate: 0x200000),
        Instruction(.movImmediate, a: 2, immediate: 0x1122_3344_5566_7788),
        Instruction(.store, a: 1, b: 2, width: 8),          // the shared page
        Instruction(.movImmediate, a: 1, immediate: 0x300000),
        Instruction(.store, a: 1, b: 2, width: 8),          // a private page
        Instruction(.halt),
    ]
    static let plaintext: [UInt8] = [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]

    func run(sme: Bool, seed: UInt64 = 1) throws -> MachineFixture {
        let f = try MachineFixture(Self.program, shared: [(0x200000, 1)], seed: seed,
                                   config: sme ? Self.smeOn : PlatformConfig())
        try f.platform.kvm.run(f.vm)
        return f
    }

    @Test("a shared page is plaintext in DRAM without SME and encrypted under the host key with it; host, guest and devices agree on it either way",
          arguments: [false, true])
    func sharedPage(sme: Bool) throws {
        let f = try run(sme: sme)
        let dram = try f.platform.memory.rawBytes(at: try f.vm.translate(0x200000), count: 8)
        #expect((dram == Self.plaintext) == !sme)
        #expect(try f.platform.kvm.read(f.vm, gpa: 0x200000, length: 8) == Self.plaintext)
        let nic = f.platform.addDevice(name: "nic0")
        #expect(try nic.dmaRead(vm: f.vm, gpa: 0x200000, length: 8) == Self.plaintext)
        #expect((f.platform.controller.key(forASID: 0) != nil) == sme, "slot 0 holds a key only with SME")
    }

    @Test("host memory the guest never touches (the nested page table) is encrypted too, and reads back")
    func hostMemory() throws {
        let off = try run(sme: false), on = try run(sme: true)
        let root = on.vm.nptRoot
        #expect(try off.platform.memory.rawBytes(at: root, count: 8) != on.platform.memory.rawBytes(at: root, count: 8))
        #expect(try on.platform.controller.readBytes(root, count: 8, key: nil) == off.platform.controller.readBytes(root, count: 8, key: nil))
    }

    @Test("with SME a hypervisor read of a private page decrypts the guest's ciphertext with the wrong key: neither ciphertext nor plaintext")
    func privatePage() throws {
        let f = try run(sme: true)
        let spa = try f.vm.translate(0x300000)
        let ciphertext = try f.platform.memory.rawBytes(at: spa, count: 8)
        let seen = try f.platform.kvm.read(f.vm, gpa: 0x300000, length: 8)
        #expect(seen != ciphertext && seen != Self.plaintext)
        #expect(f.vm.vcpus[0].registers[2] == 0x1122_3344_5566_7788)
    }

    @Test("SYSCFG: the host's MemEncryptionModEn decides whether KVM offers SEV; a guest reading SYSCFG gets 0")
    func syscfg() throws {
        var off = PlatformConfig()
        off.memoryEncryptionEnabled = false
        #expect(off.syscfg == 0 && PlatformConfig().syscfg == 1 << 23)
        let machine = Machine(config: off, seed: 1, sink: CollectingSink())
        #expect(throws: MachineError.self) { try machine.primary.kvm.createVM(name: "g", memoryBytes: 2 << 20, policy: 1, sev: true) }
        #expect(throws: Never.self) { try machine.primary.kvm.createVM(name: "plain", memoryBytes: 2 << 20, policy: 0, sev: false) }
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 1, immediate: 0xC001_0010),
            Instruction(.rdmsr),
            Instruction(.move, a: 8, b: 0),
            Instruction(.halt),
        ])
        try f.platform.kvm.run(f.vm)
        #expect(f.vm.vcpus[0].registers[8] == 0)
    }

    @Test("KVM clears its nested-page-table pages: under SME an entry it never filled still reads as not present")
    func zeroedNestedTables() throws {
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 1, immediate: 0xFEB0_0000),
            Instruction(.movImmediate, a: 2, immediate: 5),
            Instruction(.store, a: 1, b: 2, width: 4),
            Instruction(.halt),
        ], mmio: 0xFEB0_0000, config: Self.smeOn)
        try f.platform.kvm.run(f.vm)
        #expect(f.exits.map(\.exitCode) == [VMExit.npf, VMExit.hlt], "an MMIO exit, not a walk into garbage")
    }

    @Test("the host key comes from the seed: the same seed gives the same DRAM, another seed another")
    func keyFromSeed() throws {
        let a = try run(sme: true, seed: 1), b = try run(sme: true, seed: 1), c = try run(sme: true, seed: 2)
        let spa = try a.vm.translate(0x200000)
        let bytes = try [a, b, c].map { try $0.platform.memory.rawBytes(at: spa, count: 8) }
        #expect(bytes[0] == bytes[1] && bytes[0] != bytes[2])
    }
}
