import TraceFormat

/// The hypervisor's side of guest memory: the nested page table in host memory and what a KVM host
/// does to it — unmapping pages to watch the guest, remapping them, pinning (REG_REGION), migrating and
/// swapping pages, deleting memslots — and the nested page faults the guest takes as a result.
extension KVM {
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

    func hostEntry(_ spa: UInt64, _ value: UInt64) throws(MachineError) {
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
        reportNestedPageFault(vcpu, gpa: gpa, errorCode: 1 << 2)  // not present; nested walks are user accesses
        try setNPT(vm, page: page, frame: frame)
        for v in vm.vcpus { v.flushTLB() }
        platform.emit(.nptChange(NPTChange(vm: vm.id, op: .map, gpa: page << 12, spa: platform.traced(frame << 12), pages: 1)),
                      cost: Platform.Cost.control)
        try enter(vcpu)
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
        // The MMU notifier tells KVM first; for an SEV guest it writes back and invalidates every cache
        // (`sev_guest_memory_reclaimed`), so the copy takes what the guest last wrote.
        if vm.isSEV { platform.wbinvdAllCores() }
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
        // As for a migration: the MMU notifier's reclaim runs WBINVD on every CPU for an SEV guest.
        if vm.isSEV { platform.wbinvdAllCores() }
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
        reportNestedPageFault(vcpu, gpa: gpa, errorCode: 1 << 2)
        guard let area = vcpu.asyncPFGPA, vcpu.asyncPFSendAlways else {
            try swapIn(vm, page: page)
            try enter(vcpu)
            return
        }
        let token = vcpu.asyncPFID << 12 | UInt64(vcpu.index)
        vcpu.asyncPFID += 1
        let pageFault = VMRun.exception(vector: 14, errorCode: 0)
        let kernel = GuestKernel(vcpu: vcpu)
        try write(vm, gpa: area, bytes: [1, 0, 0, 0])
        try enter(vcpu, injecting: pageFault, cr2: token)
        try kernel.asyncPageFault(reasonAt: area, token: token, expected: Self.asyncPFPageNotPresent)
        try swapIn(vm, page: page)
        // The guest ran something else meanwhile; the host's wake-up interrupt takes the vCPU out to deliver.
        reportExit(vcpu, code: VMExit.interrupt, info1: 0, info2: 0)
        try write(vm, gpa: area, bytes: [2, 0, 0, 0])
        try enter(vcpu, injecting: pageFault, cr2: token)
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
}
