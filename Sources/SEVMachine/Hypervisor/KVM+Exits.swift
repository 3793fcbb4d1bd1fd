import TraceFormat

/// VMRUN and #VMEXIT: entering the guest with its VMCB, and handling the exits of port I/O, string I/O,
/// hypercalls, CPUID and RDMSR as KVM does. Without SEV-ES every general-purpose register sits in the
/// VMCB in the clear at each exit, and the exit event records what the hypervisor sees.
extension KVM {
    /// `KVM_HC_MAP_GPA_RANGE`: the guest tells the hypervisor a range changed encryption state.
    public static let hypercallMapGPARange: UInt64 = 12
    /// KVM_MAP_GPA_RANGE_ENCRYPTED in the hypercall's attributes (RDX); without it the range is decrypted.
    public static let mapGPARangeEncrypted: UInt64 = 1 << 4
    /// The value `in` gets from a port (no device model behind the ports).
    static let portInputValue: UInt64 = 0xFFFF_FFFF
    /// KVM's paravirtual MSRs a guest enables by writing a guest physical address with bit 0 set.
    public static let msrKVMSystemTimeNew: UInt64 = 0x4b56_4d01
    public static let msrKVMStealTime: UInt64 = 0x4b56_4d03
    /// MSR_KVM_ASYNC_PF_EN: bits 63:6 the GPA of the 64-byte `kvm_vcpu_pv_apf_data`, bit 0 enable, bit 1
    /// KVM_ASYNC_PF_SEND_ALWAYS (deliver in kernel mode too).
    public static let msrKVMAsyncPFEnable: UInt64 = 0x4b56_4d02

    /// VMRUN with the VM's VMCB (its ASID field is the VM's ASID). Before it, KVM refreshes the vCPU's
    /// kvmclock (`kvm_guest_time_update`) and steal time (`record_steal_time`): it writes the guest's
    /// `pvclock_vcpu_time_info` and `kvm_steal_time` with no key, so the guest must have mapped those
    /// pages decrypted (Linux's `__bss_decrypted` and `DEFINE_PER_CPU_DECRYPTED`) to read them.
    /// With `injecting`, the VMCB's EVENTINJ carries that event (and CR2 `cr2`) into the guest.
    func enter(_ vcpu: VCPU, injecting event: UInt64 = 0, cr2: UInt64 = 0) throws(MachineError) {
        let vm = vcpu.vm
        try platform.machine.countSteps(Machine.worldSwitchSteps)
        if let area = vcpu.stealTimeGPA {
            if vcpu.lastExitCycle != 0 { vcpu.stealCycles &+= platform.machine.cycle &- vcpu.lastExitCycle }
            vcpu.stealTimeVersion &+= 2
            var st = CommandBuffer(size: 24)
            st.setU64(0, vcpu.stealCycles &* 10 / 25)              // steal, in ns at a 2.5 GHz TSC
            st.setU32(8, vcpu.stealTimeVersion)                    // version (even: consistent)
            st.setU8(16, 0)                                        // preempted: no
            try? write(vm, gpa: area, bytes: st.bytes)
        }
        if let clock = vcpu.kvmclockGPA {
            vm.kvmclockVersion &+= 2
            var info = CommandBuffer(size: 32)
            info.setU32(0, vm.kvmclockVersion)                     // version (even: consistent)
            info.setU64(8, platform.machine.cycle)                 // tsc_timestamp
            info.setU64(16, platform.machine.cycle &* 10 / 25)     // system_time in ns at a 2.5 GHz TSC
            info.setU32(24, 0x6666_6666)                          // tsc_to_system_mul
            info.setU8(28, 0xFF)                                   // tsc_shift (-1)
            info.setU8(29, 1)                                      // flags: PVCLOCK_TSC_STABLE_BIT
            try? write(vm, gpa: clock, bytes: info.bytes)
        }
        // sev_init_vmcb: every vCPU of an SEV guest runs with SEV_ENABLE; KVM always uses nested paging.
        let nestedControl = VMRun.npEnable | (vm.isSEV ? VMRun.sevEnable : 0)
        platform.emit(.vmRun(VMRun(vm: vm.id, vcpu: vcpu.index, asid: vcpu.asid, nestedControl: nestedControl,
                                   ncr3: platform.traced(vm.nptRoot), eventInjection: event, cr2: cr2)),
                      cost: Platform.Cost.control)
    }

    /// Reports a #VMEXIT with the register state the hypervisor reads from the VMCB.
    func reportExit(_ vcpu: VCPU, code: UInt16, info1: UInt64, info2: UInt64) {
        vcpu.lastExitCycle = platform.machine.cycle
        platform.emit(.vmExit(VMExit(vm: vcpu.vm.id, vcpu: vcpu.index, exitCode: code, exitInfo1: info1, exitInfo2: info2,
                                     rip: vcpu.rip, registers: Array(vcpu.registers.prefix(16)))),
                      cost: Platform.Cost.control)
    }

    /// Reports #VMEXIT(NPF) for a fault on `gpa` as the processor fills the VMCB: EXITINFO1 is the error
    /// code (`errorCode`: present, write, user, reserved bits) with bit 32 for a fault on the final guest
    /// physical address or bit 33 for one during the guest's page-table walk; EXITINFO2 is the faulting
    /// guest physical address with the access's C-bit, which KVM then clears (`__sme_clr`) before it
    /// looks the address up. Write and fetch bits are set only where the model knows them (MMIO).
    func reportNestedPageFault(_ vcpu: VCPU, gpa: UInt64, errorCode: UInt64) {
        let fault = vcpu.lastNestedFault
        reportExit(vcpu, code: VMExit.npf, info1: errorCode | (fault.duringWalk ? 1 << 33 : 1 << 32),
                   info2: gpa | (fault.cbit ? platform.config.cbitMask : 0))
    }

    /// The hypervisor writes a guest register through the VMCB.
    private func setRegister(_ vcpu: VCPU, _ r: UInt8, _ value: UInt64) {
        vcpu.registerOp(.loadImmediate, dst: r, src: MemoryAccess.noRegister, result: value)
    }

    /// #VMEXIT(NPF) on MMIO (the VM's device page, or an address no memslot covers), as KVM handles it
    /// for an SEV guest: it cannot read the instruction from encrypted guest memory, so it decodes the
    /// bytes the processor's decode assist put in the VMCB, takes the address from EXITINFO2, and
    /// emulates the load or store: a store's value comes from the guest register in the VMCB (in the
    /// clear without SEV-ES), a load's result goes back into one. The device page keeps what was stored;
    /// unassigned memory drops stores and reads as 0 (QEMU's `unassigned_mem_read`). Then the guest
    /// resumes after the instruction (nRIP).
    func emulateMMIO(_ vcpu: VCPU, _ insn: Instruction, gpa: UInt64) throws(MachineError) {
        let vm = vcpu.vm
        let isStore = insn.opcode == .store
        guard isStore || insn.opcode == .load else {
            throw .invalid("\(vm.name): \(insn.opcode) at rip \(vcpu.rip) touches MMIO; KVM emulates only loads and stores")
        }
        let gva = vcpu.registers[Int(isStore ? insn.a : insn.b)] &+ insn.immediate
        let address = gpa & ~0xFFF | gva & 0xFFF
        // Error code: present, write, reserved bit (KVM's MMIO entries).
        vcpu.rip &+= UInt64(Instruction.size)
        reportNestedPageFault(vcpu, gpa: address, errorCode: 1 << 3 | (isStore ? 1 << 1 : 0) | 1)
        let mask: UInt64 = insn.width == 8 ? .max : (1 << UInt64(8 * insn.width)) - 1
        let device = vm.isDevicePage(address)
        if isStore {
            if device { vm.mmioRegisters[address] = vcpu.registers[Int(insn.b)] & mask }
        } else {
            let chosen = vm.answers.mmio[address]
            setRegister(vcpu, insn.a, (chosen ?? (device ? vm.mmioRegisters[address] ?? 0 : 0)) & mask)
        }
        try enter(vcpu)
    }

    /// Handles the exit an instruction causes, then resumes the guest (VMRUN).
    func handleExit(_ vcpu: VCPU, _ insn: Instruction) throws(MachineError) {
        let vm = vcpu.vm
        let port = insn.immediate & 0xFFFF
        switch insn.opcode {
        case .out, .input:
            // EXITINFO1: port in 31:16, size bits 4-6 (1, 2, 4 bytes), type bit 0 (1 = in).
            let info1 = port << 16 | UInt64(insn.width) << 4 | (insn.opcode == .input ? 1 : 0)
            reportExit(vcpu, code: VMExit.ioio, info1: info1, info2: vcpu.rip)
            if insn.opcode == .input {
                let mask: UInt64 = insn.width == 4 ? 0xFFFF_FFFF : (1 << UInt64(8 * insn.width)) - 1
                setRegister(vcpu, insn.a, (vm.answers.ports[UInt16(port)] ?? Self.portInputValue) & mask)
            }
        case .outs, .ins:
            // String I/O: the hypervisor emulates it by accessing the guest buffer itself, which it can only
            // do by guest physical address (the guest's own mappings are identity maps here) and with no key.
            let info1 = port << 16 | 1 << 4 | 1 << 2 | 1 << 3 | (insn.opcode == .ins ? 1 : 0)
            reportExit(vcpu, code: VMExit.ioio, info1: info1, info2: vcpu.rip)
            let address = vcpu.registers[Int(insn.a)]
            guard let count = Int(exactly: vcpu.registers[Int(insn.c)]), UInt64(count) <= vm.memoryBytes else {
                throw .invalid("\(vm.name): string I/O of \(vcpu.registers[Int(insn.c)]) bytes is larger than the VM's memory")
            }
            try platform.machine.countSteps(UInt64(count))  // each iteration, as a CPU counts them
            if insn.opcode == .outs {
                try read(vm, gpa: address, length: count)
            } else {
                try write(vm, gpa: address, bytes: [UInt8](repeating: 0xFF, count: count))
            }
            vcpu.registers[Int(insn.a)] = address &+ UInt64(count)
            vcpu.registers[Int(insn.c)] = 0
        case .vmmcall:
            reportExit(vcpu, code: VMExit.vmmcall, info1: 0, info2: 0)
            if vcpu.registers[0] == Self.hypercallMapGPARange {
                let gpa = vcpu.registers[3], pages = vcpu.registers[1]
                let encrypted = vcpu.registers[2] & Self.mapGPARangeEncrypted != 0
                for p in 0..<min(pages, vm.memoryBytes >> 12) { vm.markShared(gpa: gpa &+ (p << 12), !encrypted) }
                setRegister(vcpu, 0, 0)
            } else {
                setRegister(vcpu, 0, UInt64(bitPattern: -1000))  // -KVM_ENOSYS
            }
        case .cpuid:
            reportExit(vcpu, code: VMExit.cpuid, info1: 0, info2: 0)
            let c = platform.config
            var out: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
            if let chosen = vm.answers.cpuid[UInt32(truncatingIfNeeded: vcpu.registers[0])] {
                out = (chosen.eax, chosen.ebx, chosen.ecx, chosen.edx)
            } else if vcpu.registers[0] == 0x8000_001F && vm.isSEV {
                // As QEMU fills the leaf for a guest: EAX bit 1 SEV (SME is not offered to guests);
                // EBX[5:0] C-bit, [11:6] PA reduction; ECX and EDX (ASID counts) zero. A plain guest sees zeros.
                let cbit = vm.cpuidCbitPosition ?? c.cbitPosition  // a lying hypervisor answers its own
                out = (0x2, UInt64(cbit) | UInt64(c.physAddrReduction) << 6, 0, 0)
            }
            setRegister(vcpu, 0, out.0)
            setRegister(vcpu, 3, out.1)
            setRegister(vcpu, 1, out.2)
            setRegister(vcpu, 2, out.3)
        case .rdmsr:
            reportExit(vcpu, code: VMExit.msr, info1: 0, info2: 0)
            let value: UInt64 = if let chosen = vm.answers.msrs[UInt32(truncatingIfNeeded: vcpu.registers[1])] { chosen } else {
                switch vcpu.registers[1] {
                case 0xC001_0131: vm.isSEV ? 1 : 0       // SEV_STATUS: SEV enabled
                // SYSCFG is the host's: KVM answers a guest 0, as for the other AMD platform MSRs it hides.
                default: 0
                }
            }
            setRegister(vcpu, 0, value & 0xFFFF_FFFF)
            setRegister(vcpu, 2, value >> 32)
        case .wrmsr:
            // EXITINFO1 1: a write. KVM takes the value from RDX:RAX in the VMCB.
            reportExit(vcpu, code: VMExit.msr, info1: 1, info2: 0)
            let value = vcpu.registers[2] << 32 | vcpu.registers[0] & 0xFFFF_FFFF
            switch vcpu.registers[1] & 0xFFFF_FFFF {
            case Self.msrKVMSystemTimeNew: vcpu.kvmclockGPA = value & 1 != 0 ? value & ~1 : nil
            case Self.msrKVMStealTime: vcpu.stealTimeGPA = value & 1 != 0 ? value & ~0x3F : nil  // 64-byte aligned
            case Self.msrKVMAsyncPFEnable:
                vcpu.asyncPFGPA = value & 1 != 0 ? value & ~0x3F : nil
                vcpu.asyncPFSendAlways = value & 2 != 0
            default: break
            }
        default:
            break
        }
        try enter(vcpu)
    }
}
