/// The compact binary encoding of events: one tag byte, then varints, with cycles stored as deltas
/// against the previous event and addresses against the previous access of the same kind (so the loads
/// and the stores of a copy loop each advance by a small step) in the same chunk.
///
/// Layout of a memory access (the hot case):
/// `tag` (type in bits 0-3; bit 4 C-bit, bit 5 has register, bit 6 same actor, VM and ASID as the previous
/// access, bit 7 size is 8), `Δcycle`, `kind | reason << 3 | predicted << 6 | fixed << 7`, [`actor`, `vm`,
/// `asid`], `zigzag Δspa`, `zigzag Δgpa`, `zigzag Δgva`, [`size`], [`register`], [`value`] (none when
/// `predicted`: the value is the register's as the actor's register file has it; 8 raw little-endian
/// bytes when `fixed` is set: values of 2^56 and up, such as ciphertext, are shorter so; a varint
/// otherwise). Register ops and exits are coded against the same register files (``Registers``).
/// Every other event: `tag`, `Δcycle`, then its fields as ``EventSchema`` declares them (``EventField``).
/// The state resets at every chunk, so each chunk decodes on its own.
public enum EventCodec {
    enum TypeCode: UInt8 {
        case memoryAccess = 0, registerOp, cbitChange, nptChange, pspCommand, vmCreated, taintSource, vcpuMode, vcpuHalt,
             vmRun, vmExit, handover, cacheOp, platformInfo, ownerCheck
        /// The tag's last value: the next byte says which of the ``ExtendedCode`` events follows.
        case extended
    }

    /// Events behind ``TypeCode/extended``, so that the tag's four bits never run out.
    enum ExtendedCode: UInt8, CaseIterable {
        case kvmIoctl = 0
    }

    /// What starts an event of a kind coded by its declaration: its type code, or the extended code
    /// after ``TypeCode/extended``.
    enum Tag: Sendable, Equatable {
        case code(TypeCode)
        case extended(ExtendedCode)
    }

    /// The kinds coded by their declaration, by type code (nil for those coded by hand and for
    /// ``TypeCode/extended``) and by extended code.
    static let kindsByCode: [EventKind?] = (0...TypeCode.extended.rawValue).map { code in
        EventSchema.kinds.first { $0.tag == .code(TypeCode(rawValue: code)!) }
    }
    static let kindsByExtendedCode: [EventKind] = ExtendedCode.allCases.map { code in EventSchema.kinds.first { $0.tag == .extended(code) }! }

    /// Reads a varint that must fit `V` (a field narrower than 64 bits).
    @inline(__always)
    static func read<V: FixedWidthInteger & UnsignedInteger>(_: V.Type, from r: inout ByteReader) throws -> V {
        let offset = r.offset
        guard let v = V(exactly: try r.varint()) else {
            throw EventDecodingError.invalidValue(offset: offset, what: "\(V.bitWidth)-bit field")
        }
        return v
    }

    /// The addresses of one stream's previous access of each kind (seven kinds: vectors, not arrays, so
    /// updating them costs no copy-on-write check).
    struct Addresses {
        var spa = InlineArray<256, UInt64>(repeating: 0)
        var gpa = InlineArray<256, UInt64>(repeating: 0)
        var gva = InlineArray<256, UInt64>(repeating: 0)
    }

    /// One actor's register file as the events show it (slots 0-31: r0-r15, the latch, the paths, the
    /// kernel save slots; every slot an event can name, ``MemoryAccess/vcpuRegisterSlots``, fits).
    struct Registers {
        static let slots = 32
        var value = InlineArray<32, UInt64>(repeating: 0)
    }

    /// What a register op's result is predicted to be from the registers before it, or nil when the op
    /// takes an immediate the trace does not carry (or names a register outside the file).
    @inline(__always)
    static func predictedResult(_ op: RegisterOpKind, dst: UInt8, src: UInt8, _ r: Registers) -> UInt64? {
        guard dst < Registers.slots else { return nil }
        let d = r.value[Int(dst)]
        if op == .addImmediate { return d }
        guard src < Registers.slots else { return nil }
        let s = r.value[Int(src)]
        switch op {
        case .move: return s
        case .add: return d &+ s
        case .sub: return d &- s
        case .xor: return d ^ s
        case .and: return d & s
        case .or: return d | s
        case .loadImmediate, .addImmediate: return nil
        }
    }

    /// The context an access's addresses are coded against: its kind and the register it moves (a
    /// stand-in for the instruction that made it).
    @inline(__always)
    static func context(_ kind: UInt8, _ register: UInt8) -> Int { Int(kind) << 5 | Int(min(register, 31)) }

    /// The most access streams (actor and VM) whose addresses a chunk keeps; past it, a stream that was
    /// left is forgotten and starts again from zero (encoder and decoder agree, so it stays exact).
    static let maxStreams = 4096

    /// The delta state shared by encoder and decoder. Addresses are coded against the previous access of
    /// the same kind by the same actor for the same VM: each vCPU, the hypervisor and each device keeps
    /// its own context, so interleaving them (a scheduler, DMA during a run) does not break the
    /// repetition the compressor finds.
    struct State {
        var cycle: UInt64 = 0
        /// The addresses of the current stream: the one `actor` and `vm` name.
        var current = Addresses()
        var actor: Actor = .hypervisor
        var vm: UInt16 = MemoryAccess.noVM
        var asid: UInt16 = 0
        private(set) var currentKey = State.key(.hypervisor, vm: MemoryAccess.noVM)
        /// The other streams seen in this chunk, by key (looked up, never walked).
        private var others: [UInt64: Addresses] = [:]
        /// The registers of the vCPU (or other actor) that last moved a register, as this chunk's events
        /// show them so far: what register-op results, register stores and exit dumps are predicted from.
        var registers = Registers()
        private var registersKey = UInt64.max
        /// The other actors' registers seen in this chunk, by stream key.
        private var otherRegisters: [UInt64: Registers] = [:]

        static func key(_ actor: Actor, vm: UInt16) -> UInt64 {
            switch actor {
            case .vcpu(let v, let index): UInt64(v) << 16 | UInt64(index)
            case .hypervisor: 1 << 62 | UInt64(vm)
            case .device(let id): 2 << 62 | UInt64(id) << 16 | UInt64(vm)
            case .psp: 3 << 62 | UInt64(vm)
            }
        }

        /// Makes the register file of `key` (a stream key, ``key(_:vm:)``) the current one.
        @inline(__always)
        mutating func switchRegisters(to key: UInt64) {
            guard key != registersKey else { return }
            if registersKey != .max, otherRegisters.count < EventCodec.maxStreams || otherRegisters[registersKey] != nil {
                otherRegisters[registersKey] = registers
            }
            registers = otherRegisters[key] ?? Registers()
            registersKey = key
        }

        /// Makes the stream of `actor` and `vm` the current one.
        mutating func switchTo(_ actor: Actor, vm: UInt16) {
            let key = Self.key(actor, vm: vm)
            guard key != currentKey else { return }
            if others.count < EventCodec.maxStreams || others[currentKey] != nil { others[currentKey] = current }
            current = others[key] ?? Addresses()
            currentKey = key
        }
    }
}

/// Encodes events into a chunk payload.
public struct EventEncoder: Sendable {
    private var state = EventCodec.State()

    public init() {}

    /// Starts a new chunk: the next event is encoded against zero.
    public mutating func reset() { state = EventCodec.State() }

    /// The longest encoding of a memory access: tag, Δcycle (10), kind, actor (1 + 3 + 3), VM and ASID
    /// (3 each), three address deltas (10 each), size (5), register (1), value (10).
    static let maxAccessBytes = 1 + 10 + 1 + 7 + 6 + 30 + 5 + 1 + 10

    /// Appends the encoding of one memory access, the common event, without going through
    /// ``EventBody`` (the same bytes as ``encode(cycle:_:into:)`` gives it).
    @inline(__always)
    public mutating func encode(cycle: UInt64, access a: MemoryAccess, into w: inout ByteWriter) {
        encode(a, cycleDelta: advance(to: cycle), into: &w)
    }

    /// Moves the cycle the next event is coded against to `cycle`; returns the delta to code.
    @inline(__always)
    private mutating func advance(to cycle: UInt64) -> UInt64 {
        defer { state.cycle = cycle }
        return cycle &- state.cycle
    }

    @inline(__always)
    private mutating func encode(_ a: MemoryAccess, cycleDelta dc: UInt64, into w: inout ByteWriter) {
        var tag = EventCodec.TypeCode.memoryAccess.rawValue
        if a.cbit { tag |= 0x10 }
        if a.register != MemoryAccess.noRegister { tag |= 0x20 }
        let same = a.actor == state.actor && a.asid == state.asid && a.vm == state.vm
        if same { tag |= 0x40 }
        if a.size == 8 { tag |= 0x80 }
        if !same {
            state.actor = a.actor
            state.vm = a.vm
            state.asid = a.asid
            state.switchTo(a.actor, vm: a.vm)
        }
        var predicted = false
        if a.register < EventCodec.Registers.slots {
            state.switchRegisters(to: state.currentKey)
            predicted = state.registers.value[Int(a.register)] == a.value
            state.registers.value[Int(a.register)] = a.value
        }
        let fixed = !predicted && a.value >= 1 << 56
        let k = EventCodec.context(a.kind.rawValue, a.register)
        let spaDelta = Int64(bitPattern: a.spa &- state.current.spa[k])
        let gpaDelta = Int64(bitPattern: a.gpa &- state.current.gpa[k])
        let gvaDelta = Int64(bitPattern: a.gva &- state.current.gva[k])
        state.current.spa[k] = a.spa
        state.current.gpa[k] = a.gpa
        state.current.gva[k] = a.gva
        w.append(atMost: Self.maxAccessBytes) { c in
            c.u8(tag)
            c.varint(dc)
            c.u8(a.kind.rawValue | a.reason.rawValue << 3 | (predicted ? 0x40 : 0) | (fixed ? 0x80 : 0))
            if !same {
                Self.actor(a.actor, into: &c)
                c.varint(UInt64(a.vm))
                c.varint(UInt64(a.asid))
            }
            c.zigzag(spaDelta)
            c.zigzag(gpaDelta)
            c.zigzag(gvaDelta)
            if a.size != 8 { c.varint(UInt64(a.size)) }
            if a.register != MemoryAccess.noRegister { c.u8(a.register) }
            if fixed { c.u64(a.value) } else if !predicted { c.varint(a.value) }
        }
    }

    /// The longest encoding of a register op: tag, Δcycle (10), VM and vCPU (3 each), op, registers,
    /// result (10).
    static let maxRegisterOpBytes = 1 + 10 + 3 + 3 + 3 + 10

    /// Appends the encoding of one register op, the second most common event, without going through
    /// ``EventBody`` (the same bytes as ``encode(cycle:_:into:)`` gives it).
    @inline(__always)
    public mutating func encode(cycle: UInt64, registerOp r: RegisterOp, into w: inout ByteWriter) {
        encode(r, cycleDelta: advance(to: cycle), into: &w)
    }

    @inline(__always)
    private mutating func encode(_ r: RegisterOp, cycleDelta dc: UInt64, into w: inout ByteWriter) {
        state.switchRegisters(to: EventCodec.State.key(.vcpu(vm: r.vm, index: r.vcpu), vm: r.vm))
        let prediction = EventCodec.predictedResult(r.op, dst: r.dst, src: r.src, state.registers)
        let exact = prediction == r.result
        if r.dst < EventCodec.Registers.slots { state.registers.value[Int(r.dst)] = r.result }
        w.append(atMost: Self.maxRegisterOpBytes) { c in
            c.u8(EventCodec.TypeCode.registerOp.rawValue)
            c.varint(dc)
            c.varint(UInt64(r.vm))
            c.varint(UInt64(r.vcpu))
            c.u8(r.op.rawValue | (exact ? 0x80 : 0))
            c.u8(r.dst)
            c.u8(r.src)
            if let prediction, !exact {
                c.zigzag(Int64(bitPattern: r.result &- prediction))
            } else if prediction == nil {
                c.varint(r.result)
            }
        }
    }

    /// Appends the encoding of one event (its sequence number is implicit in its position).
    public mutating func encode(cycle: UInt64, _ body: EventBody, into w: inout ByteWriter) {
        let dc = advance(to: cycle)
        switch body {
        case .memoryAccess(let a):
            encode(a, cycleDelta: dc, into: &w)
        case .registerOp(let r):
            encode(r, cycleDelta: dc, into: &w)
        default:
            let kind = EventSchema.kinds[EventSchema.ordinal(body)]
            switch kind.tag {
            case .code(let code)?:
                w.u8(code.rawValue)
                w.varint(dc)
            case .extended(let code)?:
                w.u8(EventCodec.TypeCode.extended.rawValue)
                w.varint(dc)
                w.u8(code.rawValue)
            case nil:
                preconditionFailure("\(kind.name) events are coded by hand")
            }
            kind.encode(body, &w, &state)
        }
    }

    @inline(__always)
    private static func actor(_ actor: Actor, into w: inout ByteCursor) {
        switch actor {
        case .vcpu(let vm, let index):
            w.u8(0)
            w.varint(UInt64(vm))
            w.varint(UInt64(index))
        case .hypervisor: w.u8(1)
        case .device(let id):
            w.u8(2)
            w.varint(UInt64(id))
        case .psp: w.u8(3)
        }
    }
}

/// Why a payload could not be decoded.
public enum EventDecodingError: Error, Equatable, Sendable {
    /// The payload ended inside an event.
    case truncated(offset: Int)
    /// A byte names no event type or enumeration case.
    case invalidValue(offset: Int, what: String)

    /// The payload offset the problem was found at.
    public var offset: Int {
        switch self {
        case .truncated(let o), .invalidValue(let o, _): o
        }
    }
}

/// Decodes a chunk payload produced by ``EventEncoder``.
public struct EventDecoder: Sendable {
    private var state = EventCodec.State()
    /// Reads the fields of an event of a kind coded by its declaration.
    typealias Decode = @Sendable (inout ByteReader, inout EventCodec.State) throws -> EventBody
    /// The declared kinds' decoders by type code, then by extended code, each wrapped in a closure of
    /// this decoder's own: calling a closure retains its context, and when two threads decode at once
    /// (a scan decodes ahead on the other core) a context they share bounces its reference count between
    /// the cores, which cost a twelfth of a scan. The wrapped decoder is called without a retain.
    private let byCode: ContiguousArray<Decode?>
    private let byExtendedCode: ContiguousArray<Decode>

    public init() {
        func own(_ kind: EventKind) -> Decode {
            let decode = kind.decode
            return { r, state in try decode(&r, &state) }
        }
        byCode = ContiguousArray(EventCodec.kindsByCode.map { $0.map(own) })
        byExtendedCode = ContiguousArray(EventCodec.kindsByExtendedCode.map(own))
    }

    /// Starts a new chunk.
    public mutating func reset() { state = EventCodec.State() }

    /// Decodes the next event from `r`.
    public mutating func decode(from r: inout ByteReader) throws(EventDecodingError) -> (cycle: UInt64, body: EventBody) {
        let start = r.offset
        do {
            let tag = try r.u8()
            guard let type = EventCodec.TypeCode(rawValue: tag & 0x0f) else {
                throw EventDecodingError.invalidValue(offset: start, what: "event type \(tag & 0x0f)")
            }
            if type != .memoryAccess && tag & 0xf0 != 0 {
                throw EventDecodingError.invalidValue(offset: start, what: "flags \(tag >> 4) on event type \(type.rawValue)")
            }
            state.cycle &+= try r.varint()
            let body: EventBody
            switch type {
            case .memoryAccess:
                let kr = try r.u8()
                guard kr & 0xc0 != 0xc0, let kind = AccessKind(rawValue: kr & 0x07),
                      let reason = CbitReason(rawValue: (kr >> 3) & 0x07) else {
                    throw EventDecodingError.invalidValue(offset: r.offset - 1, what: "access kind/reason \(kr)")
                }
                if tag & 0x40 == 0 {
                    state.actor = try actor(&r)
                    state.vm = try u16(&r)
                    state.asid = try u16(&r)
                    state.switchTo(state.actor, vm: state.vm)
                }
                let spaDelta = UInt64(bitPattern: try r.zigzag()), gpaDelta = UInt64(bitPattern: try r.zigzag())
                let gvaDelta = UInt64(bitPattern: try r.zigzag())
                let size = tag & 0x80 != 0 ? 8 : try u32(&r)
                let reg = tag & 0x20 != 0 ? try r.u8() : MemoryAccess.noRegister
                let k = EventCodec.context(kind.rawValue, reg)
                state.current.spa[k] &+= spaDelta
                state.current.gpa[k] &+= gpaDelta
                state.current.gva[k] &+= gvaDelta
                let value: UInt64
                if reg < EventCodec.Registers.slots {
                    state.switchRegisters(to: state.currentKey)
                    value = kr & 0x40 != 0 ? state.registers.value[Int(reg)] : kr & 0x80 != 0 ? try r.u64() : try r.varint()
                    state.registers.value[Int(reg)] = value
                } else {
                    guard kr & 0x40 == 0 else {
                        throw EventDecodingError.invalidValue(offset: start, what: "predicted value without a register")
                    }
                    value = kr & 0x80 != 0 ? try r.u64() : try r.varint()
                }
                body = .memoryAccess(MemoryAccess(
                    actor: state.actor, vm: state.vm, asid: state.asid, kind: kind, gva: state.current.gva[k], gpa: state.current.gpa[k],
                    spa: state.current.spa[k],
                    size: size, cbit: tag & 0x10 != 0, reason: reason, register: reg, value: value))
            case .registerOp:
                let vm = try u16(&r), vcpu = try u16(&r)
                let opOffset = r.offset
                let opByte = try r.u8()
                guard let op = RegisterOpKind(rawValue: opByte & 0x7f) else {
                    throw EventDecodingError.invalidValue(offset: opOffset, what: "register op")
                }
                let dst = try r.u8(), src = try r.u8()
                state.switchRegisters(to: EventCodec.State.key(.vcpu(vm: vm, index: vcpu), vm: vm))
                let result: UInt64
                switch (EventCodec.predictedResult(op, dst: dst, src: src, state.registers), opByte & 0x80 != 0) {
                case (let p?, true): result = p
                case (let p?, false): result = p &+ UInt64(bitPattern: try r.zigzag())
                case (nil, false): result = try r.varint()
                case (nil, true): throw EventDecodingError.invalidValue(offset: opOffset, what: "predicted result of \(op)")
                }
                if dst < EventCodec.Registers.slots { state.registers.value[Int(dst)] = result }
                body = .registerOp(RegisterOp(vm: vm, vcpu: vcpu, op: op, dst: dst, src: src, result: result))
            case .extended:
                let codeOffset = r.offset
                guard let code = EventCodec.ExtendedCode(rawValue: try r.u8()) else {
                    throw EventDecodingError.invalidValue(offset: codeOffset, what: "extended event type")
                }
                body = try byExtendedCode[Int(code.rawValue)](&r, &state)
            default:
                body = try byCode[Int(type.rawValue)]!(&r, &state)
            }
            return (state.cycle, body)
        } catch let t as ByteReader.Truncated {
            throw .truncated(offset: t.offset)
        } catch let e as EventDecodingError {
            throw e
        } catch {
            throw .truncated(offset: start)
        }
    }

    private func actor(_ r: inout ByteReader) throws -> Actor {
        let offset = r.offset
        switch try r.u8() {
        case 0: return .vcpu(vm: try u16(&r), index: try u16(&r))
        case 1: return .hypervisor
        case 2: return .device(try u16(&r))
        case 3: return .psp
        default: throw EventDecodingError.invalidValue(offset: offset, what: "actor")
        }
    }

    private func u16(_ r: inout ByteReader) throws -> UInt16 { try EventCodec.read(UInt16.self, from: &r) }

    private func u32(_ r: inout ByteReader) throws -> UInt32 { try EventCodec.read(UInt32.self, from: &r) }
}
