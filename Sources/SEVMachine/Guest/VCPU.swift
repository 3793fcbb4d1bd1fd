import TraceFormat

/// One virtual CPU of a guest: registers, paging mode, a TLB tagged by the VM's ASID, and an
/// interpreter for the guest instruction set. Every fetch, page-walk step, load and store goes through
/// the memory controller with the C-bit decided as SEV hardware decides it.
public final class VCPU {
    // The VM owns its vCPUs and the machine owns the VM's platform, so neither can go first; unchecked
    // references spare the reference counting on every instruction and access (the platform, which
    // every access calls into, is lent per call: see ``Unretained``).
    unowned(unsafe) let vm: VirtualMachine
    private let platformRef: Unretained<Platform>
    /// The platform this vCPU runs on (retained for the call; hot paths use `platformRef.with`).
    var platform: Platform { platformRef.object }
    public let index: UInt16
    /// r0-r15, then the string-copy latch.
    public internal(set) var registers = [UInt64](repeating: 0, count: MemoryAccess.vcpuRegisterSlots)
    public internal(set) var rip: UInt64 = 0
    public private(set) var mode: PagingMode = .real
    /// Guest physical address of the top-level page table.
    var cr3: UInt64 = 0
    public private(set) var halted = false
    private var booted = false
    /// Instructions executed.
    public private(set) var steps: UInt64 = 0

    typealias TLBEntry = TLB.Entry
    /// The TLB, tagged by ASID: an entry made under one ASID does not hit under another, as when a
    /// hypervisor runs this vCPU with another guest's ASID in the VMCB.
    private var tlb = TLB()

    @inline(__always)
    private func tlbKey(_ gva: UInt64) -> UInt64 { TLB.key(asid: asid, gva: gva) }
    /// Guest-physical to system-physical page translations from nested walks.
    private var nestedTLB: [UInt64: UInt64] = [:]

    init(vm: VirtualMachine, index: UInt16, platform: Platform) {
        self.vm = vm
        self.index = index
        self.platformRef = Unretained(platform)
        self.controller = platform.controller
    }

    var actor: Actor { .vcpu(vm: vm.id, index: index) }

    /// The platform's memory controller (owned by the platform, as this vCPU is).
    unowned(unsafe) let controller: MemoryController
    /// The key accesses with the C-bit set use (the VEK loaded for the ASID, nil for a VM without SEV),
    /// taken again whenever the ASID or any key slot changed (the controller's generation): a plain
    /// ``KeySchedule``, never used before that check (``refreshKey()``), so a key taken out of its slot
    /// is never touched, and holding it costs no reference counting per access.
    private var currentKey: KeySchedule?
    private var currentKeyASID = UInt16.max
    private var currentKeyGeneration = UInt64.max

    /// Brings ``currentKey`` up to date.
    @inline(__always)
    private func refreshKey() {
        let asid = self.asid
        guard currentKeyGeneration != controller.keyGeneration || currentKeyASID != asid else { return }
        currentKey = vm.isSEV ? controller.key(forASID: asid)?.schedule : nil
        currentKeyASID = asid
        currentKeyGeneration = controller.keyGeneration
    }

    /// The ASID in the VMCB the hypervisor runs this vCPU with: the VM's own, unless a misbehaving
    /// hypervisor put another there (CrossLine). It selects the key every private access uses.
    var asid: UInt16 { vmcbASID ?? vm.asid }
    var vmcbASID: UInt16?

    /// Where this vCPU's `pvclock_vcpu_time_info` is (MSR_KVM_SYSTEM_TIME_NEW), nil when none.
    public internal(set) var kvmclockGPA: UInt64?
    /// Where this vCPU's `kvm_steal_time` is (MSR_KVM_STEAL_TIME), nil when none.
    public internal(set) var stealTimeGPA: UInt64?
    /// Where this vCPU's `kvm_vcpu_pv_apf_data` is (MSR_KVM_ASYNC_PF_EN), nil when async PF is off.
    public internal(set) var asyncPFGPA: UInt64?
    /// KVM_ASYNC_PF_SEND_ALWAYS: async page faults may be delivered while the guest runs kernel code
    /// (the guest programs here do), not only in user mode.
    var asyncPFSendAlways = false
    /// KVM's `apf.id`: the next async page fault's token is `id << 12 | vcpu index`.
    var asyncPFID: UInt64 = 0
    /// Cycles the vCPU spent runnable but not running, as KVM accounts them into steal time.
    var stealCycles: UInt64 = 0
    var stealTimeVersion: UInt32 = 0
    /// The machine cycle of the vCPU's last #VMEXIT (0: never ran).
    var lastExitCycle: UInt64 = 0

    func setMode(_ m: PagingMode) {
        mode = m
        tlb.removeAll()
        platform.emit(.vcpuMode(VCPUModeChange(vm: vm.id, vcpu: index, mode: m)), cost: Platform.Cost.control)
    }

    /// Drops the TLB entry of one page (INVLPG).
    func invalidate(gva: UInt64) { tlb.remove(tlbKey(gva)) }

    /// The guest is dead (after a SHUTDOWN exit): it does not run again.
    func crash() {
        halted = true
        platform.emit(.vcpuHalt(VCPURef(vm: vm.id, vcpu: index)), cost: Platform.Cost.instruction)
    }

    /// Drops every TLB entry (a flush by ASID after the hypervisor changed the nested page table).
    func flushTLB() {
        tlb.removeAll()
        nestedTLB.removeAll(keepingCapacity: true)
    }

    /// What the processor knew of the last nested page fault: the C-bit of the access (EXITINFO2 carries
    /// it in the faulting address) and whether the fault hit the guest's own page-table walk (EXITINFO1
    /// bit 33) rather than the final guest physical address (bit 32).
    struct NestedFault {
        var cbit = false
        var duringWalk = false
    }
    private(set) var lastNestedFault = NestedFault()

    /// The nested walk: guest physical to system physical through the hypervisor's 4-level table in
    /// host memory (host accesses, no key). A missing entry is a nested page fault, of an access with
    /// C-bit `cbit`, made by the guest's page-table walk when `duringWalk`.
    func nestedTranslate(_ gpa: UInt64, cbit: Bool, duringWalk: Bool = false) throws(MachineError) -> UInt64 {
        do {
            return try nestedWalk(gpa)
        } catch {
            lastNestedFault = NestedFault(cbit: cbit, duringWalk: duringWalk)
            throw error
        }
    }

    private func nestedWalk(_ gpa: UInt64) throws(MachineError) -> UInt64 {
        let page = gpa >> 12
        if let frame = nestedTLB[page] { return frame << 12 | (gpa & 0xFFF) }
        guard vm.nptRoot != 0 else { return try vm.translate(gpa) }
        var table = vm.nptRoot
        var entry: UInt64 = 0
        for level in stride(from: 3, through: 0, by: -1) {
            let idx = (gpa >> (12 + 9 * UInt64(level))) & 0x1FF
            entry = try platform.read(actor: actor, vm: vm.id, asid: 0, kind: .nestedWalk, gva: 0, gpa: gpa,
                                      spa: table + idx * 8, size: 8, cbit: false, reason: .host, key: nil,
                                      cost: Platform.Cost.walkStep)
            guard entry & 1 != 0 else { throw .unmappedGPA(vm: vm.name, gpa: gpa) }
            table = entry & 0x000F_FFFF_FFFF_F000
        }
        nestedTLB[page] = table >> 12
        return table | (gpa & 0xFFF)
    }

    // MARK: - Translation and the C-bit decision

    struct Translation {
        var gpa: UInt64
        var spa: UInt64
        var cbit: Bool
        var reason: CbitReason
    }

    /// Translates a guest virtual address for a data access, walking the guest page tables on a TLB miss.
    func translate(_ gva: UInt64) throws(MachineError) -> Translation {
        guard mode.walksGuestPageTables else {
            // No guest page tables: linear is physical and the hardware forces the C-bit.
            return Translation(gpa: gva, spa: try nestedTranslate(gva, cbit: vm.isSEV), cbit: vm.isSEV, reason: .forcedNonPaged)
        }
        let key = tlbKey(gva), offset = gva & 0xFFF
        let entry: TLBEntry
        if let hit = tlb.lookup(key) {
            entry = hit
        } else {
            entry = try walk(gva)
            tlb.insert(key, entry)
        }
        guard mode.pteChoosesCbit else {
            return Translation(gpa: entry.gpaPage << 12 | offset, spa: entry.spaPage << 12 | offset,
                               cbit: vm.isSEV, reason: .forcedLegacyPaging)
        }
        return Translation(gpa: entry.gpaPage << 12 | offset, spa: entry.spaPage << 12 | offset,
                           cbit: vm.isSEV && entry.cbit, reason: .guestPTE)
    }

    /// Reads one guest page-table entry, always as a private access.
    /// A table outside every memslot (a garbage entry points there) cannot be walked: KVM cannot emulate
    /// a page-table access to MMIO, and the guest dies as after a fault.
    private func readTableEntry(gva: UInt64, at gpa: UInt64, size: Int) throws(MachineError) -> UInt64 {
        let spa: UInt64
        do {
            spa = try nestedTranslate(gpa, cbit: vm.isSEV, duringWalk: true)
        } catch .unmappedGPA(let name, let g) where name == vm.name && vm.isMMIO(g) {
            throw .guestPageFault(vm: vm.name, vcpu: Int(index), gva: gva, rip: rip)
        }
        refreshKey()
        return try platform.read(actor: actor, vm: vm.id, asid: asid, kind: .pageWalk, gva: gva, gpa: gpa,
                                 spa: spa, size: size, cbit: vm.isSEV, reason: .forcedPageWalk,
                                 key: currentKey, cost: Platform.Cost.walkStep)
    }

    /// The 2-level walk of 32-bit paging: a 4-byte directory entry maps 4 MiB (PS set) or points to a
    /// table of 4-byte entries. There is no C-bit in either.
    private func walkLegacy(_ gva: UInt64) throws(MachineError) -> TLBEntry {
        guard gva >> 32 == 0 else { throw .guestPageFault(vm: vm.name, vcpu: Int(index), gva: gva, rip: rip) }
        let pde = try readTableEntry(gva: gva, at: cr3 + (gva >> 22) * 4, size: 4)
        guard pde & 1 != 0 else { throw .guestPageFault(vm: vm.name, vcpu: Int(index), gva: gva, rip: rip) }
        let gpa: UInt64
        if pde & GuestKernel.pageSize != 0 {
            gpa = (pde & 0xFFC0_0000) | (gva & 0x3F_F000)
        } else {
            let pte = try readTableEntry(gva: gva, at: (pde & 0xFFFF_F000) + ((gva >> 12) & 0x3FF) * 4, size: 4)
            guard pte & 1 != 0 else { throw .guestPageFault(vm: vm.name, vcpu: Int(index), gva: gva, rip: rip) }
            gpa = pte & 0xFFFF_F000
        }
        return TLBEntry(gpaPage: gpa >> 12, spaPage: try nestedTranslate(gpa, cbit: vm.isSEV) >> 12, cbit: true)
    }

    /// The 4-level walk (3 with PAE). Each step reads one entry from guest memory, always as a private access.
    private func walk(_ gva: UInt64) throws(MachineError) -> TLBEntry {
        if mode == .legacy { return try walkLegacy(gva) }
        let cbitMask = platform.config.cbitMask
        let addressMask: UInt64 = 0x000F_FFFF_FFFF_F000 & ~cbitMask
        let reserved = platform.config.reservedAddressBits
        var table = cr3
        var entry: UInt64 = 0
        // PAE: three levels over a 32-bit linear address (the top one has four entries).
        let top = mode == .pae ? 2 : 3
        if mode == .pae && gva >> 32 != 0 { throw .guestPageFault(vm: vm.name, vcpu: Int(index), gva: gva, rip: rip) }
        for level in stride(from: top, through: 0, by: -1) {
            let idx = (gva >> (12 + 9 * UInt64(level))) & 0x1FF
            entry = try readTableEntry(gva: gva, at: table + idx * 8, size: 8)
            // Not present, or a reserved address bit set (#PF with RSVD): the walk faults.
            guard entry & 1 != 0, entry & reserved == 0 else {
                throw .guestPageFault(vm: vm.name, vcpu: Int(index), gva: gva, rip: rip)
            }
            if (level == 1 || (level == 2 && mode == .long)) && entry & GuestKernel.pageSize != 0 {
                // A 2 MiB page (page-directory entry) or 1 GiB page (page-directory-pointer entry) maps it whole.
                let span: UInt64 = level == 1 ? 0x1F_FFFF : 0x3FFF_FFFF
                let gpa = (entry & addressMask & ~span) | (gva & span & ~0xFFF)
                let cbit = entry & cbitMask != 0
                return TLBEntry(gpaPage: gpa >> 12, spaPage: try nestedTranslate(gpa, cbit: vm.isSEV && cbit) >> 12, cbit: cbit)
            }
            table = entry & addressMask
        }
        let gpa = entry & addressMask
        let cbit = entry & cbitMask != 0
        return TLBEntry(gpaPage: gpa >> 12, spaPage: try nestedTranslate(gpa, cbit: vm.isSEV && cbit) >> 12, cbit: cbit)
    }

    /// Where the last-level entry mapping `gva` lives, found the way the kernel's `lookup_address` does:
    /// by reading the page tables through its own (identity) mapping.
    /// A 2 MiB mapping on the way is split first (`split_large_page`), so the entry returned maps 4 KiB.
    func pteAddress(of gva: UInt64) throws(MachineError) -> UInt64 {
        if mode == .legacy {
            let pdeAddress = cr3 + (gva >> 22) * 4
            var pde = try load(gva: pdeAddress, size: 4, register: MemoryAccess.noRegister)
            guard pde & 1 != 0 else { throw .guestPageFault(vm: vm.name, vcpu: Int(index), gva: gva, rip: rip) }
            if pde & GuestKernel.pageSize != 0 {
                pde = try GuestKernel(vcpu: self).splitLargePage(entryAt: pdeAddress, entry: pde)
            }
            return (pde & 0xFFFF_F000) + ((gva >> 12) & 0x3FF) * 4
        }
        let addressMask: UInt64 = 0x000F_FFFF_FFFF_F000 & ~platform.config.cbitMask
        var table = cr3
        for level in stride(from: mode == .pae ? 2 : 3, through: 1, by: -1) {
            let idx = (gva >> (12 + 9 * UInt64(level))) & 0x1FF
            var entry = try load(gva: table + idx * 8, size: 8, register: MemoryAccess.noRegister)
            guard entry & 1 != 0 else { throw .guestPageFault(vm: vm.name, vcpu: Int(index), gva: gva, rip: rip) }
            if level == 1 && entry & GuestKernel.pageSize != 0 {
                entry = try GuestKernel(vcpu: self).splitLargePage(entryAt: table + idx * 8, entry: entry)
            }
            table = entry & addressMask
        }
        return table + ((gva >> 12) & 0x1FF) * 8
    }

    // MARK: - Data accesses

    @inline(__always)
    func load(gva: UInt64, size: Int, register: UInt8) throws(MachineError) -> UInt64 {
        let t = try translate(gva)
        refreshKey()
        let (actor, vmID, asid, key) = (self.actor, vm.id, self.asid, t.cbit ? currentKey : nil)
        return try platformRef.with { (platform) throws(MachineError) in
            try platform.read(actor: actor, vm: vmID, asid: asid, kind: .read, gva: gva, gpa: t.gpa, spa: t.spa,
                              size: size, cbit: t.cbit, reason: t.reason, register: register, key: key)
        }
    }

    @inline(__always)
    func store(gva: UInt64, size: Int, value: UInt64, register: UInt8) throws(MachineError) {
        let t = try translate(gva)
        refreshKey()
        let (actor, vmID, asid, key) = (self.actor, vm.id, self.asid, t.cbit ? currentKey : nil)
        try platformRef.with { (platform) throws(MachineError) in
            try platform.write(actor: actor, vm: vmID, asid: asid, kind: .write, gva: gva, gpa: t.gpa, spa: t.spa,
                               size: size, value: value, cbit: t.cbit, reason: t.reason, register: register, key: key)
        }
    }

    /// Fetches the 16-byte instruction at rip. Instruction fetches are always private.
    private func fetch() throws(MachineError) -> Instruction {
        let t = try translate(rip)
        let reason: CbitReason = mode.walksGuestPageTables ? .forcedFetch : .forcedNonPaged
        refreshKey()
        let (actor, vmID, asid, key, rip, cbit) = (self.actor, vm.id, self.asid, currentKey, self.rip, vm.isSEV)
        let (lo, hi) = try platformRef.with { (platform) throws(MachineError) in
            let core = Int(index) % platform.config.cores
            let lo = try platform.cpuLoad(t.spa, size: 8, key: key, keyID: asid, core: core)
            let hi = try platform.cpuLoad(t.spa + 8, size: 8, key: key, keyID: asid, core: core)
            platform.emit(.memoryAccess(MemoryAccess(actor: actor, vm: vmID, asid: asid, kind: .fetch, gva: rip,
                                                    gpa: t.gpa, spa: platform.traced(t.spa), size: UInt32(Instruction.size), cbit: cbit,
                                                    reason: reason, value: lo)),
                          cost: Platform.Cost.instruction)
            return (lo, hi)
        }
        guard rip & 0xF == 0, let insn = Instruction.decode(lo, hi) else {
            throw .invalidInstruction(vm: vm.name, vcpu: Int(index), rip: rip, opcode: UInt8(truncatingIfNeeded: lo))
        }
        return insn
    }

    func registerOp(_ op: RegisterOpKind, dst: UInt8, src: UInt8, result: UInt64) {
        registers[Int(dst)] = result
        let body = EventBody.registerOp(RegisterOp(vm: vm.id, vcpu: index, op: op, dst: dst, src: src, result: result))
        platformRef.with { $0.emit(body, cost: Platform.Cost.instruction) }
    }

    // MARK: - Running

    /// Boots the guest kernel on first run, then executes until HLT.
    func run() throws(MachineError) {
        try platform.kvm.enter(self)
        try bootIfNeeded()
        halted = false
        while !halted { try step() }
    }

    /// Takes over another vCPU's architectural state (migration of a guest without SEV-ES, whose
    /// register state the hypervisor holds in the clear).
    func copyState(from other: VCPU) {
        registers = other.registers
        rip = other.rip
        mode = other.mode
        cr3 = other.cr3
        booted = other.booted
        halted = other.halted
        tlb.removeAll()
    }

    /// Runs the guest kernel's early boot once per VM (the bootstrap processor builds the page tables;
    /// the others start in long mode on them), then points rip at the VM's entry with the vCPU's number
    /// in r7 (RDI).
    func bootIfNeeded() throws(MachineError) {
        guard !booted else { return }
        if let bsp = vm.vcpus.first(where: { $0.booted }) {
            cr3 = bsp.cr3
            setMode(bsp.mode)
        } else {
            try GuestKernel(vcpu: self).boot()
        }
        booted = true
        rip = vm.entry
        registers[7] = UInt64(index)
    }

    /// Runs at most `instructions` instructions (one VMRUN); returns true when the vCPU halted, false
    /// when its time slice ran out (the hypervisor preempts it with a physical interrupt exit).
    func runSlice(_ instructions: Int) throws(MachineError) -> Bool {
        guard !halted else { return true }
        try platform.kvm.enter(self)
        try bootIfNeeded()
        var left = instructions
        while !halted && left > 0 {
            try step()
            left -= 1
        }
        if !halted { platform.kvm.reportExit(self, code: VMExit.interrupt, info1: 0, info2: 0) }
        return halted
    }

    /// Whether the vCPU has stopped at HLT.
    var isHalted: Bool { halted }

    /// Makes a halted vCPU runnable again (what an interrupt does to HLT).
    func wake() { halted = false }

    /// Counts one step of the machine's work, reaching it without reference counting.
    @inline(__always)
    private func countStep() throws(MachineError) {
        try platformRef.with { (platform) throws(MachineError) in try platform.countSteps() }
    }

    /// Executes one instruction.
    func step() throws(MachineError) {
        do {
            try countStep()
            let insn = try fetch()
            steps += 1
            do {
                try execute(insn)
            } catch .unmappedGPA(let name, let gpa) where name == vm.name && vm.isMMIO(gpa) {
                // No memory behind the address: #VMEXIT(NPF) and KVM emulates the access.
                try platform.kvm.emulateMMIO(self, insn, gpa: gpa)
            }
        } catch .unmappedGPA(let name, let gpa) where name == vm.name && platform.kvm.isTracked(vm, gpa: gpa) {
            // A nested page fault on a page the hypervisor unmapped: #VMEXIT(NPF); KVM maps the page
            // back and the instruction runs again (string copies resume where they stopped).
            try platform.kvm.handleNestedPageFault(self, gpa: gpa)
        } catch .unmappedGPA(let name, let gpa) where name == vm.name && platform.kvm.isSwappedOut(vm, gpa: gpa) {
            // The host swapped the page out: KVM brings it back, telling the guest by async PF if it may.
            try platform.kvm.handleSwappedOutPage(self, gpa: gpa)
        }
    }

    /// Executes one fetched instruction.
    private func execute(_ insn: Instruction) throws(MachineError) {
        var next = rip &+ UInt64(Instruction.size)
        let a = Int(insn.a), b = Int(insn.b)
        switch insn.opcode {
        case .movImmediate: registerOp(.loadImmediate, dst: insn.a, src: MemoryAccess.noRegister, result: insn.immediate)
        case .move: registerOp(.move, dst: insn.a, src: insn.b, result: registers[b])
        case .add: registerOp(.add, dst: insn.a, src: insn.b, result: registers[a] &+ registers[b])
        case .sub: registerOp(.sub, dst: insn.a, src: insn.b, result: registers[a] &- registers[b])
        case .xor: registerOp(.xor, dst: insn.a, src: insn.b, result: registers[a] ^ registers[b])
        case .and: registerOp(.and, dst: insn.a, src: insn.b, result: registers[a] & registers[b])
        case .or: registerOp(.or, dst: insn.a, src: insn.b, result: registers[a] | registers[b])
        case .addImmediate:
            registerOp(.addImmediate, dst: insn.a, src: MemoryAccess.noRegister, result: registers[a] &+ insn.immediate)
        case .load:
            registers[a] = try load(gva: registers[b] &+ insn.immediate, size: Int(insn.width), register: insn.a)
        case .store:
            try store(gva: registers[a] &+ insn.immediate, size: Int(insn.width), value: registers[b], register: insn.b)
        case .copy:
            let c = Int(insn.c)
            while registers[c] != 0 {
                try countStep()
                let v = try load(gva: registers[b], size: 8, register: Instruction.copyLatch)
                registers[Int(Instruction.copyLatch)] = v
                try store(gva: registers[a], size: 8, value: v, register: Instruction.copyLatch)
                registers[a] &+= 8
                registers[b] &+= 8
                registers[c] -= 1
            }
        case .jump: next = insn.immediate
        case .jumpIfNotZero: if registers[a] != 0 { next = insn.immediate }
        case .jumpIfZero: if registers[a] == 0 { next = insn.immediate }
        case .setMemoryDecrypted:
            try GuestKernel(vcpu: self).setMemoryEncryption(gva: registers[a], pages: insn.immediate, encrypted: false)
        case .setMemoryDecryptedNoFlush:
            try GuestKernel(vcpu: self).setMemoryEncryption(gva: registers[a], pages: insn.immediate, encrypted: false,
                                                            flush: false)
        case .dmaMapSingle, .dmaUnmapSingle:
            try GuestKernel(vcpu: self).swiotlbBounce(to: registers[a], from: registers[b], length: registers[Int(insn.c)],
                                                      toDevice: insn.opcode == .dmaMapSingle)
        case .setMemoryEncrypted:
            try GuestKernel(vcpu: self).setMemoryEncryption(gva: registers[a], pages: insn.immediate, encrypted: true)
        case .out, .input, .outs, .ins, .vmmcall, .cpuid, .rdmsr, .wrmsr:
            rip = next  // nRIP: the hypervisor resumes after the instruction
            try platform.kvm.handleExit(self, insn)
            return
        case .halt:
            halted = true
            rip = next
            platform.kvm.reportExit(self, code: VMExit.hlt, info1: 0, info2: 0)
            platform.emit(.vcpuHalt(VCPURef(vm: vm.id, vcpu: index)), cost: Platform.Cost.instruction)
            return
        }
        rip = next
    }
}
