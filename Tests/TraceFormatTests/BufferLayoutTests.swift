import TestSupport
import Testing
@testable import TraceFormat

/// The SEV API command buffers and KVM's user structures: sizes as the C headers give them, fields that
/// stay inside and apart, and reading and writing that agree byte for byte.
struct BufferLayoutTests {
    /// `sizeof(struct sev_data_*)` (`include/linux/psp-sev.h`, packed) per command; COPY from the SEV API.
    static let sevSizes: [(SEVCommand, Int)] = [
        (.initialize, 20), (.platformStatus, 12), (.pekCSR, 12), (.getID, 12), (.downloadFirmware, 12),
        (.pekCertImport, 28), (.pdhCertExport, 28), (.launchStart, 36), (.receiveStart, 36), (.activate, 8),
        (.deactivate, 4), (.decommission, 4), (.launchFinish, 4), (.sendFinish, 4), (.sendCancel, 4),
        (.receiveFinish, 4), (.guestStatus, 13), (.launchUpdateData, 20), (.launchMeasure, 20), (.launchSecret, 52),
        (.sendUpdateData, 52), (.receiveUpdateData, 52), (.sendStart, 68), (.copy, 24), (.dbgDecrypt, 28),
        (.dbgEncrypt, 28), (.attestation, 36),
    ]

    /// `sizeof(struct kvm_sev_*)` (`include/uapi/linux/kvm.h`, x86-64) per sub-command.
    static let kvmSizes: [(KVMSevCommand, Int)] = [
        (.launchStart, 40), (.receiveStart, 40), (.launchUpdateData, 16), (.launchMeasure, 16), (.launchSecret, 48),
        (.sendUpdateData, 48), (.receiveUpdateData, 48), (.guestStatus, 12), (.dbgDecrypt, 24), (.dbgEncrypt, 24),
        (.getAttestationReport, 32), (.sendStart, 72),
    ]

    @Test("every SEV command buffer has the size of its C structure", arguments: sevSizes)
    func sevSize(command: SEVCommand, size: Int) throws {
        let layout = try #require(SEVData.layout(of: command))
        #expect(layout.size == size)
        #expect(CommandBuffer.size(of: command) == size)
        try Self.checkFields(layout, seed: UInt64(command.rawValue))
    }

    @Test("commands without a buffer have no layout")
    func noBuffer() {
        for c in [SEVCommand.shutdown, .factoryReset, .pekGen, .pdhGen, .dfFlush] {
            #expect(SEVData.layout(of: c) == nil && CommandBuffer.size(of: c) == 0, "\(c)")
        }
    }

    @Test("every KVM user structure has the x86-64 size and the compiler's natural layout", arguments: kvmSizes)
    func kvmSize(command: KVMSevCommand, size: Int) throws {
        let layout = try #require(KVMSevData.layout(of: command))
        #expect(layout.size == size && command.userStructSize == size)
        try Self.checkFields(layout, seed: UInt64(command.rawValue))
        // Not packed: each field starts at the next offset aligned to its own size, in declaration order,
        // and the structure is padded to its widest field.
        var next = 0, widest = 1
        for (offset, width, alignment) in Self.describe(layout) {
            next = (next + alignment - 1) / alignment * alignment
            #expect(offset == next, "\(command): a field at \(offset), the compiler puts it at \(next)")
            next = offset + width
            widest = max(widest, alignment)
        }
        #expect(size == (next + widest - 1) / widest * widest, "\(command): trailing padding")
    }

    @Test("sub-commands without a user structure take none")
    func kvmNoStruct() {
        for c in [KVMSevCommand.initialize, .launchFinish, .sendFinish, .sendCancel, .receiveFinish] {
            #expect(KVMSevData.layout(of: c) == nil && c.userStructSize == 0, "\(c)")
        }
    }

    @Test("storing leaves reserved bytes alone and a PSP record reads back as its layout")
    func reservedBytesAndRecords() {
        var b = CommandBuffer(bytes: [UInt8](repeating: 0xEE, count: SEVData.LaunchUpdateData.size))
        var d = SEVData.LaunchUpdateData()
        (d.handle, d.address, d.length) = (7, 0x1234_5678_9ABC, 64)
        d.store(into: &b)
        #expect(Array(b.bytes[4..<8]) == [0xEE, 0xEE, 0xEE, 0xEE], "the reserved word after the handle")
        let record = PSPCommand(platform: 0, command: SEVCommand.launchUpdateData.rawValue, handle: 7, asid: 1, status: 0,
                                platformBefore: 2, platformAfter: 2, guestBefore: 2, guestAfter: 2, buffer: b.bytes, result: [])
        #expect(record.data(as: SEVData.LaunchUpdateData.self) == d)
        #expect(SEVData.Activate(CommandBuffer(bytes: [1, 0])).handle == 1, "a short buffer reads as zeros past its end")
    }

    /// Offset, width and alignment of each field, in declaration order.
    static func describe(_ layout: any BufferLayout.Type) -> [(Int, Int, Int)] {
        func fields<L: BufferLayout>(_: L.Type) -> [(Int, Int, Int)] {
            L.fields.map { f in
                if case .bytes = f { (f.offset, f.width, 1) } else { (f.offset, f.width, f.width) }
            }
        }
        return fields(layout)
    }

    /// Fields inside the structure and apart from each other; a random buffer decodes, stores into zeros
    /// with the same bytes at every field, and decodes again to the same value.
    static func checkFields(_ layout: any BufferLayout.Type, seed: UInt64) throws {
        func check<L: BufferLayout>(_: L.Type) {
            var covered = [Bool](repeating: false, count: L.size)
            for f in L.fields {
                #expect(f.offset >= 0 && f.offset + f.width <= L.size, "\(L.self): a field past the end")
                for i in f.offset..<min(f.offset + f.width, L.size) {
                    #expect(!covered[i], "\(L.self): fields overlap at byte \(i)")
                    covered[i] = true
                }
            }
            var rng = SplitMix(seed: seed)
            let random = CommandBuffer(bytes: (0..<L.size).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
            let value = L(random)
            let stored = value.buffer
            #expect(L(stored) == value, "\(L.self): decode after store")
            for i in 0..<L.size {
                #expect(stored.bytes[i] == (covered[i] ? random.bytes[i] : 0), "\(L.self): byte \(i)")
            }
        }
        check(layout)
    }
}
