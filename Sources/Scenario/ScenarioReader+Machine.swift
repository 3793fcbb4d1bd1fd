import SEVMachine
import TraceFormat

/// The machine: platforms, VMs, devices and guest owners.
extension ScenarioReader {
    /// `platform [NAME] [cbit=N] [asids=N] [memory=SIZE] …`: a SEV platform, before every other statement.
    func platform(_ c: inout TokenCursor) throws(ScenarioError) {
        guard !sawStatement else { throw ScenarioError(here, "`platform` must come before every other statement") }
        var name = "host"
        if let t = c.peek, let w = t.word, c.tokens.count == c.index + 1 || c.tokens[c.index + 1].kind != .punct("=") {
            _ = c.next()
            guard !platformNames.contains(w) else { throw c.error(at: t, "platform '\(w)' is already declared") }
            name = w
        } else if platformNames.contains(name) {
            throw ScenarioError(here, "a second platform needs a name: `platform NAME …`")
        }
        let o = try c.options(allowed: ["cbit", "asids", "min_asid", "memory", "api", "build", "cache", "sme", "cores", "memenc",
                                      "phys_bits", "reduction"])
        var p = PlatformConfig()
        p.cbitPosition = try o.int("cbit", default: 47, in: 32...51, c)
        p.maxSEVASID = UInt16(clamping: try o.number("asids", default: 15, c))
        p.minSEVASID = UInt16(clamping: try o.number("min_asid", default: 1, c))
        guard p.minSEVASID >= 1, p.minSEVASID <= p.maxSEVASID, p.maxSEVASID <= 1024 else {
            throw ScenarioError(here, "need 1 <= min_asid <= asids <= 1024")
        }
        p.memoryBytes = try o.number("memory", default: 64 << 20, c)
        guard p.memoryBytes >= 32 << 20, p.memoryBytes <= 16 << 30, p.memoryBytes % (2 << 20) == 0 else {
            throw ScenarioError(here, "platform memory must be a multiple of 2M from 32M to 16G")
        }
        let total = script.platforms.reduce(p.memoryBytes) { $0 + $1.config.memoryBytes }
        guard total <= limits.machine.maxMemoryBytes else {
            throw c.error(at: o.values["memory"] ?? c.tokens[0],
                          "the platforms' memory comes to \(total) bytes, over the limit of \(limits.machine.maxMemoryBytes) (raise it with --max-memory)")
        }
        if let t = o.values["api"] {
            guard case .word(let w) = t.kind, let v = Self.apiVersion(w) else {
                throw c.error(at: t, "api takes MAJOR.MINOR, for example api=0.17")
            }
            (p.apiMajor, p.apiMinor) = v
        }
        p.build = UInt8(clamping: try o.number("build", default: 48, c))
        let cache = try o.number("cache", default: 0, c)
        guard cache == 0 || (cache >= 4096 && cache <= 64 << 20 && cache % 512 == 0) else {
            throw c.error(at: o.values["cache"]!, "cache must be 0 (none) or 4K to 64M, a multiple of 512 bytes")
        }
        p.cacheBytes = Int(cache)
        let cores = try o.number("cores", default: 1, c)
        guard (1...64).contains(cores) else { throw c.error(at: o.values["cores"]!, "cores must be 1 to 64") }
        p.cores = Int(cores)
        p.sme = try o.flag("sme", default: false, c)
        p.physAddrBits = try o.int("phys_bits", default: 48, in: 40...52, c)
        p.physAddrReduction = try o.int("reduction", default: 5, in: 0...12, c)
        guard (40...52).contains(p.physAddrBits), p.physAddrReduction <= 12, p.physAddrBits - p.physAddrReduction >= 40 else {
            throw ScenarioError(here, "need 40 <= phys_bits <= 52 and phys_bits - reduction >= 40")
        }
        p.memoryEncryptionEnabled = try o.flag("memenc", default: true, c)
        if p.sme && !p.memoryEncryptionEnabled {
            throw c.error(at: o.values["sme"]!, "sme=yes needs memory encryption enabled in SYSCFG (memenc=yes)")
        }
        script.platforms.append((name, p))
        platformNames.append(name)
    }

    /// `vm NAME [memory=SIZE] [policy=P] [sev=no] [vcpus=N] …`: a VM and its guest kernel's configuration;
    /// what an option leaves out is ``ScenarioScript/VMSpec``'s default.
    func vm(_ c: inout TokenCursor) throws(ScenarioError) {
        let nameToken = c.peek
        let name = try c.word("a VM name")
        guard vms[name] == nil else { throw c.error(at: nameToken!, "VM '\(name)' is already declared") }
        let o = try c.options(allowed: ["memory", "policy", "sev", "vcpus", "platform", "kvmclock", "pages", "mmio", "paging",
                                      "slots", "verify_cbit"])
        var vm = ScenarioScript.VMSpec(name: name, platform: try platformOption(o, c))
        let pageSize = try o.number("pages", default: 4096, c)
        guard pageSize == 4096 || pageSize == 2 << 20 || pageSize == 4 << 20 else {
            throw c.error(at: o.values["pages"]!, "pages is 4K, 2M or (with paging=legacy) 4M (the guest kernel's page size)")
        }
        vm.largePages = pageSize > 4096
        vm.memory = try o.number("memory", default: vm.memory, c)
        guard vm.memory >= 2 << 20, vm.memory % (2 << 20) == 0 else {
            throw ScenarioError(here, "VM memory must be a multiple of 2M")
        }
        let policy = try o.number("policy", default: UInt64(vm.policy), c)
        guard policy <= UInt64(UInt32.max) else { throw ScenarioError(here, "policy is a 32-bit value") }
        vm.policy = UInt32(policy)
        vm.sev = try o.flag("sev", default: vm.sev, c)
        vm.vcpus = try o.int("vcpus", default: vm.vcpus, in: 1...64, c)
        vms[name] = (false, vm.sev)
        vm.kvmclock = o.values["kvmclock"] == nil ? nil : try o.number("kvmclock", default: 0, c)
        if let k = vm.kvmclock, k % 32 != 0 || k + 32 * UInt64(vm.vcpus) > vm.memory {
            throw c.error(at: o.values["kvmclock"]!, "kvmclock must be 32-byte aligned and inside the VM's memory")
        }
        vm.mmio = o.values["mmio"] == nil ? nil : try o.number("mmio", default: 0, c)
        let pagingWord = try o.word("paging", c) ?? "long"
        let modes: [String: PagingMode] = ["long": .long, "pae": .pae, "legacy": .legacy]
        guard let paging = modes[pagingWord] else {
            throw c.error(at: o.values["paging"]!, "paging is long, pae or legacy (the guest kernel's paging mode)")
        }
        vm.paging = paging
        let limit: UInt64 = paging == .long ? 1 << 39 : 1 << 32
        guard vm.memory <= limit else { throw ScenarioError(here, "a \(pagingWord) guest has at most 4G of memory") }
        if paging == .legacy && vm.memory % (4 << 20) != 0 {
            throw c.error(at: o.values["memory"]!, "with 32-bit paging memory is a multiple of 4M")
        }
        if pageSize > 4096 && (pageSize == 4 << 20) != (paging == .legacy) {
            throw c.error(at: o.values["pages"]!, "large pages are 2M with paging=long or pae, 4M with paging=legacy")
        }
        if let m = vm.mmio, m % 4096 != 0 || m < vm.memory || m >= limit {
            throw c.error(at: o.values["mmio"]!, "mmio must be a 4K-aligned address above the VM's memory and below \(paging == .long ? "512G" : "4G with \(pagingWord) paging")")
        }
        vm.verifyCbit = try o.flag("verify_cbit", default: vm.verifyCbit, c)
        if vm.verifyCbit && paging == .legacy {
            throw c.error(at: o.values["verify_cbit"]!, "sev_verify_cbit is a 64-bit kernel's check; a 32-bit guest has no C-bit to verify")
        }
        let slots = try o.number("slots", default: UInt64(vm.slots), c)
        guard (1...8).contains(slots), vm.memory % (slots * (2 << 20)) == 0 else {
            throw c.error(at: o.values["slots"]!, "slots is 1 to 8, each slot a multiple of 2M of the VM's memory")
        }
        vm.slots = Int(slots)
        add(.vm(vm))
    }

    /// `device NAME [platform=NAME]`: a DMA-capable device.
    func device(_ c: inout TokenCursor) throws(ScenarioError) {
        let t = c.peek
        let name = try c.word("a device name")
        guard !devices.contains(name) else { throw c.error(at: t!, "device '\(name)' is already declared") }
        let o = try c.options(allowed: ["platform"])
        devices.insert(name)
        add(.device(name: name, platform: try platformOption(o, c)))
    }

    /// `owner NAME [policy=P]`: a guest owner with her own key pair.
    func owner(_ c: inout TokenCursor) throws(ScenarioError) {
        let t = c.peek
        let name = try c.word("an owner name")
        guard !owners.contains(name) else { throw c.error(at: t!, "owner '\(name)' is already declared") }
        let o = try c.options(allowed: ["policy"])
        let policy = try o.number("policy", default: 0x1, c)
        guard policy <= UInt64(UInt32.max) else { throw ScenarioError(here, "policy is a 32-bit value") }
        owners.insert(name)
        add(.owner(name: name, policy: UInt32(policy)))
    }
}
