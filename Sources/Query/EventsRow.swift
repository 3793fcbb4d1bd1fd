import TraceFormat

/// One row of the `events` table, taken from its event once: SQLite asks for a row's columns one at a
/// time, and taking the event's payload apart for each would copy the event per column. The columns
/// are defined here once, as cells, for SQLite (``EventsTable``) and for `export` alike.
struct EventsRow: RowCells {
    /// The row's event (in storage that outlives the row: a decoded chunk), for `detail`.
    let event: UnsafePointer<TraceEvent>
    let seq: UInt64
    let cycle: UInt64
    /// The event's ``EventSchema/ordinal(_:)``.
    let ordinal: Int
    /// The access, for a memory access.
    let access: MemoryAccess?
    /// The VM the event concerns.
    let vm: UInt16?

    init(_ e: UnsafePointer<TraceEvent>) {
        event = e
        seq = e.pointee.seq
        cycle = e.pointee.cycle
        if case .memoryAccess(let a) = e.pointee.body {
            ordinal = 0
            access = a
            vm = a.vm == MemoryAccess.noVM ? nil : a.vm
        } else {
            ordinal = EventSchema.ordinal(e.pointee.body)
            access = nil
            vm = EventFormatter.vm(e.pointee.body)
        }
    }

    /// The `events` table's column count.
    var count: Int { EventsTable.columnCount }

    /// Column `i` (in ``EventsTable/columns`` order) as a cell, handed to `body` (its text lives only
    /// for the call).
    @inline(__always)
    func cell(_ i: Int, _ body: (StatementRow.Cell) -> Void) {
        func int(_ v: UInt64) { body(.integer(Int64(bitPattern: v))) }
        switch i {
        case 0: return int(seq)
        case 1: return int(cycle)
        case 2: return Self.text(EventSchema.typeNames[ordinal], body)
        case 4: return vm.map { int(UInt64($0)) } ?? body(.null)
        default: break
        }
        guard let a = access else {
            guard i == 15 else { return body(.null) }
            var line = TextLine()
            EventFormatter.detail(event.pointee, into: &line)
            return line.bytes.withUnsafeBytes { body(.text($0)) }
        }
        switch i {
        case 3: Self.actor(a.actor, body)
        case 5: int(UInt64(a.asid))
        case 6: Self.text(a.kind.description, body)
        case 7: int(a.gva)
        case 8: int(a.gpa)
        case 9: int(a.spa)
        case 10: int(UInt64(a.size))
        case 11: int(a.cbit ? 1 : 0)
        case 12: Self.text(a.reason.description, body)
        case 13: a.register == MemoryAccess.noRegister ? body(.null) : Self.register(a.register, body)
        case 14: int(a.value)
        default: body(.null)
        }
    }

    private static func text(_ s: String, _ body: (StatementRow.Cell) -> Void) {
        var s = s
        s.withUTF8 { body(.text(UnsafeRawBufferPointer($0))) }
    }

    /// Writes up to 32 bytes on the stack and hands them on as text.
    private static func stackText(_ write: (inout StackText) -> Void, _ body: (StatementRow.Cell) -> Void) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: StackText.capacity) { buffer in
            var t = StackText(buffer: buffer)
            write(&t)
            body(.text(UnsafeRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buffer[..<t.count]))))
        }
    }

    /// The actor as ``Actor/description`` writes it (`vcpuV.N`, `hv`, `devN`, `psp`), without a string.
    private static func actor(_ actor: Actor, _ body: (StatementRow.Cell) -> Void) {
        switch actor {
        case .vcpu(let vm, let index):
            stackText({ t in
                t.ascii("vcpu")
                t.decimal(UInt64(vm))
                t.ascii(".")
                t.decimal(UInt64(index))
            }, body)
        case .device(let id):
            stackText({ t in
                t.ascii("dev")
                t.decimal(UInt64(id))
            }, body)
        case .hypervisor, .psp: text(actor.description, body)
        }
    }

    /// The register as ``EventFormatter/registerName(_:)`` names it, without a string for `rN`.
    private static func register(_ r: UInt8, _ body: (StatementRow.Cell) -> Void) {
        guard r < 16 else { return text(EventFormatter.registerName(r), body) }
        stackText({ t in
            t.ascii("r")
            t.decimal(UInt64(r))
        }, body)
    }

    /// A few bytes of text on the stack.
    struct StackText {
        static let capacity = 32
        let buffer: UnsafeMutableBufferPointer<UInt8>
        var count = 0

        mutating func ascii(_ s: StaticString) {
            for i in 0..<s.utf8CodeUnitCount { buffer[count + i] = s.utf8Start[i] }
            count += s.utf8CodeUnitCount
        }

        /// At most 20 digits: with the 12 of the longest prefix, the 32 bytes always suffice.
        mutating func decimal(_ v: UInt64) {
            var digits = 1, rest = v
            while rest >= 10 {
                digits += 1
                rest /= 10
            }
            var v = v
            for i in stride(from: count + digits - 1, through: count, by: -1) {
                buffer[i] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
            }
            count += digits
        }
    }
}
