/// Every kind of event, declared once: its name in the `events` table, its fields in the order
/// `events.zst` codes them, with their column names, SQL types and how a line of text shows them
/// (``EventDeclaration``), and the tables made of it. From this one declaration come the coding of every
/// event but memory accesses and register ops (``EventCodec`` codes those by hand, against the events
/// before them; their columns are declared here all the same), the one-line text of `dump`, `replay`
/// and the `events` table's `detail` (``EventFormatter``), the index's DDL and inserts
/// (``IndexBuilder``, ``TraceIndex/schema``) and the query layer's decoded tables. Tests check the
/// golden traces still code to the same bytes and Queries/README.md documents every table and column.
public enum EventSchema {
    /// Every kind of event, by ``ordinal(_:)``: its name, its coding and its line of text, made from its
    /// declaration below.
    public static let kinds: [EventKind] = [
        memoryAccess.kind("mem", tag: nil), registerOp.kind("reg", tag: nil),
        cbitChange.kind("cbit", tag: .code(.cbitChange)), nptChange.kind("npt", tag: .code(.nptChange)),
        pspCommand.kind("psp", tag: .code(.pspCommand)), vmCreated.kind("vm", tag: .code(.vmCreated)),
        taintSource.kind("secret", tag: .code(.taintSource)), vcpuMode.kind("mode", tag: .code(.vcpuMode)),
        vcpuHalt.kind("halt", tag: .code(.vcpuHalt)), vmRun.kind("vmrun", tag: .code(.vmRun)),
        vmExit.kind("vmexit", tag: .code(.vmExit)), handover.kind("handover", tag: .code(.handover)),
        ownerCheck.kind("owner", tag: .code(.ownerCheck)), kvmIoctl.kind("kvm", tag: .extended(.kvmIoctl)),
        cacheOp.kind("cache", tag: .code(.cacheOp)), platformInfo.kind("platform", tag: .code(.platformInfo)),
    ]

    /// Each event type's name in the `events` table, by ``ordinal(_:)``.
    public static let typeNames = kinds.map(\.name)

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

    // MARK: - Stored tables

    static let vms = EventTable(vmCreated, "vms", kind: 5, primaryKey: "vm", replacing: true)
    static let pspCommands = EventTable(pspCommand, "psp_commands", kind: 4, primaryKey: "seq")
    static let cbitChanges = EventTable(cbitChange, "cbit_changes", kind: 2, primaryKey: "seq")
    static let nptChanges = EventTable(nptChange, "npt_changes", kind: 3, primaryKey: "seq")
    /// Only the flushes: write-backs of single lines are too many to store (`cache_ops` has them all).
    static let cacheFlushes = EventTable(cacheOp, "cache_flushes", kind: 14, primaryKey: "seq") {
        $0.op == .clflush || $0.op == .wbinvd || $0.op == .pageFlush
    }
    static let kvmIoctls = EventTable(kvmIoctl, "kvm_ioctls", kind: 13, primaryKey: "seq")
    static let platforms = EventTable(platformInfo, "platforms", kind: 15, primaryKey: "platform", replacing: true)
    static let secrets = EventTable(taintSource, "secrets", kind: 6, primaryKey: "seq")

    // MARK: - Decoded tables

    static let vmRuns = EventTable(vmRun, "vm_runs", kind: 9)
    static let vmExits = EventTable(vmExit, "vm_exits", kind: 10)
    static let registerOps = EventTable(registerOp, "register_ops", kind: 1)
    static let cacheOps = EventTable(cacheOp, "cache_ops", kind: 14)
    static let handovers = EventTable(handover, "handovers", kind: 11)
    static let vcpuModes = EventTable(vcpuMode, "vcpu_modes", kind: 7)
    static let vcpuHalts = EventTable(vcpuHalt, "vcpu_halts", kind: 8)
    static let ownerChecks = EventTable(ownerCheck, "owner_checks", kind: 12)

    // MARK: - Kinds coded by hand

    /// The columns of a memory access, as the `events` table has them (after `type`); ``EventCodec``
    /// codes accesses against the previous ones, so no field here carries a coding.
    public static let memoryAccess = EventDeclaration<MemoryAccess>(
        MemoryAccess(actor: .hypervisor, vm: 0, asid: 0, kind: .read, gva: 0, gpa: 0, spa: 0, size: 0, cbit: false, reason: .forcedNonPaged), [
            .seq, .cycle, .predicted(.text("actor") { $0.actor.description }),
            .predicted(.optionalInt("vm") { $0.vm == MemoryAccess.noVM ? nil : UInt64($0.vm) }),
            .predicted(.int("asid") { UInt64($0.asid) }), .predicted(.text("access") { $0.kind.description }),
            .predicted(.int("gva", .hex) { $0.gva }), .predicted(.int("gpa", .hex) { $0.gpa }), .predicted(.int("spa", .hex) { $0.spa }),
            .predicted(.int("size") { UInt64($0.size) }), .predicted(.bool("cbit") { $0.cbit }),
            .predicted(.text("reason") { $0.reason.description }),
            .predicted(.optionalText("register") { $0.register == MemoryAccess.noRegister ? nil : EventFormatter.registerName($0.register) }),
            .predicted(.int("value", .hex) { $0.value }),
        ], extract: { if case .memoryAccess(let a) = $0 { a } else { nil } }, embed: { .memoryAccess($0) })

    /// Register ops: ``EventCodec`` codes their results as predicted from the registers before them.
    static let registerOp = EventDeclaration<RegisterOp>(RegisterOp(vm: 0, vcpu: 0, op: .move, dst: 0, src: 0, result: 0), [
        .seq, .cycle, .predicted(.int("vm") { UInt64($0.vm) }), .predicted(.int("vcpu") { UInt64($0.vcpu) }),
        .predicted(.text("op") { $0.op.description }), .predicted(.text("dst") { EventFormatter.registerName($0.dst) }),
        .predicted(.optionalText("src") { $0.src == MemoryAccess.noRegister ? nil : EventFormatter.registerName($0.src) }),
        .predicted(.int("result", .hex) { $0.result }),
    ], extract: { if case .registerOp(let r) = $0 { r } else { nil } }, embed: { .registerOp($0) })

    // MARK: - Kinds coded by their declaration

    static let vmCreated = EventDeclaration<VMCreated>(VMCreated(vm: 0, name: "", asid: 0, policy: 0, memoryBytes: 0, vcpus: 0, sev: false), [
        .int("vm", \.vm), .int("platform", \.platform), .text("name", \.name), .int("asid", \.asid), .int("policy", \.policy, .hex),
        .int("memory_bytes", \.memoryBytes), .int("vcpus", \.vcpus), .seq, .flag("sev", \.sev),
    ], extract: { if case .vmCreated(let v) = $0 { v } else { nil } }, embed: { .vmCreated($0) })

    static let pspCommand = EventDeclaration<PSPCommand>(
        PSPCommand(command: 0, handle: 0, asid: 0, status: 0, platformBefore: 0, platformAfter: 0, guestBefore: 0, guestAfter: 0, buffer: []), [
            .seq, .cycle, .int("platform", \.platform), .int("command", \.command).unlisted,
            .computed(.text("command_name") { SEVCommand.name(of: $0.command) }), .int("handle", \.handle), .int("asid", \.asid),
            .int("status", \.status).unlisted, .computed(.text("status_name") { SEVStatus.name(of: $0.status) }),
            .named("platform_before", \.platformBefore, PlatformState.name), .named("platform_after", \.platformAfter, PlatformState.name),
            .named("guest_before", \.guestBefore, GuestState.name), .named("guest_after", \.guestAfter, GuestState.name),
            .bytes("buffer", \.buffer), .bytes("result", \.result, emptyIsNull: true),
        ], extract: { if case .pspCommand(let p) = $0 { p } else { nil } }, embed: { .pspCommand($0) })

    static let cbitChange = EventDeclaration<CbitChange>(
        CbitChange(vm: 0, vcpu: 0, gva: 0, gpa: 0, spa: 0, pteSPA: 0, old: false, new: false), [
            .seq, .cycle, .int("vm", \.vm), .int("vcpu", \.vcpu), .int("gva", \.gva, .hex), .int("gpa", \.gpa, .hex),
            .int("spa", \.spa, .hex), .int("pte_spa", \.pteSPA, .hex), .flags([("old_c", \.old), ("new_c", \.new)]),
        ], extract: { if case .cbitChange(let c) = $0 { c } else { nil } }, embed: { .cbitChange($0) })

    static let nptChange = EventDeclaration<NPTChange>(NPTChange(vm: 0, op: .map, gpa: 0, spa: 0, pages: 0), [
        .seq, .cycle, .int("vm", \.vm), .enumeration("op", \.op), .int("gpa", \.gpa, .hex), .int("spa", \.spa, .hex),
        .int("pages", \.pages),
    ], extract: { if case .nptChange(let n) = $0 { n } else { nil } }, embed: { .nptChange($0) })

    static let kvmIoctl = EventDeclaration<KVMIoctl>(KVMIoctl(vm: 0, command: 0, fd: 0, errno: 0, firmwareError: 0), [
        .seq, .cycle, .int("vm", \.vm), .int("command", \.command).unlisted,
        .computed(.text("command_name") { KVMSevCommand.name(of: $0.command) }), .signed("fd", \.fd), .signed("errno", \.errno).unlisted,
        .computed(.text("errno_name") { Errno.name(of: $0.errno) }), .int("fw_error", \.firmwareError).unlisted,
        .computed(.optionalText("fw_error_name") {
            $0.firmwareError == 0 ? nil : SEVStatus.name(of: UInt16(truncatingIfNeeded: $0.firmwareError))
        }),
    ], extract: { if case .kvmIoctl(let k) = $0 { k } else { nil } }, embed: { .kvmIoctl($0) })

    static let platformInfo = EventDeclaration<PlatformInfo>(
        PlatformInfo(platform: 0, cbitPosition: 0, physAddrBits: 0, physAddrReduction: 0, minSEVASID: 0, maxSEVASID: 0, cores: 0,
                     cacheBytes: 0, memoryEncryption: false, sme: false), [
            .int("platform", \.platform), .seq, .int("cbit", \.cbitPosition), .int("phys_bits", \.physAddrBits),
            .int("reduction", \.physAddrReduction), .int("min_asid", \.minSEVASID), .int("max_asid", \.maxSEVASID),
            .int("cores", \.cores), .int("cache_bytes", \.cacheBytes), .flags([("memenc", \.memoryEncryption), ("sme", \.sme)]),
        ], extract: { if case .platformInfo(let p) = $0 { p } else { nil } }, embed: { .platformInfo($0) })

    static let taintSource = EventDeclaration<TaintSource>(TaintSource(vm: 0, name: "", gpa: 0, spa: 0, length: 0), [
        .seq, .int("vm", \.vm), .text("name", \.name), .int("gpa", \.gpa, .hex), .int("spa", \.spa, .hex), .int("length", \.length),
    ], extract: { if case .taintSource(let t) = $0 { t } else { nil } }, embed: { .taintSource($0) })

    /// The registers an exit shows the hypervisor (r0-r15: RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8-R15).
    static let registerCount = 16

    static let vmRun = EventDeclaration<VMRun>(VMRun(vm: 0, vcpu: 0, asid: 0), [
        .seq, .cycle, .int("vm", \.vm), .int("vcpu", \.vcpu), .int("asid", \.asid), .int("nested_ctl", \.nestedControl, .hex),
        .int("ncr3", \.ncr3, .hex), .int("event_inj", \.eventInjection, .hexUnlessZero), .int("cr2", \.cr2, .hexUnlessZero),
    ], extract: { if case .vmRun(let r) = $0 { r } else { nil } }, embed: { .vmRun($0) })

    static let vmExit = EventDeclaration<VMExit>(VMExit(vm: 0, vcpu: 0, exitCode: 0, exitInfo1: 0, exitInfo2: 0, rip: 0, registers: []), [
        .seq, .cycle, .int("vm", \.vm), .int("vcpu", \.vcpu), .int("exit_code", \.exitCode).unlisted,
        .computed(.text("exit_name") { VMExit.name(of: $0.exitCode) }), .int("exit_info1", \.exitInfo1, .hex),
        .int("exit_info2", \.exitInfo2, .hex), .int("rip", \.rip, .hex), .exitRegisters(shown: registerCount),
    ], extract: { if case .vmExit(let x) = $0 { x } else { nil } }, embed: { .vmExit($0) })

    static let cacheOp = EventDeclaration<CacheOp>(CacheOp(op: .writeBack, spa: 0, asid: 0, lines: 0), [
        .seq, .cycle, .computed(.int("platform") { $0.spa >> 40 }), .enumeration("op", \.op), .int("spa", \.spa, .hex),
        .int("key", \.asid), .int("lines", \.lines), .int("core", \.core),
    ], extract: { if case .cacheOp(let c) = $0 { c } else { nil } }, embed: { .cacheOp($0) })

    static let handover = EventDeclaration<Handover>(Handover(vm: 0, vcpu: 0, gpa: 0, spa: 0, length: 0), [
        .seq, .cycle, .int("vm", \.vm), .int("vcpu", \.vcpu), .int("gpa", \.gpa, .hex), .int("spa", \.spa, .hex),
        .int("length", \.length),
    ], extract: { if case .handover(let h) = $0 { h } else { nil } }, embed: { .handover($0) })

    static let vcpuMode = EventDeclaration<VCPUModeChange>(VCPUModeChange(vm: 0, vcpu: 0, mode: .real), [
        .seq, .cycle, .int("vm", \.vm), .int("vcpu", \.vcpu), .enumeration("mode", \.mode),
    ], extract: { if case .vcpuMode(let m) = $0 { m } else { nil } }, embed: { .vcpuMode($0) })

    static let vcpuHalt = EventDeclaration<VCPURef>(VCPURef(vm: 0, vcpu: 0), [
        .seq, .cycle, .int("vm", \.vm), .int("vcpu", \.vcpu),
    ], extract: { if case .vcpuHalt(let h) = $0 { h } else { nil } }, embed: { .vcpuHalt($0) })

    static let ownerCheck = EventDeclaration<OwnerCheck>(OwnerCheck(vm: 0, accepted: false, entry: 0, regions: []), [
        .seq, .cycle, .int("vm", \.vm), .flag("accepted", \.accepted), .int("entry", \.entry, .hex), .imageRegions,
    ], extract: { if case .ownerCheck(let o) = $0 { o } else { nil } }, embed: { .ownerCheck($0) })
}
