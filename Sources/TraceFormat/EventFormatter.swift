/// One-line, human-readable renderings of events, shared by `dump`, `replay` and the `events` table.
public enum EventFormatter {
    /// A short name for the event's type.
    public static func typeName(_ b: EventBody) -> String { EventSchema.typeNames[EventSchema.ordinal(b)] }

    /// The VM an event concerns, if any.
    public static func vm(_ b: EventBody) -> UInt16? {
        switch b {
        case .memoryAccess(let a): a.vm == MemoryAccess.noVM ? nil : a.vm
        case .registerOp(let r): r.vm
        case .cbitChange(let c): c.vm
        case .nptChange(let n): n.vm
        case .vmCreated(let v): v.vm
        case .taintSource(let t): t.vm
        case .vcpuMode(let m): m.vm
        case .vcpuHalt(let h): h.vm
        case .vmRun(let v): v.vm
        case .vmExit(let x): x.vm
        case .handover(let h): h.vm
        case .ownerCheck(let o): o.vm
        case .kvmIoctl(let k): k.vm
        case .pspCommand, .cacheOp, .platformInfo: nil
        }
    }

    /// `r0`…`r15`, `latch` for the string-copy data path, `psp` and `psp-tek` for the firmware's data
    /// and transport paths, `host-copy` for the host's copies.
    public static func registerName(_ r: UInt8) -> String {
        switch r {
        case 16: "latch"
        case 17: "psp"
        case 18: "psp-tek"
        case 19: "host-copy"
        case 20...23: "ksave\(r - 20)"
        default: "r\(r)"
        }
    }

    static func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

    /// Everything about the event except its sequence number and cycle.
    public static func detail(_ b: EventBody) -> String {
        switch b {
        case .memoryAccess(let a):
            var s = "\(a.actor) \(a.kind) spa=\(hex(a.spa))"
            if a.vm != MemoryAccess.noVM { s += " vm=\(a.vm) gpa=\(hex(a.gpa))" }
            if a.gva != 0 { s += " gva=\(hex(a.gva))" }
            s += " size=\(a.size) asid=\(a.asid) c=\(a.cbit ? 1 : 0) (\(a.reason))"
            if a.register != MemoryAccess.noRegister { s += " reg=\(registerName(a.register))" }
            return s + " value=\(hex(a.value))"
        case .registerOp(let r):
            let src = r.src == MemoryAccess.noRegister ? "" : " \(registerName(r.src))"
            return "vcpu\(r.vm).\(r.vcpu) \(r.op) \(registerName(r.dst))\(src) -> \(hex(r.result))"
        case .cbitChange(let c):
            return "vcpu\(c.vm).\(c.vcpu) gva=\(hex(c.gva)) gpa=\(hex(c.gpa)) spa=\(hex(c.spa)) pte@\(hex(c.pteSPA)) C \(c.old ? 1 : 0)->\(c.new ? 1 : 0)"
        case .nptChange(let n):
            return "vm=\(n.vm) \(n.op) gpa=\(hex(n.gpa)) spa=\(hex(n.spa)) pages=\(n.pages)"
        case .pspCommand(let p):
            let buffer = p.buffer.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
            let result = p.result.isEmpty ? "" : " result=" + p.result.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
            return "\(p.platform == 0 ? "" : "platform=\(p.platform) ")\(SEVCommand.name(of: p.command)) handle=\(p.handle) asid=\(p.asid) status=\(SEVStatus.name(of: p.status)) platform \(PlatformState.name(of: p.platformBefore))->\(PlatformState.name(of: p.platformAfter)) guest \(GuestState.name(of: p.guestBefore))->\(GuestState.name(of: p.guestAfter)) buffer=\(buffer.isEmpty ? "-" : buffer)\(result)"
        case .vmCreated(let v):
            return "vm=\(v.vm) platform=\(v.platform) name=\(printable(v.name)) sev=\(v.sev ? 1 : 0) asid=\(v.asid) policy=\(hex(UInt64(v.policy))) memory=\(v.memoryBytes) vcpus=\(v.vcpus)"
        case .taintSource(let t):
            return "vm=\(t.vm) name=\(printable(t.name)) gpa=\(hex(t.gpa)) spa=\(hex(t.spa)) length=\(t.length)"
        case .vcpuMode(let m):
            return "vcpu\(m.vm).\(m.vcpu) mode=\(m.mode)"
        case .vcpuHalt(let h):
            return "vcpu\(h.vm).\(h.vcpu)"
        case .vmRun(let v):
            let vmcb = "vcpu\(v.vm).\(v.vcpu) asid=\(v.asid) nested_ctl=\(hex(v.nestedControl)) ncr3=\(hex(v.ncr3))"
            guard let vector = v.injectedVector else { return vmcb }
            let error = v.eventInjection & 1 << 11 != 0 ? " error=\(hex(v.eventInjection >> 32))" : ""
            return "\(vmcb) inject=vector \(vector)\(error) cr2=\(hex(v.cr2))"
        case .cacheOp(let c):
            return "\(c.op) spa=\(hex(c.spa)) key=\(c.asid) lines=\(c.lines) core=\(c.core)"
        case .handover(let h):
            return "vcpu\(h.vm).\(h.vcpu) gpa=\(hex(h.gpa)) spa=\(hex(h.spa)) length=\(h.length)"
        case .ownerCheck(let o):
            let regions = o.regions.map { "\(hex($0.gpa))+\($0.length)" }.joined(separator: ",")
            return "vm=\(o.vm) \(o.accepted ? "accepted" : "refused") entry=\(hex(o.entry)) image=\(regions.isEmpty ? "-" : regions)"
        case .kvmIoctl(let k):
            let error = k.firmwareError == 0 ? "" : " error=\(SEVStatus.name(of: UInt16(truncatingIfNeeded: k.firmwareError)))"
            return "vm=\(k.vm) KVM_SEV_\(KVMSevCommand.name(of: k.command)) fd=\(k.fd) -> \(Errno.name(of: k.errno))\(error)"
        case .platformInfo(let p):
            return "platform \(p.platform) cbit=\(p.cbitPosition) phys_bits=\(p.physAddrBits) reduction=\(p.physAddrReduction) "
                + "asids=\(p.minSEVASID)-\(p.maxSEVASID) cores=\(p.cores) cache=\(p.cacheBytes) memenc=\(p.memoryEncryption ? "yes" : "no") "
                + "sme=\(p.sme ? "yes" : "no")"
        case .vmExit(let x):
            let regs = x.registers.enumerated().filter { $0.element != 0 }.map { "\(registerName(UInt8($0.offset)))=\(hex($0.element))" }
            return "vcpu\(x.vm).\(x.vcpu) \(VMExit.name(of: x.exitCode)) info1=\(hex(x.exitInfo1)) info2=\(hex(x.exitInfo2)) rip=\(hex(x.rip))" + (regs.isEmpty ? "" : " " + regs.joined(separator: " "))
        }
    }

    /// `#SEQ @CYCLE TYPE DETAIL`.
    public static func line(_ e: TraceEvent) -> String {
        "#\(e.seq) @\(e.cycle) \(typeName(e.body)) \(detail(e.body))"
    }
}
