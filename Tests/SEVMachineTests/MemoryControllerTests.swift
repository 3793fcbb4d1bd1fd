import Testing
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

    @Test("an access outside memory is an error, not a crash")
    func outOfRange() {
        #expect(throws: MachineError.physicalAddressOutOfRange(spa: 1 << 20, size: 8)) {
            _ = try controller.readValue(1 << 20, size: 8, key: nil)
        }
    }
}
