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
    private var nextFree = guestMemoryStart
    /// Host pages for nested page tables are taken from here (below the guests' memory).
    static let nptArea: UInt64 = 8 << 20
    private var nextNPTPage = nptArea
    private var asidInUse: [Bool]
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
        var asid: UInt16 = 0
        if sev {
            asid = try allocateASID()
        }
        let slotBytes = memoryBytes / UInt64(slots)
        var frames: [UInt64] = []
        var backing: [UInt64] = []
        for s in 0..<UInt64(slots) {
            let base = nextFree + s * (slotBytes + Self.slotGap)
            backing.append(base)
            frames += (0..<(slotBytes >> 12)).map { (base >> 12) + $0 }
        }
        let vm = VirtualMachine(id: platform.machine.nextVMID(), name: name, platform: platform, memoryBytes: memoryBytes, policy: policy, asid: asid,
                                frames: frames, largePages: largePages, paging: paging, verifyCbit: verifyCbit)
        vm.memslots = (0..<UInt64(slots)).map {
            Memslot(slot: UInt16($0), gpa: $0 * slotBytes, bytes: slotBytes, userspaceAddress: vm.userAddress(of: $0 * slotBytes))
        }
        for i in 0..<vcpus { vm.vcpus.append(VCPU(vm: vm, index: UInt16(i), platform: platform)) }
        vms.append(vm)
        platform.emit(.vmCreated(VMCreated(vm: vm.id, platform: platform.id, name: name, asid: asid, policy: policy, memoryBytes: memoryBytes,
                                          vcpus: UInt16(vcpus))), cost: Platform.Cost.control)
        try buildNPT(vm)
        for (slot, base) in zip(vm.memslots, backing) {
            platform.emit(.nptChange(NPTChange(vm: vm.id, op: .map, gpa: slot.gpa, spa: platform.traced(base), pages: slot.bytes >> 12)),
                          cost: Platform.Cost.control)
        }
        nextFree += needed
        return vm
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
                var deactivate = CommandBuffer(for: .deactivate)
                deactivate.setU32(0, vm.handle)
                try driver.issue(.deactivate, deactivate)
                var decommission = CommandBuffer(for: .decommission)
                decommission.setU32(0, vm.handle)
                try driver.issue(.decommission, decommission)
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

    /// Builds the VM's nested page table in host memory (4 levels, 4 KiB pages, written by the
    /// hypervisor), mapping every guest page to the frame the software table says. Each table page is
    /// cleared first, as KVM allocates them zeroed: entries it never fills must read as not present,
    /// also under an SME key, where never-written DRAM decrypts to garbage.
    func buildNPT(_ vm: VirtualMachine) throws(MachineError) {
        func page() throws(MachineError) -> UInt64 {
            guard nextNPTPage + 4096 <= Self.guestMemoryStart else { throw .outOfHostMemory(requested: 4096, free: 0) }
            defer { nextNPTPage += 4096 }
            for offset in stride(from: UInt64(0), to: 4096, by: 8) { try hostEntry(nextNPTPage + offset, 0) }
            return nextNPTPage
        }
        let entryFlags: UInt64 = 0x7  // present, writable, user
        let pages = UInt64(vm.npt.count)
        let pml4 = try page(), pdpt = try page()
        try hostEntry(pml4, pdpt | entryFlags)
        let gib = (pages + 262_143) / 262_144
        for g in 0..<gib {
            let pd = try page()
            try hostEntry(pdpt + g * 8, pd | entryFlags)
            let tables = min(512, (pages - g * 262_144 + 511) / 512)
            for t in 0..<tables {
                let pt = try page()
                try hostEntry(pd + t * 8, pt | entryFlags)
                vm.nptTables.append(pt)
                for i in 0..<min(512, pages - (g * 512 + t) * 512) {
                    try hostEntry(pt + i * 8, vm.npt[Int((g * 512 + t) * 512 + i)] << 12 | entryFlags)
                }
            }
        }
        vm.nptRoot = pml4
    }

    private func hostEntry(_ spa: UInt64, _ value: UInt64) throws(MachineError) {
        try platform.write(actor: .hypervisor, vm: MemoryAccess.noVM, asid: 0, kind: .write, gva: 0, gpa: 0, spa: spa, size: 8,
                           value: value, cbit: false, reason: .host, key: nil)
    }

    /// Points guest page `page` at `frame` (nil: not present) in both the hypervisor's view and the
    /// nested page table in host memory.
    func setNPT(_ vm: VirtualMachine, page: UInt64, frame: UInt64?) throws(MachineError) {
        vm.npt[Int(page)] = frame ?? VirtualMachine.unmapped
        let table = vm.nptTables[Int(page / 512)]
        try hostEntry(table + (page % 512) * 8, frame.map { $0 << 12 | 0x7 } ?? 0)
    }

    /// Removes pages of `vm` from its nested page table, keeping note of their frames: the guest's next
    /// access to one of them is a nested page fault the hypervisor sees (by guest physical page) and
    /// answers by mapping the page back. This is the page-fault side channel.
    public func unmap(_ vm: VirtualMachine, gpa: UInt64, pages: UInt64) throws(MachineError) {
        try removeFromNPT(vm, gpa: gpa, pages: pages, keepingFramesIn: \.trackedFrames)
    }

    /// Clears the nested page table entries of `pages` pages from `gpa`, noting each page's frame in the
    /// VM's table at `frames` so the fault handler can bring it back, then flushes the VM's TLBs.
    private func removeFromNPT(_ vm: VirtualMachine, gpa: UInt64, pages: UInt64,
                               keepingFramesIn frames: ReferenceWritableKeyPath<VirtualMachine, [UInt64: UInt64]>)
        throws(MachineError) {
        for p in 0..<pages {
            let page = (gpa >> 12) + p
            guard page < UInt64(vm.npt.count), vm.memslots.contains(where: { $0.contains(gpa: page << 12) }) else {
                throw .invalid("\(vm.name): guest physical address 0x\(String(page << 12, radix: 16)) is in no memslot")
            }
            guard vm.npt[Int(page)] != VirtualMachine.unmapped else { continue }
            vm[keyPath: frames][page] = vm.npt[Int(page)]
            try setNPT(vm, page: page, frame: nil)
        }
        for vcpu in vm.vcpus { vcpu.flushTLB() }
        platform.emit(.nptChange(NPTChange(vm: vm.id, op: .unmap, gpa: gpa & ~0xFFF, spa: 0, pages: pages)),
                      cost: Platform.Cost.control)
    }

    /// Whether `gpa` is in a page the hypervisor unmapped to watch it.
    func isTracked(_ vm: VirtualMachine, gpa: UInt64) -> Bool { vm.trackedFrames[gpa >> 12] != nil }

    /// #VMEXIT(NPF) for a watched page: EXITINFO2 carries the faulting guest physical address; KVM maps
    /// the page back and resumes the guest.
    func handleNestedPageFault(_ vcpu: VCPU, gpa: UInt64) throws(MachineError) {
        let vm = vcpu.vm
        let page = gpa >> 12
        guard let frame = vm.trackedFrames.removeValue(forKey: page) else { return }
        reportExit(vcpu, code: VMExit.npf, info1: 0x1_0000_0004, info2: gpa)  // "guest physical", user-mode bits unused
        try setNPT(vm, page: page, frame: frame)
        for v in vm.vcpus { v.flushTLB() }
        platform.emit(.nptChange(NPTChange(vm: vm.id, op: .map, gpa: page << 12, spa: platform.traced(frame << 12), pages: 1)),
                      cost: Platform.Cost.control)
        enter(vcpu)
    }

    /// Points guest page `gpa` of `vm` at the system physical page behind `sourceGPA` of `source` (the
    /// same VM or another one), as a malicious hypervisor does (SEVered, CrossLine), and flushes the VM's
    /// TLBs. The page's old frame is left as it was.
    public func remap(_ vm: VirtualMachine, gpa: UInt64, to sourceGPA: UInt64, of source: VirtualMachine) throws(MachineError) {
        let page = gpa >> 12
        guard page < UInt64(vm.npt.count) else { throw .unmappedGPA(vm: vm.name, gpa: gpa) }
        guard source.platform === platform else { throw .invalid("\(source.name) runs on another platform") }
        let spa = try source.translate(sourceGPA & ~0xFFF)
        try setNPT(vm, page: page, frame: spa >> 12)
        for vcpu in vm.vcpus { vcpu.flushTLB() }
        platform.emit(.nptChange(NPTChange(vm: vm.id, op: .remap, gpa: page << 12, spa: platform.traced(spa), pages: 1)),
                      cost: Platform.Cost.control)
    }

    /// KVM_MEMORY_ENCRYPT_REG_REGION over all of the VM's memory (`sev_mem_enc_register_region`): KVM pins
    /// the pages (FOLL_LONGTERM: their ciphertext is bound to their physical address, so they must never
    /// move) and flushes them from the caches, since the guest may switch pages between C=0 and C=1.
    public func registerRegion(_ vm: VirtualMachine) throws(MachineError) {
        guard vm.isSEV else { throw .invalid("\(vm.name) is not an SEV guest") }
        guard !vm.pinned else { return }
        vm.pinned = true
        for page in 0..<UInt64(vm.npt.count) {
            platform.clflush(try vm.translate(page << 12), count: 4096, keyID: 0)
        }
    }

    /// The host kernel migrates guest page `gpa` of `vm` to a fresh host frame (compaction, NUMA
    /// balancing): it copies the frame's contents as they are in DRAM and points the nested page table at
    /// the copy. For an SEV guest the copy is ciphertext bound to the old address, which the guest then
    /// decrypts into garbage; KVM's REG_REGION pin exists to forbid this.
    public func migratePage(_ vm: VirtualMachine, gpa: UInt64) throws(MachineError) {
        let page = gpa >> 12
        guard !vm.pinned else {
            throw .invalid("\(vm.name): guest page \(page << 12) is pinned by KVM_MEMORY_ENCRYPT_REG_REGION; the host cannot migrate it")
        }
        let new = try copyToFreshFrame(vm, page: page, from: try vm.translate(page << 12))
        try setNPT(vm, page: page, frame: new >> 12)
        for vcpu in vm.vcpus { vcpu.flushTLB() }
        platform.emit(.nptChange(NPTChange(vm: vm.id, op: .remap, gpa: page << 12, spa: platform.traced(new), pages: 1)),
                      cost: Platform.Cost.control)
    }

    /// Copies guest page `page` from host frame address `old` into a fresh host frame, as the host kernel
    /// copies a page (through its own mapping, no guest key), and returns the new frame's address.
    private func copyToFreshFrame(_ vm: VirtualMachine, page: UInt64, from old: UInt64) throws(MachineError) -> UInt64 {
        guard nextFree + 4096 <= platform.config.memoryBytes else {
            throw .outOfHostMemory(requested: 4096, free: platform.config.memoryBytes - nextFree)
        }
        let new = nextFree
        nextFree += 4096
        try platform.hostCopy(from: platform, old, to: new, count: 4096, srcVM: vm.id, srcGPA: page << 12,
                              dstVM: vm.id, dstGPA: page << 12)
        return new
    }

    /// The host kernel reclaims guest pages (swap): their nested page table entries go, and the guest's
    /// next access to one is a nested page fault that brings it back into a fresh frame. For an SEV
    /// guest what comes back is ciphertext bound to the old address, which is why KVM pins SEV memory
    /// (REG_REGION); pinned pages refuse.
    public func swapOut(_ vm: VirtualMachine, gpa: UInt64, pages: UInt64) throws(MachineError) {
        guard !vm.pinned else {
            throw .invalid("\(vm.name): its memory is pinned by KVM_MEMORY_ENCRYPT_REG_REGION; the host cannot swap it out")
        }
        try removeFromNPT(vm, gpa: gpa, pages: pages, keepingFramesIn: \.swappedFrames)
    }

    /// KVM_SET_USER_MEMORY_REGION with size 0: the VMM deletes memslot `slot`. KVM zaps its nested page
    /// table entries and, for an SEV guest, writes back and invalidates the caches on every CPU
    /// (`sev_guest_memory_reclaimed`), since the host may reuse the frames. The range has no memory any
    /// more: the guest's loads and stores there become MMIO exits that KVM emulates from the decode
    /// assist, with every stored value in a VMCB register. Nothing tells the guest.
    public func deleteMemslot(_ vm: VirtualMachine, slot: UInt16) throws(MachineError) {
        guard let i = vm.memslots.firstIndex(where: { $0.slot == slot }) else {
            throw .invalid("\(vm.name) has no memslot \(slot)")
        }
        let s = vm.memslots.remove(at: i)
        for page in (s.gpa >> 12)..<((s.gpa + s.bytes) >> 12) {
            vm.trackedFrames[page] = nil
            vm.swappedFrames[page] = nil
            try setNPT(vm, page: page, frame: nil)
        }
        for vcpu in vm.vcpus { vcpu.flushTLB() }
        platform.emit(.nptChange(NPTChange(vm: vm.id, op: .unmap, gpa: s.gpa, spa: 0, pages: s.bytes >> 12)),
                      cost: Platform.Cost.control)
        if vm.isSEV { platform.wbinvdAllCores() }
    }

    /// Whether `gpa` is in a page the host swapped out.
    func isSwappedOut(_ vm: VirtualMachine, gpa: UInt64) -> Bool { vm.swappedFrames[gpa >> 12] != nil }

    /// Brings a swapped-out page back into a fresh frame and maps it.
    private func swapIn(_ vm: VirtualMachine, page: UInt64) throws(MachineError) {
        guard let frame = vm.swappedFrames.removeValue(forKey: page) else { return }
        let new = try copyToFreshFrame(vm, page: page, from: frame << 12)
        try setNPT(vm, page: page, frame: new >> 12)
        for v in vm.vcpus { v.flushTLB() }
        platform.emit(.nptChange(NPTChange(vm: vm.id, op: .map, gpa: page << 12, spa: platform.traced(new), pages: 1)),
                      cost: Platform.Cost.control)
    }

    /// #VMEXIT(NPF) on a swapped-out page. Without async PF the vCPU waits while KVM swaps the page in.
    /// With it (MSR_KVM_ASYNC_PF_EN, SEND_ALWAYS since the guest runs kernel code), KVM does as Linux 4.x
    /// does: it writes KVM_PV_REASON_PAGE_NOT_PRESENT (1) into the guest's `apf_reason`, with no key, and
    /// injects #PF with a token in CR2, so the guest can run something else; when the page is in, it
    /// writes KVM_PV_REASON_PAGE_READY (2) and injects #PF with the same token. The guest reads the
    /// reason through its own mapping: the area must be decrypted (`DEFINE_PER_CPU_DECRYPTED`).
    func handleSwappedOutPage(_ vcpu: VCPU, gpa: UInt64) throws(MachineError) {
        let vm = vcpu.vm
        let page = gpa >> 12
        guard vm.swappedFrames[page] != nil else { return }
        reportExit(vcpu, code: VMExit.npf, info1: 0x1_0000_0004, info2: gpa)
        guard let area = vcpu.asyncPFGPA, vcpu.asyncPFSendAlways else {
            try swapIn(vm, page: page)
            enter(vcpu)
            return
        }
        let token = vcpu.asyncPFID << 12 | UInt64(vcpu.index)
        vcpu.asyncPFID += 1
        let pageFault = VMRun.exception(vector: 14, errorCode: 0)
        let kernel = GuestKernel(vcpu: vcpu)
        try write(vm, gpa: area, bytes: [1, 0, 0, 0])
        enter(vcpu, injecting: pageFault, cr2: token)
        try kernel.asyncPageFault(reasonAt: area, token: token, expected: Self.asyncPFPageNotPresent)
        try swapIn(vm, page: page)
        // The guest ran something else meanwhile; the host's wake-up interrupt takes the vCPU out to deliver.
        reportExit(vcpu, code: VMExit.interrupt, info1: 0, info2: 0)
        try write(vm, gpa: area, bytes: [2, 0, 0, 0])
        enter(vcpu, injecting: pageFault, cr2: token)
        try kernel.asyncPageFault(reasonAt: area, token: token, expected: Self.asyncPFPageReady)
    }

    /// The reasons KVM writes into `kvm_vcpu_pv_apf_data.reason`.
    static let asyncPFPageNotPresent: UInt64 = 1, asyncPFPageReady: UInt64 = 2

    /// Flushes the guest's cache lines of page `gpa` with VM_PAGE_FLUSH (the guest's ASID): the way the
    /// hypervisor gets one page of a guest's dirty lines to memory without a WBINVD.
    public func flushGuestPage(_ vm: VirtualMachine, gpa: UInt64) throws(MachineError) {
        guard vm.isSEV else { throw .invalid("\(vm.name) is not an SEV guest: VM_PAGE_FLUSH takes a guest ASID") }
        platform.vmPageFlush(try vm.translate(gpa & ~0xFFF), asid: vm.asid)
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
        for (offset, size) in Platform.granules(start: gpa, count: length) {
            let g = gpa + UInt64(offset)
            let v = try platform.read(actor: .hypervisor, vm: vm.id, asid: 0, kind: .read, gva: 0, gpa: g,
                                     spa: try vm.translate(g), size: size, cbit: false, reason: .host, key: nil)
            Platform.store(v, into: &out, at: offset, size: size)
        }
        return out
    }

    /// The hypervisor writes guest memory by guest physical address, with no key.
    public func write(_ vm: VirtualMachine, gpa: UInt64, bytes: [UInt8]) throws(MachineError) {
        for (offset, size) in Platform.granules(start: gpa, count: bytes.count) {
            let g = gpa + UInt64(offset)
            try platform.write(actor: .hypervisor, vm: vm.id, asid: 0, kind: .write, gva: 0, gpa: g,
                              spa: try vm.translate(g), size: size, value: Platform.value(bytes, at: offset, size: size),
                              cbit: false, reason: .host, key: nil)
        }
    }

    /// Runs vCPU `index` of `vm` until it halts (at most `stepLimit` instructions).
    ///
    /// - Parameters:
    ///   - asid: the ASID to put in the VMCB instead of the VM's own (what a malicious hypervisor does).
    ///   - survivingCrash: when the guest faults (a page fault or an invalid instruction, as a guest
    ///     running under the wrong key does), report a SHUTDOWN exit and return instead of throwing.
    /// - Returns: false when the guest crashed.
    @discardableResult
    public func run(_ vm: VirtualMachine, vcpu index: Int = 0, asid: UInt16? = nil, survivingCrash: Bool = false,
                    stepLimit: UInt64 = 500_000_000) throws(MachineError) -> Bool {
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
            try vcpu.run(stepLimit: stepLimit)
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
    public func schedule(_ vms: [VirtualMachine], quantum: Int, stepLimit: UInt64 = 500_000_000, actions: Int = 0,
                         perform: (Int) throws(MachineError) -> Void = { _ in }) throws(MachineError) {
        for vm in vms { try vm.platform.kvm.prepareToRun(vm) }
        var runnable = vms.flatMap(\.vcpus)
        for v in runnable { v.wake() }
        var steps: UInt64 = 0
        var nextAction = 0
        while !runnable.isEmpty || nextAction < actions {
            // The next action (a device or the hypervisor) competes for the CPU like one more vCPU.
            let choices = runnable.count + (nextAction < actions ? 1 : 0)
            let pick = Int(platform.machine.rng.next() % UInt64(choices))
            if pick == runnable.count {
                try perform(nextAction)
                nextAction += 1
                continue
            }
            let slice = 1 + Int(platform.machine.rng.next() % UInt64(max(1, quantum)))
            let vcpu = runnable[pick]
            if try vcpu.runSlice(slice) { runnable.remove(at: pick) }
            steps += UInt64(slice)
            guard steps < stepLimit else { throw .stepLimit(vm: vcpu.vm.name, limit: stepLimit) }
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
        for (offset, size) in Platform.granules(start: gpa, count: bytes.count) {
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
