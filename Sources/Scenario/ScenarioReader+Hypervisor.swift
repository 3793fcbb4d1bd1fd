import SEVMachine
import TraceFormat

/// The hypervisor's actions: `hv ACTION …`, a parser per action.
extension ScenarioReader {
    /// The actions, in the order the reference lists them.
    static let hypervisorActions = ["read", "write", "unmap", "remap", "migrate", "swap-out", "delete-slot", "cpuid", "answer",
                                    "page-flush", "wbinvd"]

    /// `hv ACTION …`: the hypervisor acts on a guest's memory, mappings or exits.
    func hv(_ c: inout TokenCursor) throws(ScenarioError) {
        let opToken = c.peek
        let op = try c.word(Self.choices(Self.hypervisorActions))
        switch op {
        case "read": try hvRead(&c)
        case "write": try hvWrite(&c)
        case "unmap": try hvUnmap(&c)
        case "cpuid": try hvCPUID(&c)
        case "answer": try hvAnswer(&c)
        case "delete-slot": try hvDeleteSlot(&c)
        case "swap-out": try hvSwapOut(&c)
        case "remap": try hvRemap(&c)
        case "wbinvd": try hvWBINVD(&c)
        case "page-flush": try hvPageFlush(&c)
        case "migrate": try hvMigrate(&c)
        default: throw c.error(at: opToken!, "expected \(Self.choices(Self.hypervisorActions)), found '\(op)'")
        }
    }

    /// `hv read VM GPA LENGTH [as NAME]`: the hypervisor reads guest memory, keeping the bytes under a name.
    private func hvRead(_ c: inout TokenCursor) throws(ScenarioError) {
        let vm = try knownVM(&c)
        let gpa = try c.number("a guest physical address")
        let length = try self.length(&c)
        var capture: String?
        if c.peek?.word == "as" {
            _ = c.next()
            capture = try c.word("a name for the bytes read")
            captures[capture!] = length
        }
        try c.expectEnd()
        add(.hvRead(vm: vm, gpa: gpa, length: length, capture: capture))
    }

    /// `hv write VM GPA BYTES|NAME`: the hypervisor writes guest memory, or bytes it captured earlier.
    private func hvWrite(_ c: inout TokenCursor) throws(ScenarioError) {
        let vm = try knownVM(&c)
        let gpa = try c.number("a guest physical address")
        if let t = c.peek, let name = t.word, c.tokens.count == c.index + 1 {
            // A bare name: bytes an earlier `hv read … as NAME` captured (a replay).
            guard captures[name] != nil else {
                throw c.error(at: t, "no bytes were captured as '\(name)' (capture them first with `hv read VM GPA LENGTH as \(name)`)")
            }
            add(.hvWriteCaptured(vm: vm, gpa: gpa, capture: name))
        } else {
            add(.hvWrite(vm: vm, gpa: gpa, bytes: try bytes(&c)))
        }
    }

    /// `hv unmap VM GPA [pages=N]`: nested page faults on the guest's next accesses.
    private func hvUnmap(_ c: inout TokenCursor) throws(ScenarioError) {
        let vm = try knownVM(&c)
        let gpa = try c.number("a guest physical address")
        let o = try c.options(allowed: ["pages"])
        add(.hvUnmap(vm: vm, gpa: gpa, pages: UInt64(try o.int("pages", default: 1, in: 1...(1 << 22), c))))
    }

    /// `hv cpuid VM cbit=N`: the C-bit position CPUID 0x8000001F reports.
    private func hvCPUID(_ c: inout TokenCursor) throws(ScenarioError) {
        let vm = try knownVM(&c)
        let o = try c.options(allowed: ["cbit"])
        guard let t = o.values["cbit"] else { throw ScenarioError(here, "cpuid needs cbit=N: the C-bit position to report") }
        guard let n = t.number, n < 64 else { throw c.error(at: t, "cbit is a bit position, 0 to 63") }
        add(.hvCPUIDCbit(vm: vm, position: Int(n)))
    }

    /// `hv answer VM in|mmio|cpuid|msr …`: values the hypervisor gives the guest's exits.
    private func hvAnswer(_ c: inout TokenCursor) throws(ScenarioError) {
        let vm = try knownVM(&c)
        add(.hvAnswer(vm: vm, answer: try hypervisorAnswer(&c)))
    }

    /// `hv delete-slot VM SLOT`: the VMM deletes a memslot.
    private func hvDeleteSlot(_ c: inout TokenCursor) throws(ScenarioError) {
        let vm = try knownVM(&c)
        let slot = try c.number("a memslot number")
        try c.expectEnd()
        add(.hvDeleteSlot(vm: vm, slot: UInt16(clamping: slot)))
    }

    /// `hv swap-out VM GPA [pages=N]`: the host swaps guest pages out.
    private func hvSwapOut(_ c: inout TokenCursor) throws(ScenarioError) {
        let vm = try knownVM(&c)
        let gpa = try c.number("a guest physical address")
        let o = try c.options(allowed: ["pages"])
        add(.hvSwapOut(vm: vm, gpa: gpa, pages: UInt64(try o.int("pages", default: 1, in: 1...(1 << 22), c))))
    }

    /// `hv remap VM GPA to=GPA [of=VM]`: a guest page pointed at another frame.
    private func hvRemap(_ c: inout TokenCursor) throws(ScenarioError) {
        let vm = try knownVM(&c)
        let gpa = try c.number("a guest physical address")
        let o = try c.options(allowed: ["to", "of"])
        guard let t = o.values["to"], let to = t.number else {
            throw ScenarioError(here, "remap needs to=GPA (the page whose frame to map)")
        }
        var of = vm
        if let ofToken = o.values["of"] {
            guard let name = ofToken.word, vms[name] != nil else {
                throw c.error(at: ofToken, "no VM named '\(ofToken.spelling)'")
            }
            of = name
        }
        add(.hvRemap(vm: vm, gpa: gpa, toGPA: to, of: of))
    }

    /// `hv wbinvd [platform=NAME] [core=N]`: WBINVD on every core, or one.
    private func hvWBINVD(_ c: inout TokenCursor) throws(ScenarioError) {
        let o = try c.options(allowed: ["platform", "core"])
        let platform = try platformOption(o, c)
        var core: Int?
        if let t = o.values["core"] {
            let cores = script.platforms.first { $0.0 == platform }?.1.cores ?? 1
            guard let n = t.number, n < UInt64(cores) else {
                throw c.error(at: t, "core must be below the platform's \(cores) cores")
            }
            core = Int(n)
        }
        add(.wbinvd(platform: platform, core: core))
    }

    /// `hv page-flush VM GPA`: VM_PAGE_FLUSH with the guest's ASID.
    private func hvPageFlush(_ c: inout TokenCursor) throws(ScenarioError) {
        let vm = try knownVM(&c)
        guard vms[vm]!.sev else { throw ScenarioError(here, "'\(vm)' is not an SEV guest: VM_PAGE_FLUSH takes a guest ASID") }
        let gpa = try c.number("a guest physical address")
        try c.expectEnd()
        add(.hvPageFlush(vm: vm, gpa: gpa))
    }

    /// `hv migrate VM GPA`: the host moves a guest page to another frame.
    private func hvMigrate(_ c: inout TokenCursor) throws(ScenarioError) {
        let vm = try knownVM(&c)
        let gpa = try c.number("a guest physical address")
        try c.expectEnd()
        add(.hvMigratePage(vm: vm, gpa: gpa))
    }

    /// `in PORT VALUE`, `mmio GPA VALUE`, `cpuid LEAF [eax=] [ebx=] [ecx=] [edx=]` or `msr MSR VALUE`.
    func hypervisorAnswer(_ c: inout TokenCursor) throws(ScenarioError) -> ScenarioScript.HypervisorAnswer {
        let t = c.peek
        let what = try c.word("in, mmio, cpuid or msr")
        func bounded(_ n: UInt64, _ max: UInt64, _ at: Token?, _ message: String) throws(ScenarioError) -> UInt64 {
            guard n <= max else { throw c.error(at: at!, message) }
            return n
        }
        switch what {
        case "in":
            let at = c.peek
            let port = try bounded(try c.number("a port"), 0xFFFF, at, "a port is 0 to 0xFFFF")
            let value = try c.number("the value IN reads")
            try c.expectEnd()
            return .port(UInt16(port), value: value)
        case "mmio":
            let gpa = try c.number("a guest physical address")
            let value = try c.number("the value a load there reads")
            try c.expectEnd()
            return .mmio(gpa, value: value)
        case "cpuid":
            let at = c.peek
            let leaf = try bounded(try c.number("a CPUID leaf"), UInt64(UInt32.max), at, "a CPUID leaf is 32 bits")
            let o = try c.options(allowed: ["eax", "ebx", "ecx", "edx"])
            var regs: [UInt64] = []
            for r in ["eax", "ebx", "ecx", "edx"] {
                regs.append(try bounded(try o.number(r, default: 0, c), UInt64(UInt32.max), o.values[r], "\(r) is 32 bits"))
            }
            return .cpuid(UInt32(leaf), eax: regs[0], ebx: regs[1], ecx: regs[2], edx: regs[3])
        case "msr":
            let at = c.peek
            let msr = try bounded(try c.number("an MSR number"), UInt64(UInt32.max), at, "an MSR number is 32 bits")
            let value = try c.number("the value RDMSR reads")
            try c.expectEnd()
            return .msr(UInt32(msr), value: value)
        default:
            throw c.error(at: t!, "expected in, mmio, cpuid or msr, found '\(what)'")
        }
    }
}
