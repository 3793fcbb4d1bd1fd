import TraceFormat

/// The guest-kernel side of SEV, as the Linux SEV series implements it: early boot builds an identity
/// map with the C-bit (`sme_me_mask`) set while paging is off, and `set_memory_decrypted` /
/// `set_memory_encrypted` flip the C-bit of pages at run time. Its memory accesses are the vCPU's own.
struct GuestKernel {
    let vcpu: VCPU

    /// The page-size bit of a page-directory entry.
    static let pageSize: UInt64 = 1 << 7
    /// Page-table pages kept free to split 2 MiB mappings.
    static let splitPool: UInt64 = 8

    /// Page-table pages needed to identity-map `memoryBytes`: one PML4 (unused with PAE), one PDPT, the
    /// page directories, and one page table per 2 MiB with 4 KiB pages, or a pool for splitting with 2 MiB
    /// pages. 32-bit paging has one page directory and one page table per 4 MiB (or the pool with 4 MiB pages).
    static func identityMapPages(memoryBytes: UInt64, largePages: Bool, paging: PagingMode) -> UInt64 {
        if paging == .legacy {
            return 1 + (largePages ? splitPool : (memoryBytes + (4 << 20) - 1) >> 22)
        }
        let gib = directories(memoryBytes: memoryBytes, paging: paging)
        let tables = (memoryBytes + (2 << 20) - 1) >> 21
        return 2 + gib + (largePages ? splitPool : tables)
    }

    /// Page directories of the identity map: one per GiB of memory in long mode; with PAE all four
    /// (the page-directory-pointer table has four entries and no 1 GiB pages, so an MMIO page anywhere
    /// below 4 GiB needs its directory).
    static func directories(memoryBytes: UInt64, paging: PagingMode) -> UInt64 {
        paging == .pae ? 4 : (memoryBytes + (1 << 30) - 1) >> 30
    }

    /// Splits the large mapping whose page-directory entry is at `pdeAddress` into page-table entries with
    /// the same attributes (C-bit included), in a page from the pool; returns the new entry. A 2 MiB page
    /// becomes 512 8-byte entries; with 32-bit paging a 4 MiB page becomes 1024 4-byte entries.
    func splitLargePage(entryAt pdeAddress: UInt64, entry: UInt64) throws(MachineError) -> UInt64 {
        let vm = vcpu.vm
        guard vm.splitPagesUsed < Self.splitPool else {
            throw .invalid("\(vm.name): no page-table page left to split a 2 MiB mapping")
        }
        let cbitMask = vm.smeMeMask
        let table = vm.pageTableBase + (vm.pageTablePages - Self.splitPool + vm.splitPagesUsed) * 4096
        vm.splitPagesUsed += 1
        let legacy = vm.paging == .legacy
        let entrySize: UInt64 = legacy ? 4 : 8
        let base = entry & (legacy ? 0xFFC0_0000 : 0x000F_FFFF_FFE0_0000 & ~cbitMask)
        let attributes = entry & ((legacy ? 0 : cbitMask) | 0x3)
        for i in 0..<(4096 / entrySize) {
            try vcpu.store(gva: table + i * entrySize, size: Int(entrySize), value: (base + i * 4096) | attributes,
                           register: MemoryAccess.noRegister)
        }
        let pde = table | (legacy ? 0 : cbitMask) | 0x3
        try vcpu.store(gva: pdeAddress, size: Int(entrySize), value: pde, register: MemoryAccess.noRegister)
        vcpu.flushTLB()
        return pde
    }

    /// Early boot: in protected mode without paging (every access forced private) write the identity
    /// map, load CR3 and enter long mode, then decrypt the boot-time shared regions.
    func boot() throws(MachineError) {
        let vm = vcpu.vm
        vcpu.setMode(.protected)
        vm.smeMeMask = try detectMemoryEncryption()
        if vm.paging == .legacy {
            try bootLegacyPaging()
            return
        }
        let pae = vm.paging == .pae
        let me = vm.smeMeMask
        let scratch = vm.kernelDataPage
        let base = vm.kernelDataPage + 4096
        let gib = Self.directories(memoryBytes: vm.memoryBytes, paging: vm.paging)
        let pml4 = base, pdpt = base + 4096, pd = base + 8192, pt = pd + gib * 4096
        let flags: UInt64 = 0x3  // present, writable
        // The directories have entries the map leaves unused: they must read as not present.
        try clear(from: pae ? pdpt : pml4, pages: (pae ? 1 : 2) + gib)
        if !pae {
            try vcpu.store(gva: pml4, size: 8, value: pdpt | me | flags, register: MemoryAccess.noRegister)
        }
        for g in 0..<gib {
            // PAE page-directory-pointer entries have no writable bit (bits 2:1 are reserved).
            try vcpu.store(gva: pdpt + g * 8, size: 8, value: (pd + g * 4096) | me | (pae ? 0x1 : flags),
                           register: MemoryAccess.noRegister)
        }
        let tables = (vm.memoryBytes + (2 << 20) - 1) >> 21
        if vm.largePages {
            for t in 0..<tables {
                try vcpu.store(gva: pd + t * 8, size: 8, value: t << 21 | me | flags | Self.pageSize,
                               register: MemoryAccess.noRegister)
            }
        } else {
            for t in 0..<tables {
                try vcpu.store(gva: pd + t * 8, size: 8, value: (pt + t * 4096) | me | flags, register: MemoryAccess.noRegister)
            }
            for page in 0..<(vm.memoryBytes >> 12) {
                try vcpu.store(gva: pt + page * 8, size: 8, value: page << 12 | me | flags, register: MemoryAccess.noRegister)
            }
        }
        if let mmio = vm.mmioGPA {
            // `ioremap`: device memory is never encrypted, so the kernel maps it decrypted (C=0), with one
            // large page: 2 MiB inside a GiB that has a page directory, 1 GiB beyond (long mode only).
            let g = mmio >> 30
            if g < gib {
                try vcpu.store(gva: pd + g * 4096 + ((mmio >> 21) & 0x1FF) * 8, size: 8,
                               value: mmio & ~0x1F_FFFF | flags | Self.pageSize, register: MemoryAccess.noRegister)
            } else {
                try vcpu.store(gva: pdpt + g * 8, size: 8, value: mmio & ~0x3FFF_FFFF | flags | Self.pageSize,
                               register: MemoryAccess.noRegister)
            }
        }
        // sev_verify_cbit, part one: a random value stored while paging is off, so certainly encrypted.
        let check = vm.verifyCbit && me != 0 ? Platform.value(vcpu.platform.randomBytes(8), at: 0, size: 8) : nil
        if let check { try vcpu.store(gva: scratch, size: 8, value: check, register: MemoryAccess.noRegister) }
        vcpu.cr3 = pae ? pdpt : pml4
        vcpu.setMode(vm.paging)
        if let check {
            // Part two: read back through the new page tables. If the bit CPUID named is not the one the
            // hardware uses, the mapping is not encrypted and the value comes back as garbage.
            let back = try vcpu.load(gva: scratch, size: 8, register: MemoryAccess.noRegister)
            guard back == check else {
                throw .guestStopped(vm: vm.name, reason: "sev_verify_cbit: the C-bit CPUID reported (bit \(me.trailingZeroBitCount)) does not encrypt")
            }
        }
        try decryptBootRegions()
    }

    /// `sme_enable`: CPUID 0x8000001F (intercepted: the hypervisor answers) says whether SEV is there
    /// and where the C-bit is; SEV_STATUS says whether it is on for this guest. The mask is only as
    /// honest as the hypervisor's answer. The registers are cleared again before the kernel goes on.
    private func detectMemoryEncryption() throws(MachineError) -> UInt64 {
        let kvm = vcpu.platform.kvm
        vcpu.registerOp(.loadImmediate, dst: 0, src: MemoryAccess.noRegister, result: 0x8000_001F)
        try kvm.handleExit(vcpu, Instruction(.cpuid))
        let eax = vcpu.registers[0], ebx = vcpu.registers[3]
        vcpu.registerOp(.loadImmediate, dst: 1, src: MemoryAccess.noRegister, result: 0xC001_0131)
        try kvm.handleExit(vcpu, Instruction(.rdmsr))
        let status = vcpu.registers[0]
        for r: UInt8 in 0...3 { vcpu.registerOp(.xor, dst: r, src: r, result: 0) }
        guard eax & 0x2 != 0, status & 0x1 != 0 else { return 0 }
        return 1 << (ebx & 0x3F)
    }

    /// Early boot of a 32-bit kernel without PAE: one page directory of 4-byte entries mapping 4 MiB
    /// each, through page tables or as 4 MiB pages. An entry has no C-bit, so every access stays
    /// private under SEV; the hardware forces it.
    private func bootLegacyPaging() throws(MachineError) {
        let vm = vcpu.vm
        let pd = vm.kernelDataPage + 4096, pt = pd + 4096
        let flags: UInt64 = 0x3  // present, writable
        try clear(from: pd, pages: 1)
        let directories = vm.memoryBytes >> 22
        for d in 0..<directories {
            let pde = vm.largePages ? d << 22 | flags | Self.pageSize : (pt + d * 4096) | flags
            try vcpu.store(gva: pd + d * 4, size: 4, value: pde, register: MemoryAccess.noRegister)
        }
        if !vm.largePages {
            for page in 0..<(vm.memoryBytes >> 12) {
                try vcpu.store(gva: pt + page * 4, size: 4, value: page << 12 | flags, register: MemoryAccess.noRegister)
            }
        }
        if let mmio = vm.mmioGPA {
            try vcpu.store(gva: pd + (mmio >> 22) * 4, size: 4, value: mmio & ~0x3F_FFFF | flags | Self.pageSize,
                           register: MemoryAccess.noRegister)
        }
        vcpu.cr3 = pd
        vcpu.setMode(.legacy)
        try decryptBootRegions()
    }

    /// Zeroes page-table pages (while paging is off, so the zeros are stored encrypted like the rest),
    /// as the kernel clears its early page tables before filling them.
    private func clear(from start: UInt64, pages: UInt64) throws(MachineError) {
        for offset in stride(from: UInt64(0), to: pages * 4096, by: 8) {
            try vcpu.store(gva: start + offset, size: 8, value: 0, register: MemoryAccess.noRegister)
        }
    }

    /// The regions the kernel maps decrypted early (kvmclock, per-CPU decrypted data, the SWIOTLB pool).
    private func decryptBootRegions() throws(MachineError) {
        for region in vcpu.vm.sharedAtBoot {
            try setMemoryEncryption(gva: region.gpa, pages: region.pages, encrypted: false)
        }
    }

    /// The SWIOTLB bounce (`swiotlb_bounce`): copy between a private buffer and a bounce slot in the
    /// decrypted pool, through the string-copy latch. Towards a device the kernel first declares the
    /// hand-over, so what lands in the slot is known to be meant for the outside.
    func swiotlbBounce(to dst: UInt64, from src: UInt64, length: UInt64, toDevice: Bool) throws(MachineError) {
        let platform = vcpu.platform
        if toDevice {
            let t = try vcpu.translate(dst)
            platform.emit(.handover(Handover(vm: vcpu.vm.id, vcpu: vcpu.index, gpa: t.gpa, spa: platform.traced(t.spa),
                                             length: length)), cost: Platform.Cost.control)
        }
        guard length <= vcpu.vm.memoryBytes else {
            throw .invalid("\(vcpu.vm.name): a SWIOTLB bounce of \(length) bytes is larger than the VM's memory")
        }
        for (offset, size) in try Platform.granules(start: dst, count: Int(length)) {
            try platform.countSteps()
            let v = try vcpu.load(gva: src &+ UInt64(offset), size: size, register: Instruction.copyLatch)
            try vcpu.store(gva: dst + UInt64(offset), size: size, value: v, register: Instruction.copyLatch)
        }
    }

    /// The async page fault handler (Linux 4.x `do_async_page_fault`): read and reset the reason KVM left
    /// in the per-CPU `apf_reason` (`kvm_read_and_reset_pf_reason`). PAGE_NOT_PRESENT parks the faulting
    /// task, PAGE_READY wakes it; any other value is taken for an ordinary page fault at CR2, the token,
    /// where nothing is mapped: the kernel oopses.
    func asyncPageFault(reasonAt area: UInt64, token: UInt64, expected: UInt64) throws(MachineError) {
        let reason = try vcpu.load(gva: area, size: 4, register: MemoryAccess.noRegister)
        try vcpu.store(gva: area, size: 4, value: 0, register: MemoryAccess.noRegister)
        guard reason == expected else {
            throw .guestPageFault(vm: vcpu.vm.name, vcpu: Int(vcpu.index), gva: token, rip: vcpu.rip)
        }
    }

    /// `set_memory_decrypted` / `set_memory_encrypted`: for each page, find its PTE, flush, rewrite the
    /// PTE with the C-bit changed, and invalidate the TLB entry. The page's contents are not converted:
    /// what was written under the old C-bit reads back as garbage under the new one.
    func setMemoryEncryption(gva: UInt64, pages: UInt64, encrypted: Bool, flush: Bool = true) throws(MachineError) {
        let platform = vcpu.platform
        let vm = vcpu.vm
        let cbitMask = vm.smeMeMask
        let start = gva & ~0xFFF
        // Without memory encryption the services do nothing (`cc_platform_has(CC_ATTR_MEM_ENCRYPT)`).
        guard vm.isSEV else { return }
        guard vcpu.mode.pteChoosesCbit else {
            // A 32-bit kernel without PAE has no C-bit to clear: it cannot share memory under SEV (Linux
            // builds AMD_MEM_ENCRYPT only for x86-64).
            throw .invalid("\(vm.name): a 32-bit kernel without PAE cannot map memory decrypted (its page-table entries have no C-bit)")
        }
        guard pages <= vm.memoryBytes >> 12 else {
            throw .invalid("\(vm.name): \(pages) pages are more than the VM's memory")
        }
        for i in 0..<pages {
            try platform.countSteps()
            let page = start &+ i * 4096
            let pte = try vcpu.pteAddress(of: page)
            let old = try vcpu.load(gva: pte, size: 8, register: MemoryAccess.noRegister)
            guard old & 1 != 0 else { throw .guestPageFault(vm: vm.name, vcpu: Int(vcpu.index), gva: page, rip: vcpu.rip) }
            let new = encrypted ? old | cbitMask : old & ~cbitMask
            if new != old {
                // cpa_flush: write the page's lines back under the key they were cached with, so no stale
                // line outlives the change (skipped only by a buggy guest).
                if flush {
                    let spa = try vm.translate(old & 0x000F_FFFF_FFFF_F000 & ~cbitMask)
                    platform.clflush(spa, count: 4096, keyID: old & cbitMask != 0 ? vcpu.asid : 0)
                }
                try vcpu.store(gva: pte, size: 8, value: new, register: MemoryAccess.noRegister)
                let gpa = old & 0x000F_FFFF_FFFF_F000 & ~cbitMask
                platform.emit(.cbitChange(CbitChange(vm: vm.id, vcpu: vcpu.index, gva: page, gpa: gpa,
                                                    spa: platform.traced(try vm.translate(gpa)), pteSPA: platform.traced(try vm.translate(pte)),
                                                    old: old & cbitMask != 0, new: new & cbitMask != 0)),
                             cost: Platform.Cost.control)
            }
            vcpu.invalidate(gva: page)
        }
        // Tell the hypervisor (it needs the page encryption status to migrate the guest).
        try notifyEncryptionStatus(gpa: start, pages: pages, encrypted: encrypted)
    }

    /// `kvm_sev_hypercall3(KVM_HC_MAP_GPA_RANGE, gpa, npages, attrs)`, as Linux (5.16 and later) reports
    /// a range whose encryption changed. The caller's RAX, RBX, RCX and RDX are kept in the kernel's
    /// save slots and put back after, so the exit shows the hypercall's arguments (and every other
    /// register as the caller left it) and the caller's registers come back as they were.
    func notifyEncryptionStatus(gpa: UInt64, pages: UInt64, encrypted: Bool) throws(MachineError) {
        let used: [UInt8] = [0, 3, 1, 2]
        for (i, r) in used.enumerated() {
            vcpu.registerOp(.move, dst: Instruction.kernelSave + UInt8(i), src: r, result: vcpu.registers[Int(r)])
        }
        let arguments = [KVM.hypercallMapGPARange, gpa, pages, encrypted ? KVM.mapGPARangeEncrypted : 0]
        for (r, value) in zip(used, arguments) {
            vcpu.registerOp(.loadImmediate, dst: r, src: MemoryAccess.noRegister, result: value)
        }
        try vcpu.platform.kvm.handleExit(vcpu, Instruction(.vmmcall))
        for (i, r) in used.enumerated() {
            let slot = Instruction.kernelSave + UInt8(i)
            vcpu.registerOp(.move, dst: r, src: slot, result: vcpu.registers[Int(slot)])
        }
    }
}
