/// The checks a decoded event passes before anything behind the reader uses it: sizes and ranges that
/// fit the model and whose ends do not overflow, register numbers inside the register file, ranges no
/// longer than the largest simulated memory. The codec checks that fields decode; this checks that what
/// they say is something a recorder of this format could have written.
extension EventBody {
    /// Whether the event passes the checks: the two kinds that make most of a trace are checked in line,
    /// without building a message or copying the rest of the enum; the others as ``validationProblem``.
    @inline(__always)
    public var isValid: Bool {
        switch self {
        case .memoryAccess(let a):
            guard a.size >= 1, a.size <= TraceLimits.maxAccessBytes, a.spa <= UInt64.max - UInt64(a.size),
                  a.gva <= UInt64.max - UInt64(a.size), a.gpa <= UInt64.max - UInt64(a.size), Self.validRegister(a.register) else {
                return false
            }
            if case .vcpu(_, let index) = a.actor, index >= 1024 { return false }
            return true
        case .registerOp(let r):
            return Int(r.dst) < MemoryAccess.vcpuRegisterSlots && Self.validRegister(r.src)
        default:
            return validationProblem == nil
        }
    }

    /// What is wrong with the event, or nil when it is valid.
    public var validationProblem: String? {
        switch self {
        case .memoryAccess(let a):
            guard a.size >= 1, a.size <= TraceLimits.maxAccessBytes else {
                return "access size \(a.size) (1 to \(TraceLimits.maxAccessBytes))"
            }
            guard a.spa <= UInt64.max - UInt64(a.size), a.gva <= UInt64.max - UInt64(a.size),
                  a.gpa <= UInt64.max - UInt64(a.size) else { return "access range wraps around the address space" }
            guard Self.validRegister(a.register) else { return "register \(a.register)" }
            if case .vcpu(_, let index) = a.actor, index >= 1024 { return "vCPU index \(index)" }
        case .registerOp(let r):
            guard Int(r.dst) < MemoryAccess.vcpuRegisterSlots else { return "destination register \(r.dst)" }
            guard Self.validRegister(r.src) else { return "source register \(r.src)" }
        case .cbitChange(let c):
            guard c.spa <= UInt64.max - 4096, c.pteSPA <= UInt64.max - 8 else { return "C-bit change address out of range" }
        case .nptChange(let n):
            guard n.pages <= TraceLimits.maxRangeBytes / 4096 else { return "NPT change of \(n.pages) pages" }
            guard n.spa <= UInt64.max - n.pages * 4096, n.gpa <= UInt64.max - n.pages * 4096 else {
                return "NPT change range wraps around the address space"
            }
        case .vmCreated(let v):
            guard v.memoryBytes <= TraceLimits.maxVMMemoryBytes else { return "VM memory of \(v.memoryBytes) bytes" }
            guard v.vm != MemoryAccess.noVM else { return "VM number \(v.vm)" }
        case .taintSource(let t):
            guard t.length <= TraceLimits.maxSecretBytes else { return "secret of \(t.length) bytes (at most \(TraceLimits.maxSecretBytes))" }
            if let p = Self.rangeProblem(spa: t.spa, gpa: t.gpa, length: t.length, what: "secret") { return p }
        case .handover(let h):
            if let p = Self.rangeProblem(spa: h.spa, gpa: h.gpa, length: h.length, what: "hand-over") { return p }
        case .cacheOp(let c):
            guard c.lines <= TraceLimits.maxRangeBytes / 64 else { return "cache operation on \(c.lines) lines" }
            guard c.spa <= UInt64.max - c.lines * 64 else { return "cache operation range wraps around the address space" }
        case .vmExit(let x):
            guard x.registers.count <= MemoryAccess.vcpuRegisterSlots else { return "\(x.registers.count) registers in an exit" }
        case .platformInfo(let p):
            guard p.minSEVASID <= p.maxSEVASID, p.cores >= 1, p.cores <= 1024, p.cbitPosition < 64, p.physAddrBits <= 64 else {
                return "platform record out of range"
            }
        case .ownerCheck(let o):
            guard o.regions.count <= TraceLimits.maxImageRegions else { return "\(o.regions.count) image regions" }
            for region in o.regions where region.length > TraceLimits.maxRangeBytes || region.gpa > UInt64.max - region.length {
                return "image region of \(region.length) bytes at \(EventFormatter.hex(region.gpa))"
            }
        case .kvmIoctl(let k):
            guard k.vm != MemoryAccess.noVM else { return "VM number \(k.vm)" }
        case .pspCommand, .vcpuMode, .vcpuHalt, .vmRun:
            break
        }
        return nil
    }

    @inline(__always)
    private static func validRegister(_ r: UInt8) -> Bool {
        r == MemoryAccess.noRegister || Int(r) < MemoryAccess.vcpuRegisterSlots
    }

    private static func rangeProblem(spa: UInt64, gpa: UInt64, length: UInt64, what: String) -> String? {
        guard length <= TraceLimits.maxRangeBytes else { return "\(what) of \(length) bytes" }
        guard spa <= UInt64.max - length, gpa <= UInt64.max - length else { return "\(what) range wraps around the address space" }
        return nil
    }
}
