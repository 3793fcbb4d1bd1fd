import CSQLite
import TraceFormat

/// The tables of one event kind each, decoded from `events.zst` rather than stored in the index (there
/// are too many such events: an exit per I/O or interrupt, a register op per instruction): `vm_runs`
/// and `vm_exits` with the fields the VMCB holds, `register_ops`, `cache_ops` and `handovers`.
/// Constraints on `seq` (and `vm` where the events have one) are pushed down, and only the chunks
/// `event_counts` says hold such an event are read.
enum DecodedTables {
    /// The registers an exit shows the hypervisor (r0-r15: RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8-R15).
    static let registerColumns = (0..<16).map { "r\($0)" }

    static let runs = EventTableShape(
        name: "vm_runs",
        columns: ["seq", "cycle", "vm", "vcpu", "asid", "event_inj", "cr2", "nested_ctl", "ncr3"],
        type: "vmrun", pushed: [0: .seq, 2: .vm]
    ) { e, i, ctx in
        guard case .vmRun(let r) = e.body else { return sqlite3_result_null(ctx) }
        if i < 4 { return ColumnResult.int(ctx, vcpuColumn(e, i, vm: r.vm, vcpu: r.vcpu)) }
        let value: UInt64 = switch i {
        case 4: UInt64(r.asid)
        case 5: r.eventInjection
        case 6: r.cr2
        case 7: r.nestedControl
        default: r.ncr3
        }
        ColumnResult.int(ctx, value)
    }

    static let exits = EventTableShape(
        name: "vm_exits",
        columns: ["seq", "cycle", "vm", "vcpu", "exit_code", "exit_name", "exit_info1", "exit_info2", "rip"] + registerColumns,
        type: "vmexit", pushed: [0: .seq, 2: .vm]
    ) { e, i, ctx in
        guard case .vmExit(let x) = e.body else { return sqlite3_result_null(ctx) }
        switch i {
        case 0..<4: ColumnResult.int(ctx, vcpuColumn(e, i, vm: x.vm, vcpu: x.vcpu))
        case 4: ColumnResult.int(ctx, UInt64(x.exitCode))
        case 5: ColumnResult.text(ctx, VMExit.name(of: x.exitCode))
        case 6: ColumnResult.int(ctx, x.exitInfo1)
        case 7: ColumnResult.int(ctx, x.exitInfo2)
        case 8: ColumnResult.int(ctx, x.rip)
        default:
            let r = i - 9
            if r < x.registers.count { ColumnResult.int(ctx, x.registers[r]) } else { sqlite3_result_null(ctx) }
        }
    }

    static let registerOps = EventTableShape(
        name: "register_ops", columns: ["seq", "cycle", "vm", "vcpu", "op", "dst", "src", "result"],
        type: "reg", pushed: [0: .seq, 2: .vm]
    ) { e, i, ctx in
        guard case .registerOp(let r) = e.body else { return sqlite3_result_null(ctx) }
        switch i {
        case 0..<4: ColumnResult.int(ctx, vcpuColumn(e, i, vm: r.vm, vcpu: r.vcpu))
        case 4: ColumnResult.text(ctx, r.op.description)
        case 5: ColumnResult.text(ctx, EventFormatter.registerName(r.dst))
        case 6: r.src == MemoryAccess.noRegister ? sqlite3_result_null(ctx) : ColumnResult.text(ctx, EventFormatter.registerName(r.src))
        default: ColumnResult.int(ctx, r.result)
        }
    }

    static let cacheOps = EventTableShape(
        name: "cache_ops", columns: ["seq", "cycle", "platform", "op", "spa", "key", "lines", "core"],
        type: "cache", pushed: [0: .seq]
    ) { e, i, ctx in
        guard case .cacheOp(let c) = e.body else { return sqlite3_result_null(ctx) }
        switch i {
        case 0: ColumnResult.int(ctx, e.seq)
        case 1: ColumnResult.int(ctx, e.cycle)
        case 2: ColumnResult.int(ctx, c.spa >> 40)
        case 3: ColumnResult.text(ctx, c.op.description)
        case 4: ColumnResult.int(ctx, c.spa)
        case 5: ColumnResult.int(ctx, UInt64(c.asid))
        case 6: ColumnResult.int(ctx, c.lines)
        default: ColumnResult.int(ctx, UInt64(c.core))
        }
    }

    static let handovers = EventTableShape(
        name: "handovers", columns: ["seq", "cycle", "vm", "vcpu", "gpa", "spa", "length"],
        type: "handover", pushed: [0: .seq, 2: .vm]
    ) { e, i, ctx in
        guard case .handover(let h) = e.body else { return sqlite3_result_null(ctx) }
        if i < 4 { return ColumnResult.int(ctx, vcpuColumn(e, i, vm: h.vm, vcpu: h.vcpu)) }
        let value: UInt64 = switch i {
        case 4: h.gpa
        case 5: h.spa
        default: h.length
        }
        ColumnResult.int(ctx, value)
    }

    /// The columns the tables of a vCPU's events start with: `seq`, `cycle`, `vm`, `vcpu`.
    @inline(__always)
    static func vcpuColumn(_ e: TraceEvent, _ i: Int, vm: UInt16, vcpu: UInt16) -> UInt64 {
        switch i {
        case 0: e.seq
        case 1: e.cycle
        case 2: UInt64(vm)
        default: UInt64(vcpu)
        }
    }

    static let shapes = [runs, exits, registerOps, cacheOps, handovers]
}
