import TraceFormat
import Testing
@testable import SEVMachine

/// VMRUN, #VMEXIT and the exits KVM handles.
struct ExitTests {
    @Test("every run starts with a VMRUN carrying the VM's ASID; HLT exits with the registers in the clear")
    func runAndHalt() throws {
        let f = try MachineFixture([Instruction(.movImmediate, a: 5, immediate: 0x1234), Instruction(.halt)])
        try f.platform.kvm.run(f.vm)
        let runs = f.sink.events.compactMap { if case .vmRun(let r) = $0.body { r } else { nil } }
        let vmcb = VMRun(vm: f.vm.id, vcpu: 0, asid: 1, nestedControl: VMRun.npEnable | VMRun.sevEnable,
                         ncr3: f.platform.traced(f.vm.nptRoot))
        #expect(runs == Array(repeating: vmcb, count: 3),
                "the first VMRUN, then one after each of early boot's CPUID and SEV_STATUS exits")
        #expect(f.bootExits.map(\.exitCode) == [VMExit.cpuid, VMExit.msr])
        let x = try #require(f.exits.last)
        #expect(x.exitCode == VMExit.hlt && x.registers.count == 16 && x.registers[5] == 0x1234)
    }

    @Test("OUT and IN exit with IOIO information; IN takes the hypervisor's value; the guest resumes after")
    func portIO() throws {
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 0, immediate: 0x41),
            Instruction(.out, a: 0, width: 1, immediate: 0x3f8),
            Instruction(.input, a: 0, width: 2, immediate: 0x60),
            Instruction(.halt),
        ])
        try f.platform.kvm.run(f.vm)
        let x = f.exits
        #expect(x.map(\.exitCode) == [VMExit.ioio, VMExit.ioio, VMExit.hlt])
        #expect(x[0].exitInfo1 == 0x3f8 << 16 | 1 << 4 && x[0].registers[0] == 0x41)
        #expect(x[1].exitInfo1 == 0x60 << 16 | 2 << 4 | 1)
        #expect(f.vm.vcpus[0].registers[0] == 0xFFFF)
        let runs = f.sink.events.filter { if case .vmRun = $0.body { true } else { false } }
        #expect(runs.count == 5, "one VMRUN to start and one after each handled exit (two of them early boot's)")
    }

    @Test("rep outsb is emulated by the hypervisor reading the guest's buffer without a key: ciphertext")
    func stringIO() throws {
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 6, immediate: 0x100000),
            Instruction(.movImmediate, a: 1, immediate: 16),
            Instruction(.outs, a: 6, c: 1, immediate: 0x3f8),
            Instruction(.halt),
        ])
        try f.platform.kvm.run(f.vm)
        let reads = f.accesses.filter { $0.actor == .hypervisor && $0.kind == .read && $0.gpa >= 0x100000 && $0.gpa < 0x100010 }
        #expect(reads.count == 2)
        let code = Instruction(.movImmediate, a: 6, immediate: 0x100000).encoded
        #expect(reads[0].value != Platform.value(code, at: 0, size: 8), "the hypervisor sees ciphertext, not the bytes")
        #expect(f.vm.vcpus[0].registers[6] == 0x100010 && f.vm.vcpus[0].registers[1] == 0)
    }

    @Test("early boot learns sme_me_mask from the hypervisor's CPUID answer and SEV_STATUS, then clears the registers",
          arguments: [47, 51])
    func bootDetection(cbit: Int) throws {
        var config = PlatformConfig()
        config.cbitPosition = cbit
        let f = try MachineFixture([Instruction(.halt)], config: config)
        try f.platform.kvm.run(f.vm)
        #expect(f.vm.smeMeMask == 1 << UInt64(cbit))
        let boot = f.bootExits
        #expect(boot.map(\.exitCode) == [VMExit.cpuid, VMExit.msr])
        #expect(boot[0].registers[0] == 0x8000_001F && boot[1].registers[1] == 0xC001_0131, "what the hypervisor sees asked")
        let pml4e = try #require(f.accesses.first { $0.reason == .forcedNonPaged && $0.kind == .write && $0.value != 0 })
        #expect(pml4e.value & (1 << UInt64(cbit)) != 0, "the identity map carries the C-bit CPUID named")
        #expect(f.vm.vcpus[0].registers[0...3].allSatisfy { $0 == 0 })
    }

    @Test("a hypervisor that names another C-bit: the trusting guest maps everything C=0; sev_verify_cbit stops it",
          arguments: [false, true])
    func lyingCPUID(verify: Bool) throws {
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 1, immediate: 0x300000),
            Instruction(.movImmediate, a: 2, immediate: 0x77),
            Instruction(.store, a: 1, b: 2, width: 8),
            Instruction(.halt),
        ], verifyCbit: verify)
        f.vm.cpuidCbitPosition = 55
        if verify {
            #expect(throws: MachineError.guestStopped(vm: "guest", reason: "sev_verify_cbit: the C-bit CPUID reported (bit 55) does not encrypt")) {
                try f.platform.kvm.run(f.vm)
            }
        } else {
            try f.platform.kvm.run(f.vm)
            #expect(f.vm.smeMeMask == 1 << 55)
            #expect(try f.platform.memory.rawBytes(at: try f.vm.translate(0x300000), count: 1) == [0x77], "plaintext in DRAM")
        }
    }

    @Test("sev_verify_cbit passes when CPUID tells the truth")
    func honestCPUIDVerifies() throws {
        let f = try MachineFixture([Instruction(.halt)], verifyCbit: true)
        try f.platform.kvm.run(f.vm)
        #expect(f.vm.vcpus[0].isHalted && f.vm.smeMeMask == 1 << 47)
    }

    @Test("a guest without SEV learns a zero mask")
    func bootDetectionWithoutSEV() throws {
        let machine = Machine(config: PlatformConfig(), seed: 1, sink: CollectingSink())
        let vm = try machine.primary.kvm.createVM(name: "plain", memoryBytes: 2 << 20, policy: 0, sev: false)
        vm.entry = 0x100000
        vm.addImage(gpa: 0x100000, bytes: Instruction(.halt).encoded)
        try machine.primary.kvm.run(vm)
        #expect(vm.smeMeMask == 0)
    }

    @Test("a VM without SEV runs with an ASID above the SEV range and SEV_ENABLE clear; an SEV guest with both set")
    func vmcbOfPlainAndSEVGuests() throws {
        let sink = CollectingSink()
        let config = PlatformConfig()
        let machine = Machine(config: config, seed: 1, sink: sink)
        let kvm = machine.primary.kvm
        let plain = try kvm.createVM(name: "plain", memoryBytes: 2 << 20, policy: 0, sev: false)
        let other = try kvm.createVM(name: "other", memoryBytes: 2 << 20, policy: 0, sev: false)
        #expect(plain.asid == config.maxSEVASID + 1 && other.asid == config.maxSEVASID + 2, "KVM: min_asid = max_sev_asid + 1")
        #expect(!plain.isSEV)
        plain.entry = 0x100000
        plain.addImage(gpa: 0x100000, bytes: Instruction(.halt).encoded)
        try kvm.run(plain)
        let runs = sink.events.compactMap { if case .vmRun(let r) = $0.body { r } else { nil } }
        #expect(!runs.isEmpty && runs.allSatisfy { $0.asid == plain.asid && $0.nestedControl == VMRun.npEnable && !$0.sevEnabled })
        #expect(runs.allSatisfy { $0.ncr3 == machine.primary.traced(plain.nptRoot) && $0.ncr3 != 0 })
        let created = sink.events.compactMap { if case .vmCreated(let v) = $0.body { v } else { nil } }
        #expect(created.map(\.sev) == [false, false])
    }

    @Test("CPUID 0x8000001F and SEV_STATUS tell the guest it runs under SEV")
    func detection() throws {
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 0, immediate: 0x8000_001F),
            Instruction(.cpuid),
            Instruction(.move, a: 8, b: 0),
            Instruction(.move, a: 9, b: 3),
            Instruction(.move, a: 10, b: 1),
            Instruction(.move, a: 11, b: 2),
            Instruction(.movImmediate, a: 1, immediate: 0xC001_0131),
            Instruction(.rdmsr),
            Instruction(.halt),
        ])
        try f.platform.kvm.run(f.vm)
        let r = f.vm.vcpus[0].registers
        #expect(r[8] == 0x2, "CPUID EAX: SEV (bit 1) and, as QEMU fills the leaf, not SME")
        #expect(r[10] == 0 && r[11] == 0, "the ASID counts are the host's business")
        #expect(r[9] & 0x3F == 47 && (r[9] >> 6) & 0x3F == 5, "EBX: C-bit position and PA reduction")
        #expect(r[0] == 1, "SEV_STATUS bit 0")
        #expect(f.exits.map(\.exitCode) == [VMExit.cpuid, VMExit.msr, VMExit.hlt])
    }

    @Test("KVM_HC_MAP_GPA_RANGE records the guest's page encryption status")
    func mapGPARange() throws {
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 0, immediate: KVM.hypercallMapGPARange),
            Instruction(.movImmediate, a: 3, immediate: 0x300000),
            Instruction(.movImmediate, a: 1, immediate: 2),
            Instruction(.movImmediate, a: 2, immediate: 0),
            Instruction(.vmmcall),
            Instruction(.halt),
        ])
        try f.platform.kvm.run(f.vm)
        #expect(f.vm.isShared(gpa: 0x300000) && f.vm.isShared(gpa: 0x301000) && !f.vm.isShared(gpa: 0x302000))
        #expect(f.vm.vcpus[0].registers[0] == 0)
    }
}

/// KVM's SEV ASID allocator.
struct ASIDAllocatorTests {
    @Test("a destroyed guest's ASID is reclaimed only with WBINVD and DF_FLUSH, when no other ASID is free")
    func reclaim() throws {
        var config = PlatformConfig()
        config.maxSEVASID = 2
        let sink = CollectingSink()
        let machine = Machine(config: config, seed: 4, sink: sink)
        let kvm = machine.primary.kvm
        func launched(_ name: String) throws -> VirtualMachine {
            let vm = try kvm.createVM(name: name, memoryBytes: 2 << 20, policy: 1, sev: true)
            vm.entry = 0x100000
            vm.addImage(gpa: 0x100000, bytes: Instruction(.halt).encoded)
            var none: GuestOwner?
            try machine.primary.vmm.launch(vm, owner: &none)
            return vm
        }
        let a = try launched("a"), b = try launched("b")
        #expect((a.asid, b.asid) == (1, 2))
        #expect(throws: MachineError.noFreeASID) { _ = try kvm.createVM(name: "x", memoryBytes: 2 << 20, policy: 1, sev: true) }
        try kvm.destroy(a)
        let before = sink.events.count
        let c = try launched("c")
        #expect(c.asid == 1, "the reclaimed ASID")
        let commands = sink.events[before...].compactMap { if case .pspCommand(let p) = $0.body { SEVCommand(rawValue: p.command) } else { nil } }
        #expect(commands.first == .dfFlush, "recycling flushes first")
        #expect(machine.primary.firmware.guestState(handle: a.handle) == nil, "the destroyed guest was decommissioned")
        #expect(throws: MachineError.self) { try kvm.run(a) }
        try kvm.run(c)
    }
}

/// The nested page faults a hypervisor provokes by unmapping guest pages.
struct NestedPageFaultTests {
    @Test("an unmapped page faults to KVM with its guest physical address, is mapped back, and the guest goes on")
    func npf() throws {
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 1, immediate: 0x180000),
            Instruction(.movImmediate, a: 2, immediate: 0x7),
            Instruction(.store, a: 1, b: 2, width: 8),
            Instruction(.load, a: 3, b: 1, width: 8),
            Instruction(.halt),
        ])
        try f.platform.kvm.unmap(f.vm, gpa: 0x180000, pages: 1)
        try f.platform.kvm.run(f.vm)
        let exits = f.exits
        #expect(exits.map(\.exitCode) == [VMExit.npf, VMExit.hlt])
        #expect(exits[0].exitInfo2 == 0x180000 | f.platform.config.cbitMask, "a private access: EXITINFO2 carries the C-bit")
        #expect(exits[0].exitInfo1 == 1 << 32 | 1 << 2, "not present, user (nested walks are), on the final guest physical address")
        #expect(f.vm.vcpus[0].registers[3] == 7, "the store ran again after the fault and the load sees it")
        #expect(try f.vm.translate(0x180000) != 0)
    }

    @Test("a fault on a page of the guest's own page tables sets EXITINFO1 bit 33, with the table's address and C=1 (walks are private)")
    func npfDuringGuestWalk() throws {
        let f = try MachineFixture([
            Instruction(.halt),
            Instruction(.movImmediate, a: 1, immediate: 0x180000),
            Instruction(.load, a: 2, b: 1, width: 8),
            Instruction(.halt),
        ])
        try f.platform.kvm.run(f.vm)  // boot builds the page tables (the kernel's data page comes first), then HLT
        let tables = f.vm.pageTableBase + 4096
        try f.platform.kvm.unmap(f.vm, gpa: tables, pages: f.vm.pageTablePages - 1)
        try f.platform.kvm.run(f.vm)
        let walkFaults = f.exits.filter { $0.exitCode == VMExit.npf && $0.exitInfo1 & 1 << 33 != 0 }
        #expect(!walkFaults.isEmpty)
        for x in walkFaults {
            #expect(x.exitInfo1 & 1 << 32 == 0 && x.exitInfo2 & f.platform.config.cbitMask != 0)
            let gpa = x.exitInfo2 & ~f.platform.config.cbitMask
            #expect(gpa >= tables && gpa < tables + (f.vm.pageTablePages - 1) * 4096)
        }
        #expect(f.vm.vcpus[0].isHalted)
    }
}

/// MMIO: accesses to a device page with no memory behind it, emulated by KVM.
struct MMIOTests {
    @Test("a store and a load on the MMIO page exit as NPF with the address and a reserved-bit error code; KVM emulates them",
          arguments: [UInt64(0x100_0000), 0xFEB0_0000, 0x40_0000_0000])
    func emulated(base: UInt64) throws {
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 1, immediate: base),
            Instruction(.movImmediate, a: 2, immediate: 0x1_2345_6789),
            Instruction(.store, a: 1, b: 2, width: 4, immediate: 0x10),
            Instruction(.load, a: 3, b: 1, width: 8, immediate: 0x10),
            Instruction(.load, a: 4, b: 1, width: 2, immediate: 0x18),
            Instruction(.halt),
        ], mmio: base)
        try f.platform.kvm.run(f.vm)
        let exits = f.exits
        #expect(exits.map(\.exitCode) == [VMExit.npf, VMExit.npf, VMExit.npf, VMExit.hlt])
        #expect(exits.prefix(3).map(\.exitInfo2) == [base + 0x10, base + 0x10, base + 0x18])
        #expect(exits[0].exitInfo1 == 0x1_0000_000B && exits[1].exitInfo1 == 0x1_0000_0009)
        #expect(exits[0].registers[2] == 0x1_2345_6789, "the stored value is in the VMCB, in the clear")
        #expect(exits[0].rip == 0x100000 + 3 * UInt64(Instruction.size), "KVM resumes after the instruction (nRIP)")
        let vcpu = f.vm.vcpus[0]
        #expect(vcpu.registers[3] == 0x2345_6789, "the device kept the 4 bytes stored")
        #expect(vcpu.registers[4] == 0)
        let mmioAccesses = f.accesses.filter { $0.gpa >> 12 == base >> 12 && ($0.kind == .read || $0.kind == .write) }
        #expect(mmioAccesses.isEmpty, "nothing reaches memory at the device's address")
    }

    @Test("a string copy onto the MMIO page is not emulated and stops the run with an error")
    func copyRefused() throws {
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 1, immediate: 0xFEB0_0000),
            Instruction(.movImmediate, a: 2, immediate: 0x180000),
            Instruction(.movImmediate, a: 3, immediate: 1),
            Instruction(.copy, a: 1, b: 2, c: 3),
            Instruction(.halt),
        ], mmio: 0xFEB0_0000)
        #expect(throws: MachineError.self) { try f.platform.kvm.run(f.vm) }
    }

    @Test("without an MMIO page the same access is a guest page fault: the cleared directories map nothing there")
    func noDevice() throws {
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 1, immediate: 0xFEB0_0000),
            Instruction(.load, a: 3, b: 1, width: 8),
            Instruction(.halt),
        ])
        #expect(throws: MachineError.guestPageFault(vm: "guest", vcpu: 0, gva: 0xFEB0_0000, rip: 0x100010)) {
            try f.platform.kvm.run(f.vm)
        }
    }
}

/// KVM's paravirtual MSRs: areas the guest registers and the hypervisor writes, keyless, before VMRUN.
struct ParavirtualMSRTests {
    @Test("WRMSR exits with EXITINFO1 1; MSR_KVM_STEAL_TIME makes KVM write kvm_steal_time before every later VMRUN",
          arguments: [true, false])
    func stealTime(decrypted: Bool) throws {
        let area: UInt64 = 0x1f0040
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 1, immediate: KVM.msrKVMStealTime),
            Instruction(.movImmediate, a: 0, immediate: area | 1),
            Instruction(.movImmediate, a: 2, immediate: 0),
            Instruction(.wrmsr),
            Instruction(.out, a: 0, width: 1, immediate: 0x80),
            Instruction(.movImmediate, a: 6, immediate: area),
            Instruction(.load, a: 3, b: 6, width: 8),
            Instruction(.load, a: 4, b: 6, width: 4, immediate: 8),
            Instruction(.halt),
        ], shared: decrypted ? [(0x1f0000, 1)] : [])
        try f.platform.kvm.run(f.vm)
        let exits = f.exits
        #expect(exits.first?.exitCode == VMExit.msr && exits.first?.exitInfo1 == 1)
        let vcpu = f.vm.vcpus[0]
        #expect(vcpu.stealTimeGPA == area)
        let hostWrites = f.accesses.filter { $0.actor == .hypervisor && $0.kind == .write && $0.gpa == area + 8 }
        #expect(hostWrites.map(\.value) == [2, 4], "one update after the WRMSR exit and one after the OUT exit")
        if decrypted {
            #expect(vcpu.registers[4] == 4, "the guest reads KVM's version through its C=0 mapping")
            #expect(vcpu.registers[3] > 0, "the cycles spent in KVM between exit and VMRUN are stolen")
        } else {
            #expect(vcpu.registers[4] != 4, "a private mapping decrypts KVM's plaintext into garbage")
        }
    }

    @Test("writing MSR_KVM_SYSTEM_TIME_NEW with bit 0 clear turns the vCPU's kvmclock off")
    func kvmclockOff() throws {
        let f = try MachineFixture([
            Instruction(.movImmediate, a: 1, immediate: KVM.msrKVMSystemTimeNew),
            Instruction(.movImmediate, a: 0, immediate: 0x1f0000),
            Instruction(.wrmsr),
            Instruction(.halt),
        ], launch: false)
        f.vm.kvmclockGPA = 0x1f0000
        #expect(f.vm.vcpus[0].kvmclockGPA == 0x1f0000)
        var none: GuestOwner?
        _ = try f.platform.vmm.launch(f.vm, owner: &none)
        try f.platform.kvm.run(f.vm)
        #expect(f.vm.vcpus[0].kvmclockGPA == nil)
    }
}
