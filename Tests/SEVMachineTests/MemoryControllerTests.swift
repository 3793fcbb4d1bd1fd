import Testing
import TraceFormat
@testable import SEVMachine

struct MemoryControllerTests {
    let controller = MemoryController(memory: PhysicalMemory(size: 1 << 20), asidCount: 16)
    let key = EncryptionKey(bytes: Array(0..<16))

    @Test("DRAM holds ciphertext for keyed writes and plaintext for keyless ones")
    func ciphertextInDRAM() throws {
        let data: [UInt8] = Array("sixteen byte msg".utf8)
        try controller.writeBytes(0x1000, data, key: key)
        #expect(try controller.memory.rawBytes(at: 0x1000, count: 16) != data)
        #expect(try controller.readBytes(0x1000, count: 16, key: key) == data)
        #expect(try controller.readBytes(0x1000, count: 16, key: nil) == controller.memory.rawBytes(at: 0x1000, count: 16))
        try controller.writeBytes(0x2000, data, key: nil)
        #expect(try controller.memory.rawBytes(at: 0x2000, count: 16) == data)
    }

    @Test("the physical-address tweak: same plaintext, different addresses, different ciphertext; same address, same ciphertext")
    func tweak() throws {
        let data = [UInt8](repeating: 0x41, count: 16)
        try controller.writeBytes(0x3000, data, key: key)
        try controller.writeBytes(0x3010, data, key: key)
        try controller.writeBytes(0x5000, data, key: key)
        let a = try controller.memory.rawBytes(at: 0x3000, count: 16)
        #expect(a != (try controller.memory.rawBytes(at: 0x3010, count: 16)))
        #expect(a != (try controller.memory.rawBytes(at: 0x5000, count: 16)))
        try controller.writeBytes(0x3000, data, key: key)
        #expect(a == (try controller.memory.rawBytes(at: 0x3000, count: 16)), "encryption is deterministic per (key, address)")
    }

    @Test("partial writes under a key keep the rest of the block", arguments: [1, 2, 4, 8] as [Int])
    func partialWrites(size: Int) throws {
        let base: [UInt8] = Array(100..<132)
        try controller.writeBytes(0x4000, base, key: key)
        try controller.writeValue(0x4000 + 13, size: size, value: 0xFFFF_FFFF_FFFF_FFFF, key: key)
        var expected = base
        for i in 0..<size { expected[13 + i] = 0xFF }
        #expect(try controller.readBytes(0x4000, count: 32, key: key) == expected)
    }

    @Test("a vCPU's accesses use the key its ASID holds now: a key loaded into the slot after the vCPU ran is the one that encrypts")
    func vcpuFollowsKeyChanges() throws {
        let f = try MachineFixture([Instruction(.halt)])
        _ = try f.platform.kvm.run(f.vm)
        let vcpu = f.vm.vcpus[0]
        let gva: UInt64 = 0x200000
        let spa = try vcpu.translate(gva).spa
        let first = try #require(f.platform.controller.key(forASID: f.vm.asid))
        try vcpu.store(gva: gva, size: 8, value: 0x1122_3344_5566_7788, register: MemoryAccess.noRegister)
        #expect(try f.platform.controller.readValue(spa, size: 8, key: first) == 0x1122_3344_5566_7788)
        // ACTIVATE of another key into the same ASID (what reusing an ASID does).
        let second = EncryptionKey(bytes: (0..<16).map { UInt8(truncatingIfNeeded: $0 * 17 + 3) })
        f.platform.controller.setKey(second, forASID: f.vm.asid)
        try vcpu.store(gva: gva + 8, size: 8, value: 0x0102_0304_0506_0708, register: MemoryAccess.noRegister)
        #expect(try f.platform.controller.readValue(spa + 8, size: 8, key: second) == 0x0102_0304_0506_0708)
        #expect(try vcpu.load(gva: gva + 8, size: 8, register: MemoryAccess.noRegister) == 0x0102_0304_0506_0708)
        // What the old key wrote now reads as the new key decrypts it: not the plaintext.
        #expect(try vcpu.load(gva: gva, size: 8, register: MemoryAccess.noRegister) != 0x1122_3344_5566_7788)
    }

    @Test("an access outside memory is an error, not a crash")
    func outOfRange() {
        #expect(throws: MachineError.physicalAddressOutOfRange(spa: 1 << 20, size: 8)) {
            _ = try controller.readValue(1 << 20, size: 8, key: nil)
        }
    }
}
