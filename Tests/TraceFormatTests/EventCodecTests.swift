import TestSupport
import Testing
@testable import TraceFormat

/// A deterministic source of random events covering every kind and field, within the bounds a reader
/// checks (``EventBody/validationProblem``).
struct EventFuzzer {
    private var rng: SplitMix

    init(state: UInt64) { rng = SplitMix(seed: state) }

    mutating func next() -> UInt64 { rng.next() }

    mutating func small(_ n: UInt64) -> UInt64 { next() % n }
    mutating func bool() -> Bool { next() & 1 == 0 }
    mutating func wide() -> UInt64 { bool() ? next() : small(1 << 20) }

    mutating func actor() -> Actor {
        switch small(4) {
        case 0: .vcpu(vm: UInt16(small(4)), index: UInt16(small(3)))
        case 1: .hypervisor
        case 2: .device(UInt16(small(3)))
        default: .psp
        }
    }

    mutating func body() -> EventBody {
        switch small(16) {
        case 0...3:
            return .memoryAccess(MemoryAccess(
                actor: actor(), vm: bool() ? MemoryAccess.noVM : UInt16(small(4)), asid: UInt16(small(16)),
                kind: AccessKind.allCases[Int(small(UInt64(AccessKind.allCases.count)))], gva: wide(), gpa: wide(),
                spa: wide(), size: [1, 2, 4, 8, 8, 16, 64][Int(small(7))], cbit: bool(),
                reason: CbitReason.allCases[Int(small(UInt64(CbitReason.allCases.count)))],
                register: bool() ? MemoryAccess.noRegister : UInt8(small(17)), value: wide()))
        case 4:
            return .registerOp(RegisterOp(vm: UInt16(small(4)), vcpu: UInt16(small(4)),
                                          op: RegisterOpKind.allCases[Int(small(UInt64(RegisterOpKind.allCases.count)))],
                                          dst: UInt8(small(17)), src: UInt8(small(18)), result: wide()))
        case 5:
            return .cbitChange(CbitChange(vm: UInt16(small(4)), vcpu: 0, gva: wide(), gpa: wide(), spa: wide(),
                                          pteSPA: wide(), old: bool(), new: bool()))
        case 6:
            return .nptChange(NPTChange(vm: UInt16(small(4)), op: NPTOperation.allCases[Int(small(3))], gpa: wide(),
                                        spa: wide(), pages: small(1 << 16)))
        case 7:
            return .pspCommand(PSPCommand(platform: UInt8(small(3)), command: UInt8(small(256)), handle: UInt32(small(100)), asid: UInt16(small(16)),
                                          status: UInt16(small(0x20)), platformBefore: UInt8(small(3)),
                                          platformAfter: UInt8(small(3)), guestBefore: UInt8(small(7)), guestAfter: 0xFF,
                                          buffer: (0..<small(40)).map { _ in UInt8(small(256)) }))
        case 8:
            return bool()
                ? .vmCreated(VMCreated(vm: UInt16(small(4)), platform: UInt8(small(2)), name: "vm-é\(small(9))", asid: UInt16(small(16)),
                                       policy: UInt32(small(1 << 32)), memoryBytes: small(TraceLimits.maxVMMemoryBytes), vcpus: UInt16(small(64)), sev: bool()))
                : .taintSource(TaintSource(vm: 1, name: "key\(small(5))", gpa: wide(), spa: wide(), length: small(4096)))
        case 13:
            return .ownerCheck(OwnerCheck(vm: UInt16(small(4)), accepted: bool(), entry: wide() >> 12,
                                          regions: (0..<small(5)).map { _ in OwnerCheck.Region(gpa: wide() >> 16, length: small(1 << 20)) }))
        case 12:
            return .cacheOp(CacheOp(op: CacheOperation.allCases[Int(small(UInt64(CacheOperation.allCases.count)))], spa: wide(), asid: UInt16(small(16)),
                                    lines: small(1 << 14), core: UInt16(small(8))))
        case 10:
            return bool()
                ? .handover(Handover(vm: UInt16(small(4)), vcpu: 0, gpa: wide(), spa: wide(), length: small(4096)))
                : .platformInfo(PlatformInfo(platform: UInt8(small(3)), cbitPosition: UInt8(32 + small(20)),
                                             physAddrBits: UInt8(40 + small(13)), physAddrReduction: UInt8(small(7)),
                                             minSEVASID: UInt16(1 + small(4)), maxSEVASID: UInt16(4 + small(1020)),
                                             cores: UInt16(1 + small(64)), cacheBytes: small(1 << 26), memoryEncryption: bool(),
                                             sme: bool()))
        case 11:
            return bool()
                ? .vmRun(VMRun(vm: UInt16(small(4)), vcpu: UInt16(small(2)), asid: UInt16(small(16)),
                               nestedControl: small(8), ncr3: bool() ? wide() : 0, eventInjection: bool() ? VMRun.exception(vector: 14, errorCode: UInt32(small(16))) : 0,
                               cr2: bool() ? wide() : 0))
                : .vmExit(VMExit(vm: 1, vcpu: 0, exitCode: UInt16(small(0x500)), exitInfo1: wide(), exitInfo2: wide(),
                                 rip: wide(), registers: (0..<16).map { _ in wide() }))
        case 14:
            return .kvmIoctl(KVMIoctl(vm: UInt16(small(4)), command: bool() ? UInt32(small(23)) : UInt32(truncatingIfNeeded: wide()),
                                      fd: bool() ? 3 : Int32(truncatingIfNeeded: wide()), errno: Int32(small(30)),
                                      firmwareError: UInt32(small(0x30))))
        default:
            return bool()
                ? .vcpuMode(VCPUModeChange(vm: UInt16(small(4)), vcpu: 1, mode: PagingMode.allCases[Int(small(UInt64(PagingMode.allCases.count)))]))
                : .vcpuHalt(VCPURef(vm: UInt16(small(4)), vcpu: UInt16(small(4))))
        }
    }

    /// `count` events with non-decreasing cycles.
    mutating func events(_ count: Int) -> [TraceEvent] {
        var cycle: UInt64 = 0
        return (0..<count).map { i in
            cycle += small(3) == 0 ? next() >> 40 : small(10)
            return TraceEvent(seq: UInt64(i), cycle: cycle, body: body())
        }
    }
}

struct EventCodecTests {
    @Test("random events survive encode and decode", arguments: [1, 2, 3, 42, 0xDEAD_BEEF] as [UInt64])
    func roundTrip(seed: UInt64) throws {
        var fuzz = EventFuzzer(state: seed)
        let events = fuzz.events(5000)
        var encoder = EventEncoder()
        var w = ByteWriter()
        for e in events { encoder.encode(cycle: e.cycle, e.body, into: &w) }
        var decoder = EventDecoder()
        var r = ByteReader(w.bytes)
        var decoded: [TraceEvent] = []
        while !r.isAtEnd {
            let (cycle, body) = try decoder.decode(from: &r)
            decoded.append(TraceEvent(seq: UInt64(decoded.count), cycle: cycle, body: body))
        }
        #expect(decoded == events)
    }

    @Test("every event kind is produced by the fuzzer")
    func fuzzerCoversEveryKind() {
        var fuzz = EventFuzzer(state: 7)
        let names = Set(fuzz.events(2000).map { EventFormatter.typeName($0.body) })
        #expect(names == ["mem", "reg", "cbit", "npt", "psp", "vm", "secret", "mode", "halt", "handover", "vmrun", "vmexit",
                          "cache", "platform", "owner", "kvm"])
    }

    @Test("a repeated actor costs no bytes: consecutive accesses of one vCPU are compact")
    func compactness() {
        var encoder = EventEncoder()
        var w = ByteWriter()
        for i in 0..<1000 as Range<UInt64> {
            encoder.encode(cycle: i * 4, .memoryAccess(MemoryAccess(
                actor: .vcpu(vm: 0, index: 0), vm: 0, asid: 1, kind: .read, gva: 0x1000 + i * 8, gpa: 0x1000 + i * 8,
                spa: 0x100_1000 + i * 8, size: 8, cbit: true, reason: .guestPTE, register: 3, value: i)), into: &w)
        }
        #expect(w.count < 1000 * 9)
    }

    /// Accesses whose every field is as long as its layout allows (a device actor's and a vCPU's, a size
    /// and a register to carry, addresses that move by the most, a value that needs every varint byte).
    static let longestAccesses: [MemoryAccess] = [
        MemoryAccess(actor: .vcpu(vm: .max, index: .max), vm: .max - 1, asid: .max, kind: .write, gva: .max, gpa: 1 << 63,
                     spa: 1 << 63 | 1, size: .max, cbit: true, reason: .guestPTE, register: 200, value: 1 << 56 - 1),
        MemoryAccess(actor: .device(.max), vm: .max - 1, asid: .max, kind: .dmaWrite, gva: 1 << 63, gpa: .max,
                     spa: .max, size: 3, cbit: false, reason: .host, register: 31, value: .max),
    ]

    @Test("the longest memory access fits the bound its encoder reserves, and the access path writes what the event path writes",
          arguments: longestAccesses)
    func longestAccess(_ access: MemoryAccess) throws {
        var direct = EventEncoder(), general = EventEncoder()
        var a = ByteWriter(), b = ByteWriter()
        direct.encode(cycle: .max, access: access, into: &a)
        general.encode(cycle: .max, .memoryAccess(access), into: &b)
        #expect(a.count <= EventEncoder.maxAccessBytes)
        #expect(a.bytes == b.bytes)
        var decoder = EventDecoder()
        var r = ByteReader(a.bytes)
        let decoded = try decoder.decode(from: &r)
        #expect(decoded.cycle == .max && decoded.body == .memoryAccess(access))
    }

    /// Events of two vCPUs running real register arithmetic (so results, stores and exit dumps are what
    /// the codec predicts), interleaved with random events of every kind (which it does not).
    static func registerTraffic(seed: UInt64, count: Int) -> [TraceEvent] {
        var fuzz = EventFuzzer(state: seed)
        var files = [[UInt64]](repeating: [UInt64](repeating: 0, count: 17), count: 2)
        var events: [TraceEvent] = []
        var cycle: UInt64 = 0
        while events.count < count {
            let v = Int(fuzz.small(2))
            let dst = UInt8(fuzz.small(17)), src = UInt8(fuzz.small(17))
            let d = files[v][Int(dst)], s = files[v][Int(src)]
            let body: EventBody
            switch fuzz.small(10) {
            case 0: body = fuzz.body()
            case 1, 2:
                let op = RegisterOpKind.allCases[Int(fuzz.small(UInt64(RegisterOpKind.allCases.count)))]
                let result: UInt64 = switch op {
                case .loadImmediate: fuzz.wide()
                case .move: s
                case .add: d &+ s
                case .sub: d &- s
                case .xor: d ^ s
                case .and: d & s
                case .or: d | s
                case .addImmediate: d &+ fuzz.small(64) &- 32
                }
                files[v][Int(dst)] = result
                body = .registerOp(RegisterOp(vm: 0, vcpu: UInt16(v), op: op, dst: dst, src: src, result: result))
            case 3:
                body = .vmExit(VMExit(vm: 0, vcpu: UInt16(v), exitCode: VMExit.ioio, exitInfo1: 0x3f8_0010, exitInfo2: 0,
                                      rip: 0x1000, registers: Array(files[v][0..<16])))
            default:
                let write = fuzz.bool()
                let value = write ? files[v][Int(dst)] : fuzz.wide()
                files[v][Int(dst)] = value
                body = .memoryAccess(MemoryAccess(actor: .vcpu(vm: 0, index: UInt16(v)), vm: 0, asid: 1, kind: write ? .write : .read,
                                                  gva: 0x2000, gpa: 0x2000, spa: 0x10_2000, size: 8, cbit: true,
                                                  reason: .guestPTE, register: dst, value: value))
            }
            cycle += fuzz.small(5)
            events.append(TraceEvent(seq: UInt64(events.count), cycle: cycle, body: body))
        }
        return events
    }

    @Test("register values the codec predicts (results, stores, exit dumps) round trip, across vCPUs and other actors",
          arguments: [1, 2, 3] as [UInt64])
    func predictedValues(seed: UInt64) throws {
        let events = Self.registerTraffic(seed: seed, count: 5000)
        var encoder = EventEncoder()
        var w = ByteWriter()
        for (i, e) in events.enumerated() {
            if i == 2500 { encoder.reset() }
            encoder.encode(cycle: e.cycle, e.body, into: &w)
        }
        var decoder = EventDecoder()
        var r = ByteReader(w.bytes)
        var decoded: [TraceEvent] = []
        while !r.isAtEnd {
            if decoded.count == 2500 { decoder.reset() }
            let (cycle, body) = try decoder.decode(from: &r)
            decoded.append(TraceEvent(seq: UInt64(decoded.count), cycle: cycle, body: body))
        }
        #expect(decoded == events)
    }

    @Test("a predicted value costs no bytes: a stored register, a register-to-register op, an unchanged exit dump")
    func predictionsAreFree() {
        func size(_ bodies: [EventBody]) -> Int {
            var encoder = EventEncoder()
            var w = ByteWriter()
            for b in bodies { encoder.encode(cycle: 0, b, into: &w) }
            return w.count
        }
        let big: UInt64 = 0x9e37_79b9_7f4a_7c15
        let load = EventBody.registerOp(RegisterOp(vm: 0, vcpu: 0, op: .loadImmediate, dst: 2, src: MemoryAccess.noRegister, result: big))
        let store = EventBody.memoryAccess(MemoryAccess(actor: .vcpu(vm: 0, index: 0), vm: 0, asid: 1, kind: .write, gva: 0, gpa: 0,
                                                        spa: 0, size: 8, cbit: true, reason: .guestPTE, register: 2, value: big))
        let otherValue = EventBody.memoryAccess(MemoryAccess(actor: .vcpu(vm: 0, index: 0), vm: 0, asid: 1, kind: .write, gva: 0,
                                                             gpa: 0, spa: 0, size: 8, cbit: true, reason: .guestPTE, register: 2,
                                                             value: big ^ 1))
        // The stored register's value is known: 4 bytes (tag, cycle, kind, deltas) instead of 8 more.
        #expect(size([load, store]) - size([load]) < size([load, otherValue]) - size([load]) - 7)
        let add = EventBody.registerOp(RegisterOp(vm: 0, vcpu: 0, op: .add, dst: 3, src: 2, result: big))
        #expect(size([load, add]) - size([load]) == 7, "tag, cycle, vm, vcpu, op, dst, src; no result")
        var registers = [UInt64](repeating: 0, count: 16)
        registers[2] = big
        let exit = EventBody.vmExit(VMExit(vm: 0, vcpu: 0, exitCode: VMExit.hlt, exitInfo1: 0, exitInfo2: 0, rip: 0, registers: registers))
        #expect(size([load, exit]) - size([load]) == 10, "tag, cycle, vm, vcpu, code (2), info1, info2, rip, count, mask")
    }

    @Test("a prediction flag where nothing can be predicted is rejected where it is")
    func impossiblePredictions() {
        // A register op with the prediction bit on li (whose immediate the trace does not know).
        var r = ByteReader([0x01, 0x00, 0x00, 0x00, 0x80, 0x02, 0xFF])
        var d = EventDecoder()
        #expect(throws: EventDecodingError.invalidValue(offset: 4, what: "predicted result of li")) { _ = try d.decode(from: &r) }
        // A memory access with the prediction bit but no register (tag: read, same actor; deltas 0, 0, 0).
        var r2 = ByteReader([0xC0, 0x00, 0x40, 0x00, 0x00, 0x00])
        var d2 = EventDecoder()
        #expect(throws: EventDecodingError.invalidValue(offset: 0, what: "predicted value without a register")) { _ = try d2.decode(from: &r2) }
        // An exit dump whose changed-register mask names a register past its count.
        var r3 = ByteReader([0x0A, 0x00, 0x00, 0x00, 0x78, 0x00, 0x00, 0x00, 0x02, 0x04])
        var d3 = EventDecoder()
        #expect(throws: EventDecodingError.invalidValue(offset: 9, what: "changed-register mask")) { _ = try d3.decode(from: &r3) }
    }

    @Test("a truncated payload is reported with its offset, not a crash")
    func truncated() {
        var encoder = EventEncoder()
        var w = ByteWriter()
        encoder.encode(cycle: 5, .vmCreated(VMCreated(vm: 0, name: "guest", asid: 1, policy: 1, memoryBytes: 1 << 22, vcpus: 1, sev: true)),
                       into: &w)
        for cut in 0..<w.count {
            var r = ByteReader(Array(w.bytes[..<cut]))
            var d = EventDecoder()
            #expect(throws: EventDecodingError.self) { _ = try d.decode(from: &r) }
        }
    }

    @Test("damaged event bytes (past the chunk CRC, as a forged trace would be) decode or fail with an error, never trap",
          arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func damagedPayloads(seed: UInt64) {
        var fuzz = EventFuzzer(state: seed)
        var encoder = EventEncoder()
        var w = ByteWriter()
        for e in fuzz.events(300) { encoder.encode(cycle: e.cycle, e.body, into: &w) }
        let clean = w.bytes
        var failures = 0
        for _ in 0..<200 {
            var bytes = clean
            for _ in 0..<(1 + fuzz.small(4)) {
                bytes[Int(fuzz.small(UInt64(bytes.count)))] ^= UInt8(truncatingIfNeeded: 1 + fuzz.small(255))
            }
            var r = ByteReader(bytes)
            var d = EventDecoder()
            var decoded = 0
            while !r.isAtEnd && decoded < 400 {
                guard (try? d.decode(from: &r)) != nil else {
                    failures += 1
                    break
                }
                decoded += 1
            }
        }
        #expect(failures > 0, "most damage is noticed as an error")
    }

    @Test("flags are 0 or 1, and flags coded together use only their bits: anything else is refused where it is",
          arguments: [
              // vm: tag 5, Δcycle, vm 0, platform 0, name "", asid 1, policy 0, memory 0, vcpus 1, sev 2.
              ([0x05, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x02], 9, "sev"),
              // owner: tag 14, Δcycle, vm 0, accepted 7, …
              ([0x0E, 0x00, 0x00, 0x07, 0x00, 0x00], 3, "accepted"),
              // cbit: tag 2, Δcycle, vm, vcpu, gva, gpa, spa, pte, old/new 4.
              ([0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04], 8, "old_c/new_c"),
              // platform: tag 13, Δcycle, platform, cbit, bits, reduction, min, max, cores, cache, memenc/sme 0x80.
              ([0x0D, 0x00, 0x00, 0x2F, 0x30, 0x05, 0x01, 0x0F, 0x01, 0x00, 0x80], 10, "memenc/sme"),
          ] as [([UInt8], Int, String)])
    func strictFlags(bytes: [UInt8], offset: Int, what: String) {
        var r = ByteReader(bytes)
        var d = EventDecoder()
        #expect(throws: EventDecodingError.invalidValue(offset: offset, what: what)) { _ = try d.decode(from: &r) }
        // The same bytes with the flag byte 1 decode.
        var fixed = bytes
        fixed[offset] = 1
        var r2 = ByteReader(fixed)
        var d2 = EventDecoder()
        #expect(throws: Never.self) { _ = try d2.decode(from: &r2) }
    }

    @Test("a field narrower than a varint is refused when its value does not fit, naming its width")
    func narrowFields() {
        // halt: tag 8, Δcycle, vm 65536 (three bytes), vcpu 0.
        var r = ByteReader([0x08, 0x00, 0x80, 0x80, 0x04, 0x00])
        var d = EventDecoder()
        #expect(throws: EventDecodingError.invalidValue(offset: 2, what: "16-bit field")) { _ = try d.decode(from: &r) }
        // npt: tag 3, Δcycle, vm 0, op 9.
        var r2 = ByteReader([0x03, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00])
        var d2 = EventDecoder()
        #expect(throws: EventDecodingError.invalidValue(offset: 3, what: "op")) { _ = try d2.decode(from: &r2) }
    }

    @Test("an unknown extended event type is rejected where it is")
    func unknownType() {
        var r = ByteReader([0x0F, 0x00, 0x07])
        var d = EventDecoder()
        #expect(throws: EventDecodingError.invalidValue(offset: 2, what: "extended event type")) { _ = try d.decode(from: &r) }
    }

    @Test("varints and zig-zag round trip at the edges",
          arguments: [0, 1, 127, 128, 16383, 16384, UInt64(UInt32.max), UInt64.max - 1, UInt64.max] as [UInt64])
    func varints(v: UInt64) throws {
        var w = ByteWriter()
        w.varint(v)
        w.zigzag(Int64(bitPattern: v))
        var r = ByteReader(w.bytes)
        #expect(try r.varint() == v)
        #expect(try r.zigzag() == Int64(bitPattern: v))
        #expect(r.isAtEnd)
    }

    @Test("CRC-32C matches the standard check value")
    func crc() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
        let long = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        var bytewise: UInt32 = 0xFFFF_FFFF
        for b in long {
            bytewise ^= UInt32(b)
            for _ in 0..<8 { bytewise = bytewise & 1 != 0 ? (bytewise >> 1) ^ 0x82F6_3B78 : bytewise >> 1 }
        }
        #expect(CRC32C.checksum(long) == bytewise ^ 0xFFFF_FFFF)
    }
}
