import TraceFormat

/// The hypervisor, modelled on KVM: it creates VMs and their nested page tables, allocates SEV ASIDs,
/// drives the PSP as KVM's `KVM_MEMORY_ENCRYPT_OP` does, runs vCPUs, and can read and write guest
/// memory directly (which is what a curious or malicious hypervisor does).
public final class KVM {
    unowned let platform: Platform
    public private(set) var vms: [VirtualMachine] = []
    /// Host memory below this is the host kernel's; guests are allocated above it.
    static let guestMemoryStart: UInt64 = 16 << 20
    /// Where the host's PSP driver keeps its command buffer and staged data.
    static let driverArea: UInt64 = 1 << 20
    /// The host's PSP driver.
    public private(set) lazy var driver = PSPDriver(platform: platform, base: Self.driverArea)
    /// The next free host frame for guest memory (page copies take theirs from here too).
    var nextFree = guestMemoryStart
    /// Host pages for nested page tables are taken from here (below the guests' memory).
    static let nptArea: UInt64 = 8 << 20
    var nextNPTPage = nptArea
    private var asidInUse: [Bool]
    /// VMs without SEV created so far (for their ASIDs).
    private var nonSEVCount = 0
    /// ASIDs of destroyed guests, not reusable until WBINVD and DF_FLUSH (`sev_reclaim_asid_bitmap`).
    private var asidReclaim: [Bool]

    init(platform: Platform) {
        self.platform = platform
        asidInUse = Array(repeating: false, count: Int(platform.config.maxSEVASID) + 1)
        asidReclaim = asidInUse
    }

    /// The VM called `name`.
    public func vm(named name: String) -> VirtualMachine? { vms.first { $0.name == name } }

    /// Host memory the host kernel keeps for itself between two memslots' backing, so that guest RAM in
    /// different slots is not physically contiguous.
    static let slotGap: UInt64 = 2 << 20

    /// Creates a VM with `memoryBytes` of memory (a multiple of 2 MiB) in `slots` memslots of equal size
    /// (KVM_SET_USER_MEMORY_REGION), each backed by consecutive host pages of its own with host memory in
    /// between, and for an SEV guest the lowest free ASID from the minimum SEV ASID up (as `sev_asid_new`).
    @discardableResult
    public func createVM(name: String, memoryBytes: UInt64, policy: UInt32, sev: Bool, vcpus: Int = 1,
                         largePages: Bool = false, paging: PagingMode = .long, slots: Int = 1, verifyCbit: Bool = false)
        throws(MachineError) -> VirtualMachine {
        guard memoryBytes >= 2 << 20, memoryBytes % (2 << 20) == 0 else {
            throw .invalid("\(name): memory must be a multiple of 2 MiB")
        }
        guard slots >= 1, memoryBytes % (UInt64(slots) * (2 << 20)) == 0 else {
            throw .invalid("\(name): \(slots) memslots of equal size need memory in multiples of \(slots * 2) MiB")
        }
        guard paging == .long || memoryBytes <= 1 << 32 else {
            throw .invalid("\(name): a \(paging == .pae ? "PAE" : "32-bit") guest addresses at most 4 GiB")
        }
        guard paging != .legacy || memoryBytes % (4 << 20) == 0 else {
            throw .invalid("\(name): with 32-bit paging memory must be a multiple of 4 MiB")
        }
        guard paging.walksGuestPageTables else { throw .invalid("\(name): the guest kernel enables paging (long, pae or legacy)") }
        let needed = memoryBytes + UInt64(slots - 1) * Self.slotGap
        let free = platform.config.memoryBytes > nextFree ? platform.config.memoryBytes - nextFree : 0
        guard needed <= free else { throw .outOfHostMemory(requested: needed, free: free) }
        guard !sev || platform.config.memoryEncryptionEnabled else {
            throw .invalid("\(name): SYSCFG MemEncryptionModEn is clear on this platform, so KVM offers no SEV")
        }
        let asid = sev ? try allocateASID() : nonSEVASID()
        let slotBytes = memoryBytes / UInt64(slots)
        var frames: [UInt64] = []
        var backing: [UInt64] = []
        for s in 0..<UInt64(slots) {
            let base = nextFree + s * (slotBytes + Self.slotGap)
            backing.append(base)
            frames += (0..<(slotBytes >> 12)).map { (base >> 12) + $0 }
        }
        let vm = VirtualMachine(id: platform.machine.nextVMID(), name: name, platform: platform, memoryBytes: memoryBytes, policy: policy,
                                sev: sev, asid: asid,
                                frames: frames, largePages: largePages, paging: paging, verifyCbit: verifyCbit)
        vm.memslots = (0..<UInt64(slots)).map {
            Memslot(slot: UInt16($0), gpa: $0 * slotBytes, bytes: slotBytes, userspaceAddress: vm.userAddress(of: $0 * slotBytes))
        }
        for i in 0..<vcpus { vm.vcpus.append(VCPU(vm: vm, index: UInt16(i), platform: platform)) }
        vms.append(vm)
        platform.emit(.vmCreated(VMCreated(vm: vm.id, platform: platform.id, name: name, asid: asid, policy: policy, memoryBytes: memoryBytes,
                                          vcpus: UInt16(vcpus), sev: sev)), cost: Platform.Cost.control)
        try buildNPT(vm)
        for (slot, base) in zip(vm.memslots, backing) {
            platform.emit(.nptChange(NPTChange(vm: vm.id, op: .map, gpa: slot.gpa, spa: platform.traced(base), pages: slot.bytes >> 12)),
                          cost: Platform.Cost.control)
        }
        nextFree += needed
        return vm
    }

    /// The ASID of a VM without SEV: one above the SEV range (KVM's `min_asid = max_sev_asid + 1`). KVM hands
    /// these out per CPU at VMRUN and renews them at each flush; here each such VM keeps one, in the order
    /// the VMs were created.
    func nonSEVASID() -> UInt16 {
        defer { nonSEVCount += 1 }
        let span = Int(UInt16.max) - Int(platform.config.maxSEVASID)
        return UInt16(Int(platform.config.maxSEVASID) + 1 + nonSEVCount % span)
    }

    /// `sev_asid_new`: the lowest free ASID from the minimum SEV ASID up. When none is free but some wait
    /// for reclaim, `__sev_recycle_asids`: WBINVD on all CPUs and DF_FLUSH, then they are free again.
    func allocateASID() throws(MachineError) -> UInt16 {
        let range = Int(platform.config.minSEVASID)...Int(platform.config.maxSEVASID)
        if let a = range.first(where: { !asidInUse[$0] && !asidReclaim[$0] }) {
            asidInUse[a] = true
            return UInt16(a)
        }
        guard asidReclaim.contains(true) else { throw .noFreeASID }
        platform.wbinvdAllCores()
        guard (try driver.issue(.dfFlush, CommandBuffer(for: .dfFlush))).0 == .success else { throw .noFreeASID }
        for i in asidReclaim.indices where asidReclaim[i] {
            asidReclaim[i] = false
            asidInUse[i] = false
        }
        return try allocateASID()
    }

    /// Prepares `vm` to share `other`'s memory-encryption key: it gives up its own ASID and takes
    /// `other`'s, since guests that share a key share the ASID the key is loaded for.
    func shareASID(_ vm: VirtualMachine, with other: VirtualMachine) throws(MachineError) {
        guard vm.isSEV, other.isSEV, other.handle != 0, other.platform === platform else {
            throw .invalid("\(vm.name) can only share the key of a launched SEV guest on its platform")
        }
        asidInUse[Int(vm.asid)] = false
        vm.asid = other.asid
    }

    /// Destroys a VM as KVM does (`sev_vm_destroy`): WBINVD on all CPUs, DEACTIVATE, DECOMMISSION, unmap
    /// its memory; its ASID waits for reclaim.
    public func destroy(_ vm: VirtualMachine) throws(MachineError) {
        guard !vm.destroyed else { throw .invalid("\(vm.name) is already destroyed") }
        if vm.isSEV {
            if vm.handle != 0 {
                platform.wbinvdAllCores()
                try driver.issue(.deactivate, SEVData.Handle(vm.handle))
                try driver.issue(.decommission, SEVData.Handle(vm.handle))
            }
            asidReclaim[Int(vm.asid)] = true
        }
        vm.destroyed = true
        let first = vm.npt.first { $0 != VirtualMachine.unmapped }.map { $0 << 12 } ?? 0
        platform.emit(.nptChange(NPTChange(vm: vm.id, op: .unmap, gpa: 0, spa: platform.traced(first),
                                           pages: UInt64(vm.npt.count))), cost: Platform.Cost.control)
        for i in vm.npt.indices { vm.npt[i] = VirtualMachine.unmapped }
    }

    /// Makes sure the platform is initialised, as KVM_SEV_INIT does: INIT if needed, then WBINVD and
    /// DF_FLUSH ("Prepare for first SEV guest launch after INIT").
    public func sevInit() {
        guard platform.firmware.platformState == .uninit else { return }
        guard (try? driver.issue(.initialize, CommandBuffer(for: .initialize)))?.0 == .success else { return }
        platform.wbinvdAllCores()
        _ = try? driver.issue(.dfFlush, CommandBuffer(for: .dfFlush))
    }

    /// Copies the VM's image into its memory (once).
    func loadImage(_ vm: VirtualMachine) throws(MachineError) {
        guard !vm.imageLoaded else { return }
        for region in vm.image { try write(vm, gpa: region.gpa, bytes: region.bytes) }
        vm.imageLoaded = true
    }

    /// The hypervisor reads guest memory by guest physical address, with no key: it sees what DRAM holds.
    @discardableResult
    public func read(_ vm: VirtualMachine, gpa: UInt64, length: Int) throws(MachineError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        for (offset, size) in try Platform.granules(start: gpa, count: length) {
            let g = gpa + UInt64(offset)
            let v = try platform.read(actor: .hypervisor, vm: vm.id, asid: 0, kind: .read, gva: 0, gpa: g,
                                     spa: try vm.translate(g), size: size, cbit: false, reason: .host, key: nil)
            Platform.store(v, into: &out, at: offset, size: size)
        }
        return out
    }

    /// The hypervisor writes guest memory by guest physical address, with no key.
    public func write(_ vm: VirtualMachine, gpa: UInt64, bytes: [UInt8]) throws(MachineError) {
        for (offset, size) in try Platform.granules(start: gpa, count: bytes.count) {
            let g = gpa + UInt64(offset)
            try platform.write(actor: .hypervisor, vm: vm.id, asid: 0, kind: .write, gva: 0, gpa: g,
                              spa: try vm.translate(g), size: size, value: Platform.value(bytes, at: offset, size: size),
                              cbit: false, reason: .host, key: nil)
        }
    }

    /// Runs vCPU `index` of `vm` until it halts (or the simulation's step budget runs out).
    ///
    /// - Parameters:
    ///   - asid: the ASID to put in the VMCB instead of the VM's own (what a malicious hypervisor does).
    ///   - survivingCrash: when the guest faults (a page fault or an invalid instruction, as a guest
    ///     running under the wrong key does), report a SHUTDOWN exit and return instead of throwing.
    /// - Returns: false when the guest crashed.
    @discardableResult
    public func run(_ vm: VirtualMachine, vcpu index: Int = 0, asid: UInt16? = nil, survivingCrash: Bool = false) throws(MachineError) -> Bool {
        guard index < vm.vcpus.count else { throw .invalid("\(vm.name) has no vcpu \(index)") }
        let vcpu = vm.vcpus[index]
        if let asid {
            guard asid >= 1, Int(asid) <= Int(platform.config.maxSEVASID), platform.controller.key(forASID: asid) != nil else {
                throw .invalid("ASID \(asid) has no key loaded")
            }
            vcpu.vmcbASID = asid
        } else {
            try prepareToRun(vm)
        }
        defer { vcpu.vmcbASID = nil }
        do {
            try vcpu.run()
            return true
        } catch {
            switch error {
            case .guestPageFault, .invalidInstruction:
                guard survivingCrash else { throw error }
                // Triple fault: the VM shuts down.
                reportExit(vcpu, code: VMExit.shutdown, info1: 0, info2: 0)
                vcpu.crash()
                return false
            case .guestStopped:
                guard survivingCrash else { throw error }
                // The kernel parks the CPU: the hypervisor sees it halt, and it never runs on.
                reportExit(vcpu, code: VMExit.hlt, info1: 0, info2: 0)
                vcpu.crash()
                return false
            default:
                throw error
            }
        }
    }

    /// Runs every vCPU of `vms` until all halt, interleaved by a scheduler that draws from the
    /// simulation's seeded randomness: each time slice goes to a runnable vCPU picked at random and lasts
    /// 1 to `quantum` instructions, ended by a preemption exit. The same seed gives the same interleaving.
    /// `actions` device or hypervisor actions (`perform(i)` runs the i-th) compete for the slices like one
    /// more vCPU, in order, so they land between guest instructions where the seed says.
    public func schedule(_ vms: [VirtualMachine], quantum: Int, actions: Int = 0,
                         perform: (Int) throws(MachineError) -> Void = { _ in }) throws(MachineError) {
        for vm in vms { try vm.platform.kvm.prepareToRun(vm) }
        var runnable = vms.flatMap(\.vcpus)
        for v in runnable { v.wake() }
        var nextAction = 0
        while !runnable.isEmpty || nextAction < actions {
            // The next action (a device or the hypervisor) competes for the CPU like one more vCPU.
            let choices = runnable.count + (nextAction < actions ? 1 : 0)
            let pick = Int(platform.machine.rng.next() % UInt64(choices))
            if pick == runnable.count {
                try perform(nextAction)
                nextAction += 1
                try platform.machine.checkStop()
                continue
            }
            let slice = 1 + Int(platform.machine.rng.next() % UInt64(max(1, quantum)))
            let vcpu = runnable[pick]
            if try vcpu.runSlice(slice) { runnable.remove(at: pick) }
            try platform.machine.checkStop()
        }
    }

    /// Checks that the VM can run: an SEV guest needs its key loaded; a plain guest gets its image now.
    func prepareToRun(_ vm: VirtualMachine) throws(MachineError) {
        guard !vm.destroyed else { throw .invalid("\(vm.name) was destroyed") }
        if vm.isSEV {
            guard platform.controller.key(forASID: vm.asid) != nil else { throw .noKey(vm: vm.name, asid: vm.asid) }
        } else {
            try loadImage(vm)
        }
    }

    /// The guest itself (its vCPU 0, booting first if it has not) writes `bytes` at `gpa` in its memory
    /// (private unless its page tables map the page decrypted), and the bytes are declared secret.
    public func guestWriteSecret(_ vm: VirtualMachine, gpa: UInt64, name: String, bytes: [UInt8]) throws(MachineError) {
        try prepareToRun(vm)
        let vcpu = vm.vcpus[0]
        try vcpu.bootIfNeeded()
        for (offset, size) in try Platform.granules(start: gpa, count: bytes.count) {
            try vcpu.store(gva: gpa + UInt64(offset), size: size, value: Platform.value(bytes, at: offset, size: size),
                           register: MemoryAccess.noRegister)
        }
        try declareSecret(vm, gpa: gpa, name: name, length: bytes.count)
    }

    /// Declares `length` bytes of the VM's memory at `gpa` a secret (a taint source): one event per run of
    /// contiguous system physical pages.
    public func declareSecret(_ vm: VirtualMachine, gpa: UInt64, name: String, length: Int) throws(MachineError) {
        var start = 0
        while start < length {
            let g = gpa + UInt64(start)
            let spa = try vm.translate(g)
            var end = min(length, start + Int(4096 - (g & 0xFFF)))
            while end < length, try vm.translate(gpa + UInt64(end)) == spa + UInt64(end - start) {
                end = min(length, end + 4096)
            }
            platform.emit(.taintSource(TaintSource(vm: vm.id, name: name, gpa: g, spa: platform.traced(spa),
                                                   length: UInt64(end - start))), cost: Platform.Cost.control)
            start = end
        }
    }
}
