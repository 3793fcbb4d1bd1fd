/// The tables of events as SQL sees them, declared once: each event type's name in the `events` table,
/// and for each table of one kind of event its name, its columns with their SQL types, and how an event
/// fills them. The index's DDL and inserts (``IndexBuilder``, ``TraceIndex/schema``) and the query
/// layer's decoded tables are made from this declaration, and a test checks Queries/README.md documents
/// every table and column it declares.
public enum EventSchema {
    /// Each event type's name in the `events` table, by ``ordinal(_:)``.
    public static let typeNames = ["mem", "reg", "cbit", "npt", "psp", "vm", "secret", "mode", "halt", "vmrun", "vmexit",
                                   "handover", "owner", "kvm", "cache", "platform"]

    /// The event's case, as its place in ``EventBody`` (and in ``typeNames``).
    @inline(__always)
    public static func ordinal(_ body: EventBody) -> Int {
        switch body {
        case .memoryAccess: 0
        case .registerOp: 1
        case .cbitChange: 2
        case .nptChange: 3
        case .pspCommand: 4
        case .vmCreated: 5
        case .taintSource: 6
        case .vcpuMode: 7
        case .vcpuHalt: 8
        case .vmRun: 9
        case .vmExit: 10
        case .handover: 11
        case .ownerCheck: 12
        case .kvmIoctl: 13
        case .cacheOp: 14
        case .platformInfo: 15
        }
    }

    /// Every table of one kind of event: those stored in `index.sqlite`, then those decoded from
    /// `events.zst` when queried.
    public static let tables: [EventTable] = stored + decoded

    /// The tables `index.sqlite` stores: few rows each (one per firmware command, VM, page-table change…).
    public static let stored: [EventTable] = [vms, pspCommands, cbitChanges, nptChanges, cacheFlushes, kvmIoctls, platforms, secrets]

    /// The tables decoded from `events.zst` on demand: too many rows to store (an exit per I/O, a register
    /// op per instruction), or too few questions to pay for them.
    public static let decoded: [EventTable] = [vmRuns, vmExits, registerOps, cacheOps, handovers, vcpuModes, vcpuHalts, ownerChecks]

    /// The `CREATE TABLE` statements of the stored tables.
    public static var storedDDL: String { stored.map { $0.ddl + ";" }.joined(separator: "\n") }

    // MARK: - Stored

    static let vms = EventTable(VMCreated.self, "vms", kind: 5, primaryKey: "vm", replacing: true, columns: [
        .int("vm") { UInt64($1.vm) }, .int("platform") { UInt64($1.platform) }, .text("name") { $1.name },
        .int("asid") { UInt64($1.asid) }, .int("policy") { UInt64($1.policy) }, .int("memory_bytes") { $1.memoryBytes },
        .int("vcpus") { UInt64($1.vcpus) }, .seq, .bool("sev") { $1.sev },
    ]) { if case .vmCreated(let v) = $0 { v } else { nil } }

    static let pspCommands = EventTable(PSPCommand.self, "psp_commands", kind: 4, primaryKey: "seq", columns: [
        .seq, .cycle, .int("platform") { UInt64($1.platform) }, .int("command") { UInt64($1.command) },
        .text("command_name") { SEVCommand.name(of: $1.command) }, .int("handle") { UInt64($1.handle) },
        .int("asid") { UInt64($1.asid) }, .int("status") { UInt64($1.status) },
        .text("status_name") { SEVStatus.name(of: $1.status) },
        .text("platform_before") { PlatformState.name(of: $1.platformBefore) },
        .text("platform_after") { PlatformState.name(of: $1.platformAfter) },
        .text("guest_before") { GuestState.name(of: $1.guestBefore) }, .text("guest_after") { GuestState.name(of: $1.guestAfter) },
        .blob("buffer") { $1.buffer }, .optionalBlob("result") { $1.result.isEmpty ? nil : $1.result },
    ]) { if case .pspCommand(let p) = $0 { p } else { nil } }

    static let cbitChanges = EventTable(CbitChange.self, "cbit_changes", kind: 2, primaryKey: "seq", columns: [
        .seq, .cycle, .int("vm") { UInt64($1.vm) }, .int("vcpu") { UInt64($1.vcpu) }, .int("gva") { $1.gva }, .int("gpa") { $1.gpa },
        .int("spa") { $1.spa }, .int("pte_spa") { $1.pteSPA }, .bool("old_c") { $1.old }, .bool("new_c") { $1.new },
    ]) { if case .cbitChange(let c) = $0 { c } else { nil } }

    static let nptChanges = EventTable(NPTChange.self, "npt_changes", kind: 3, primaryKey: "seq", columns: [
        .seq, .cycle, .int("vm") { UInt64($1.vm) }, .text("op") { $1.op.description }, .int("gpa") { $1.gpa }, .int("spa") { $1.spa },
        .int("pages") { $1.pages },
    ]) { if case .nptChange(let n) = $0 { n } else { nil } }

    /// Only the flushes: write-backs of single lines are too many to store (`cache_ops` has them all).
    static let cacheFlushes = EventTable(CacheOp.self, "cache_flushes", kind: 14, primaryKey: "seq", columns: cacheColumns) {
        if case .cacheOp(let c) = $0, c.op == .clflush || c.op == .wbinvd || c.op == .pageFlush { c } else { nil }
    }

    static let kvmIoctls = EventTable(KVMIoctl.self, "kvm_ioctls", kind: 13, primaryKey: "seq", columns: [
        .seq, .cycle, .int("vm") { UInt64($1.vm) }, .int("command") { UInt64($1.command) },
        .text("command_name") { KVMSevCommand.name(of: $1.command) }, .signed("fd") { Int64($1.fd) },
        .signed("errno") { Int64($1.errno) }, .text("errno_name") { Errno.name(of: $1.errno) },
        .int("fw_error") { UInt64($1.firmwareError) },
        .optionalText("fw_error_name") { $1.firmwareError == 0 ? nil : SEVStatus.name(of: UInt16(truncatingIfNeeded: $1.firmwareError)) },
    ]) { if case .kvmIoctl(let k) = $0 { k } else { nil } }

    static let platforms = EventTable(PlatformInfo.self, "platforms", kind: 15, primaryKey: "platform", replacing: true, columns: [
        .int("platform") { UInt64($1.platform) }, .seq, .int("cbit") { UInt64($1.cbitPosition) },
        .int("phys_bits") { UInt64($1.physAddrBits) }, .int("reduction") { UInt64($1.physAddrReduction) },
        .int("min_asid") { UInt64($1.minSEVASID) }, .int("max_asid") { UInt64($1.maxSEVASID) }, .int("cores") { UInt64($1.cores) },
        .int("cache_bytes") { $1.cacheBytes }, .bool("memenc") { $1.memoryEncryption }, .bool("sme") { $1.sme },
    ]) { if case .platformInfo(let p) = $0 { p } else { nil } }

    static let secrets = EventTable(TaintSource.self, "secrets", kind: 6, primaryKey: "seq", columns: [
        .seq, .int("vm") { UInt64($1.vm) }, .text("name") { $1.name }, .int("gpa") { $1.gpa }, .int("spa") { $1.spa },
        .int("length") { $1.length },
    ]) { if case .taintSource(let t) = $0 { t } else { nil } }

    // MARK: - Decoded

    /// The registers an exit shows the hypervisor (r0-r15: RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8-R15).
    static let registerCount = 16

    static let vmRuns = EventTable(VMRun.self, "vm_runs", kind: 9, columns: [
        .seq, .cycle, .int("vm") { UInt64($1.vm) }, .int("vcpu") { UInt64($1.vcpu) }, .int("asid") { UInt64($1.asid) },
        .int("event_inj") { $1.eventInjection }, .int("cr2") { $1.cr2 }, .int("nested_ctl") { $1.nestedControl },
        .int("ncr3") { $1.ncr3 },
    ]) { if case .vmRun(let r) = $0 { r } else { nil } }

    static let vmExits = EventTable(VMExit.self, "vm_exits", kind: 10, columns: [
        .seq, .cycle, .int("vm") { UInt64($1.vm) }, .int("vcpu") { UInt64($1.vcpu) }, .int("exit_code") { UInt64($1.exitCode) },
        .text("exit_name") { VMExit.name(of: $1.exitCode) }, .int("exit_info1") { $1.exitInfo1 }, .int("exit_info2") { $1.exitInfo2 },
        .int("rip") { $1.rip },
    ] + (0..<registerCount).map { r in
        EventTable.Field<VMExit>.optionalInt("r\(r)") { r < $1.registers.count ? $1.registers[r] : nil }
    }) { if case .vmExit(let x) = $0 { x } else { nil } }

    static let registerOps = EventTable(RegisterOp.self, "register_ops", kind: 1, columns: [
        .seq, .cycle, .int("vm") { UInt64($1.vm) }, .int("vcpu") { UInt64($1.vcpu) }, .text("op") { $1.op.description },
        .text("dst") { EventFormatter.registerName($1.dst) },
        .optionalText("src") { $1.src == MemoryAccess.noRegister ? nil : EventFormatter.registerName($1.src) },
        .int("result") { $1.result },
    ]) { if case .registerOp(let r) = $0 { r } else { nil } }

    static let cacheColumns: [EventTable.Field<CacheOp>] = [
        .seq, .cycle, .int("platform") { $1.spa >> 40 }, .text("op") { $1.op.description }, .int("spa") { $1.spa },
        .int("key") { UInt64($1.asid) }, .int("lines") { $1.lines }, .int("core") { UInt64($1.core) },
    ]

    static let cacheOps = EventTable(CacheOp.self, "cache_ops", kind: 14, columns: cacheColumns) { if case .cacheOp(let c) = $0 { c } else { nil } }

    static let handovers = EventTable(Handover.self, "handovers", kind: 11, columns: [
        .seq, .cycle, .int("vm") { UInt64($1.vm) }, .int("vcpu") { UInt64($1.vcpu) }, .int("gpa") { $1.gpa }, .int("spa") { $1.spa },
        .int("length") { $1.length },
    ]) { if case .handover(let h) = $0 { h } else { nil } }

    static let vcpuModes = EventTable(VCPUModeChange.self, "vcpu_modes", kind: 7, columns: [
        .seq, .cycle, .int("vm") { UInt64($1.vm) }, .int("vcpu") { UInt64($1.vcpu) }, .text("mode") { $1.mode.description },
    ]) { if case .vcpuMode(let m) = $0 { m } else { nil } }

    static let vcpuHalts = EventTable(VCPURef.self, "vcpu_halts", kind: 8, columns: [
        .seq, .cycle, .int("vm") { UInt64($1.vm) }, .int("vcpu") { UInt64($1.vcpu) },
    ]) { if case .vcpuHalt(let h) = $0 { h } else { nil } }

    static let ownerChecks = EventTable(OwnerCheck.self, "owner_checks", kind: 12, columns: [
        .seq, .cycle, .int("vm") { UInt64($1.vm) }, .bool("accepted") { $1.accepted }, .int("entry") { $1.entry },
        .text("image") { $1.regions.map { "0x\(String($0.gpa, radix: 16))+\($0.length)" }.joined(separator: ",") },
    ]) { if case .ownerCheck(let o) = $0 { o } else { nil } }
}
