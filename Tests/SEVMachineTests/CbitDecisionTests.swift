import TraceFormat
import Testing
@testable import SEVMachine

/// The C-bit rules of SEV hardware, as the events show them.
struct CbitDecisionTests {
    static let program = [
        Instruction(.movImmediate, a: 1, immediate: 0x200000),
        Instruction(.movImmediate, a: 2, immediate: 0x5A5A),
        Instruction(.store, a: 1, b: 2, width: 8),          // into the shared page
        Instruction(.movImmediate, a: 1, immediate: 0x300000),
        Instruction(.store, a: 1, b: 2, width: 8),          // into a private page
        Instruction(.halt),
    ]

    @Test("every access of a running SEV guest carries the decision the hardware makes, in long mode and with PAE",
          arguments: [PagingMode.long, .pae])
    func decisions(paging: PagingMode) throws {
        let pae = paging == .pae
        let f = try MachineFixture(Self.program, shared: [(0x200000, 1)], paging: paging)
        try f.platform.kvm.run(f.vm)
        let guest = f.accesses.filter { if case .vcpu = $0.actor { $0.kind != .nestedWalk } else { false } }
        // Early boot: paging off, every access forced private.
        let boot = guest.prefix { $0.reason == .forcedNonPaged }
        #expect(boot.count > 1000)
        #expect(boot.allSatisfy { $0.cbit && $0.kind == .write })
        // Instruction fetches and page-table walks are private whatever the PTE says.
        let fetches = guest.filter { $0.kind == .fetch }
        #expect(fetches.count == Self.program.count)
        #expect(fetches.allSatisfy { $0.cbit && $0.reason == .forcedFetch })
        let walks = guest.filter { $0.kind == .pageWalk }
        #expect(!walks.isEmpty && walks.allSatisfy { $0.cbit && $0.reason == .forcedPageWalk })
        #expect(walks.count % (pae ? 3 : 4) == 0, "PAE walks three levels, long mode four")
        let modes = f.sink.events.compactMap { if case .vcpuMode(let m) = $0.body { m.mode } else { nil } }
        #expect(modes.last == (pae ? .pae : .long))
        // Data accesses follow the PTE.
        let stores = guest.filter { $0.kind == .write && $0.register == 2 }
        #expect(stores.count == 2)
        #expect(stores[0].gpa == 0x200000 && !stores[0].cbit && stores[0].reason == .guestPTE)
        #expect(stores[1].gpa == 0x300000 && stores[1].cbit && stores[1].reason == .guestPTE)
        // And DRAM agrees: shared plaintext, private ciphertext.
        let shared = try f.platform.memory.rawBytes(at: try f.vm.translate(0x200000), count: 8)
        let priv = try f.platform.memory.rawBytes(at: try f.vm.translate(0x300000), count: 8)
        #expect(shared == [0x5A, 0x5A, 0, 0, 0, 0, 0, 0])
        #expect(priv != shared)
    }

    @Test("the nested walk reads the hypervisor's table in host memory, keyless, four levels, once per guest page")
    func nestedWalk() throws {
        let f = try MachineFixture([Instruction(.halt)])
        try f.platform.kvm.run(f.vm)
        let nested = f.accesses.filter { $0.kind == .nestedWalk }
        #expect(!nested.isEmpty && nested.allSatisfy { !$0.cbit && $0.reason == .host && $0.asid == 0 })
        #expect(nested.count % 4 == 0)
        let pages = Set(nested.map { $0.gpa >> 12 })
        #expect(pages.count * 4 == nested.count, "the nested TLB caches each guest page's translation")
        #expect(nested.first?.spa == f.platform.traced(f.vm.nptRoot) + 0, "the walk starts at the table's root")
    }

    @Test("a fetch from a page mapped C=0 is still a private fetch")
    func fetchFromSharedPage() throws {
        let f = try MachineFixture([Instruction(.halt)], shared: [(0x100000, 1)])
        try f.platform.kvm.run(f.vm)
        let fetch = try #require(f.accesses.first { $0.kind == .fetch })
        #expect(fetch.cbit && fetch.reason == .forcedFetch)
    }

    @Test("set_memory_decrypted flips the PTE, records the change, and does not convert the contents")
    func setMemoryDecrypted() throws {
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 1, immediate: 0x300000),
            Instruction(.movImmediate, a: 2, immediate: 0x1122_3344),
            Instruction(.store, a: 1, b: 2, width: 8),
            Instruction(.setMemoryDecrypted, a: 1, immediate: 1),
            Instruction(.load, a: 3, b: 1, width: 8),
            Instruction(.halt),
        ])
        try f.platform.kvm.run(f.vm)
        let change = try #require(f.sink.events.compactMap { if case .cbitChange(let c) = $0.body { c } else { nil } }.first)
        #expect(change.gva == 0x300000 && change.old && !change.new)
        let load = try #require(f.accesses.last { $0.kind == .read && $0.register == 3 })
        #expect(!load.cbit)
        #expect(load.value != 0x1122_3344, "the page still holds ciphertext; read through C=0 it is garbage")
        #expect(f.vm.vcpus[0].registers[3] == load.value)
    }

    @Test("an address bit the memory-encryption reduction took is reserved: the walk faults; one below it is an address",
          arguments: [(44, true), (42, false)])
    func reservedAddressBits(bit: UInt64, faults: Bool) throws {
        // The PTE of 0x300000 in the identity map of a 4 MiB guest: second page table, entry 0x100.
        let pte: UInt64 = 0x3FF800
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 1, immediate: pte),
            Instruction(.load, a: 2, b: 1, width: 8),
            Instruction(.movImmediate, a: 3, immediate: 1 << bit),
            Instruction(.or, a: 2, b: 3),
            Instruction(.store, a: 1, b: 2, width: 8),
            Instruction(.movImmediate, a: 4, immediate: 0x300000),
            Instruction(.load, a: 5, b: 4, width: 8),
            Instruction(.halt),
        ])
        #expect(f.platform.config.reservedAddressBits & (1 << 44) != 0 && f.platform.config.reservedAddressBits & (1 << 47) == 0)
        if faults {
            #expect(throws: MachineError.guestPageFault(vm: "guest", vcpu: 0, gva: 0x300000, rip: 0x100060)) {
                try f.platform.kvm.run(f.vm)
            }
        } else {
            // A legal address beyond every memslot: unassigned memory, emulated as MMIO.
            try f.platform.kvm.run(f.vm)
            #expect(f.exits.contains { $0.exitCode == VMExit.npf && $0.exitInfo2 == 1 << 42 | 0x300000 | f.platform.config.cbitMask })
        }
    }

    @Test("the TLB is tagged by ASID: run with another guest's ASID in the VMCB, the vCPU walks again under that ASID")
    func tlbTaggedByASID() throws {
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 1, immediate: 0x300000),
            Instruction(.load, a: 2, b: 1, width: 8),
            Instruction(.halt),
            Instruction(.load, a: 2, b: 1, width: 8),
            Instruction(.halt),
        ])
        let other = try f.platform.kvm.createVM(name: "other", memoryBytes: 2 << 20, policy: 1, sev: true)
        other.entry = 0x100000
        other.addImage(gpa: 0x100000, bytes: Instruction(.halt).encoded)
        var none: GuestOwner?
        try f.platform.vmm.launch(other, owner: &none)
        try f.platform.kvm.run(f.vm)
        let before = f.accesses.count
        // Its own translation of 0x300000 is cached; under ASID 2 it must not be used.
        _ = try f.platform.kvm.run(f.vm, asid: other.asid, survivingCrash: true)
        let walks = f.accesses[before...].filter { $0.kind == .pageWalk }
        #expect(!walks.isEmpty && walks.allSatisfy { $0.asid == other.asid }, "a fresh walk, with the other guest's key")
    }

    @Test("set_memory_decrypted tells KVM with KVM_HC_MAP_GPA_RANGE; the caller's registers survive the hypercall")
    func encryptionStatusHypercall() throws {
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 0, immediate: 0xAAAA),
            Instruction(.movImmediate, a: 1, immediate: 0x300000),
            Instruction(.movImmediate, a: 2, immediate: 0xCCCC),
            Instruction(.movImmediate, a: 3, immediate: 0xDDDD),
            Instruction(.setMemoryDecrypted, a: 1, immediate: 2),
            Instruction(.halt),
        ])
        #expect(!f.vm.isShared(gpa: 0x300000))
        try f.platform.kvm.run(f.vm)
        let call = try #require(f.exits.first { $0.exitCode == VMExit.vmmcall })
        #expect(Array(call.registers[0...3]) == [KVM.hypercallMapGPARange, 2, 0, 0x300000],
                "RAX = 12, RCX = pages, RDX = attributes (decrypted), RBX = gpa")
        #expect(f.vm.isShared(gpa: 0x300000) && f.vm.isShared(gpa: 0x301000) && !f.vm.isShared(gpa: 0x302000),
                "KVM knows what the hypercall told it")
        #expect(Array(f.vm.vcpus[0].registers[0...3]) == [0xAAAA, 0x300000, 0xCCCC, 0xDDDD])
    }

    @Test("a guest that was not launched cannot run: its ASID has no key")
    func noKeyNoRun() throws {
        let f = try MachineFixture([Instruction(.halt)], launch: false)
        #expect(throws: MachineError.noKey(vm: "guest", asid: 1)) { try f.platform.kvm.run(f.vm) }
    }

    @Test("devices and the hypervisor get ciphertext from private pages")
    func keylessReaders() throws {
        let f = try MachineFixture([Instruction(.halt)])
        try f.platform.kvm.run(f.vm)
        let code = try f.platform.kvm.read(f.vm, gpa: 0x100000, length: 16)
        #expect(code != Instruction(.halt).encoded)
        let nic = f.platform.addDevice(name: "nic0")
        #expect(try nic.dmaRead(vm: f.vm, gpa: 0x100000, length: 16) == code)
    }
}

/// A guest kernel that maps its memory with 2 MiB pages.
struct LargePageTests {
    @Test("2 MiB pages: a short boot, and set_memory_decrypted splits the mapping so only its page changes")
    func splitOnDecrypt() throws {
        let sink = CollectingSink()
        let machine = Machine(config: PlatformConfig(), seed: 1, sink: sink)
        let platform = machine.primary
        let vm = try platform.kvm.createVM(name: "g", memoryBytes: 4 << 20, policy: 1, sev: true, largePages: true)
        vm.entry = 0x100000
        vm.addImage(gpa: 0x100000, bytes: [
            Instruction(.movImmediate, a: 1, immediate: 0x201000),
            Instruction(.setMemoryDecrypted, a: 1, immediate: 1),
            Instruction(.movImmediate, a: 2, immediate: 0x42),
            Instruction(.store, a: 1, b: 2, width: 8),                 // the decrypted page
            Instruction(.store, a: 1, b: 2, width: 8, immediate: 0x1000),  // its neighbour, same 2 MiB
            Instruction(.halt),
        ].flatMap(\.encoded))
        var none: GuestOwner?
        try platform.vmm.launch(vm, owner: &none)
        try platform.kvm.run(vm)
        let writes = sink.events.compactMap { if case .memoryAccess(let a) = $0.body, a.register == 2 { a } else { nil } }
        #expect(writes.count == 2)
        #expect(!writes[0].cbit && writes[1].cbit, "only the decrypted 4 KiB page is C=0")
        let boot = sink.events.filter { if case .memoryAccess(let a) = $0.body { a.reason == .forcedNonPaged && a.value != 0 } else { false } }
        #expect(boot.count < 10, "PML4, PDPT and two 2 MiB entries (besides the zeroes that clear the directories)")
        let walks = sink.events.compactMap { if case .memoryAccess(let a) = $0.body, a.kind == .pageWalk, a.gva == 0x100000 { a } else { nil } }
        #expect(walks.count == 3, "a 2 MiB page ends the walk at the page directory")
    }
}

/// PAE paging: three levels over 32-bit addresses, with the C-bit honoured as in long mode.
struct PAETests {
    @Test("a PAE guest's set_memory_decrypted and MMIO work as in long mode; 2 MiB pages split the same way",
          arguments: [false, true])
    func paeServices(largePages: Bool) throws {
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 1, immediate: 0x200000),
            Instruction(.setMemoryDecrypted, a: 1, immediate: 1),
            Instruction(.movImmediate, a: 2, immediate: 0x77),
            Instruction(.store, a: 1, b: 2, width: 8),
            Instruction(.movImmediate, a: 3, immediate: 0xFEB0_0000),
            Instruction(.store, a: 3, b: 2, width: 4),
            Instruction(.halt),
        ], mmio: 0xFEB0_0000, paging: .pae, largePages: largePages)
        try f.platform.kvm.run(f.vm)
        let store = try #require(f.accesses.last { $0.kind == .write && $0.register == 2 && $0.gpa == 0x200000 })
        #expect(!store.cbit && store.reason == .guestPTE)
        #expect(try f.platform.memory.rawBytes(at: try f.vm.translate(0x200000), count: 1) == [0x77])
        let exits = f.exits
        #expect(exits.contains { $0.exitCode == VMExit.npf && $0.exitInfo2 == 0xFEB0_0000 })
    }

    @Test("a PAE guest cannot reach addresses above 4 GiB: the walk faults")
    func paeLimit() throws {
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 1, immediate: 0x1_0020_0000),
            Instruction(.load, a: 2, b: 1, width: 8),
            Instruction(.halt),
        ], paging: .pae)
        #expect(throws: MachineError.self) { try f.platform.kvm.run(f.vm) }
    }
}

/// 32-bit paging without PAE: two levels of 4-byte entries, which have no room for the C-bit, so the
/// hardware forces every access of an SEV guest private.
struct LegacyPagingTests {
    static let program = [
        Instruction(.movImmediate, a: 1, immediate: 0x200000),
        Instruction(.movImmediate, a: 2, immediate: 0x5A5A),
        Instruction(.store, a: 1, b: 2, width: 8),
        Instruction(.load, a: 3, b: 1, width: 8),
        Instruction(.halt),
    ]

    @Test("every access is private: data forced, walks two levels of 4-byte entries (one with 4 MiB pages)",
          arguments: [false, true])
    func forcedPrivate(largePages: Bool) throws {
        let f = try MachineFixture(Self.program, paging: .legacy, largePages: largePages)
        try f.platform.kvm.run(f.vm)
        let modes = f.sink.events.compactMap { if case .vcpuMode(let m) = $0.body { m.mode } else { nil } }
        #expect(modes == [.protected, .legacy])
        let guest = f.accesses.filter { if case .vcpu = $0.actor { $0.kind != .nestedWalk } else { false } }
        let boot = guest.prefix { $0.reason == .forcedNonPaged }.filter { $0.value != 0 }
        #expect(boot.allSatisfy { $0.size == 4 }, "32-bit page-table entries (after the zeroes that clear the directory)")
        #expect(boot.count == (largePages ? 1 : 1 + 1024), "one directory entry per 4 MiB, one table entry per page")
        let walks = guest.filter { $0.kind == .pageWalk }
        #expect(!walks.isEmpty && walks.allSatisfy { $0.cbit && $0.size == 4 && $0.reason == .forcedPageWalk })
        let fetchWalks = walks.filter { $0.gva == 0x100000 }
        #expect(fetchWalks.count == (largePages ? 1 : 2))
        let data = guest.filter { $0.register == 2 || $0.register == 3 }
        #expect(data.count == 2 && data.allSatisfy { $0.cbit && $0.reason == .forcedLegacyPaging })
        #expect(f.vm.vcpus[0].registers[3] == 0x5A5A, "the guest reads back what it wrote")
        let dram = try f.platform.memory.rawBytes(at: try f.vm.translate(0x200000), count: 8)
        #expect(dram != [0x5A, 0x5A, 0, 0, 0, 0, 0, 0], "DRAM holds ciphertext")
    }

    @Test("an SEV guest without PAE cannot map memory decrypted")
    func noDecryptedMappings() throws {
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 1, immediate: 0x200000),
            Instruction(.setMemoryDecrypted, a: 1, immediate: 1),
            Instruction(.halt),
        ], paging: .legacy)
        #expect(throws: MachineError.invalid("guest: a 32-bit kernel without PAE cannot map memory decrypted (its page-table entries have no C-bit)")) {
            try f.platform.kvm.run(f.vm)
        }
    }

    @Test("MMIO through a 4 MiB mapping still exits to the hypervisor, with the GPA")
    func mmio() throws {
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 1, immediate: 0xFEC0_0000),
            Instruction(.movImmediate, a: 2, immediate: 0x99),
            Instruction(.store, a: 1, b: 2, width: 4),
            Instruction(.halt),
        ], mmio: 0xFEC0_0000, paging: .legacy)
        try f.platform.kvm.run(f.vm)
        // 32-bit paging has no C-bit: the hardware forces it, and EXITINFO2 reports it.
        #expect(f.exits.contains { $0.exitCode == VMExit.npf && $0.exitInfo2 == 0xFEC0_0000 | f.platform.config.cbitMask })
    }
}
