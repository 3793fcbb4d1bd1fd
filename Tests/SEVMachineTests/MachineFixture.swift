import TraceFormat
@testable import SEVMachine

/// A machine with one launched SEV guest whose program is `instructions`, recording into memory.
struct MachineFixture {
    let sink = CollectingSink()
    let machine: Machine
    let platform: Platform
    let vm: VirtualMachine
    /// What LAUNCH_MEASURE returned (measurement || mnonce), when launched.
    var launchOutput: [UInt8] = []

    init(_ instructions: [Instruction], shared: [(UInt64, UInt64)] = [], policy: UInt32 = 0x1, launch: Bool = true,
         seed: UInt64 = 1, mmio: UInt64? = nil, paging: PagingMode = .long, largePages: Bool = false,
         config: PlatformConfig = PlatformConfig(), pin: Bool = true, verifyCbit: Bool = false) throws {
        machine = Machine(config: config, seed: seed, sink: sink)
        platform = machine.primary
        vm = try platform.kvm.createVM(name: "guest", memoryBytes: 4 << 20, policy: policy, sev: true, largePages: largePages,
                                       paging: paging, verifyCbit: verifyCbit)
        vm.entry = 0x100000
        vm.addImage(gpa: 0x100000, bytes: instructions.flatMap(\.encoded))
        for (gpa, pages) in shared { vm.addSharedAtBoot(gpa: gpa, pages: pages) }
        vm.mmioGPA = mmio
        if launch {
            var none: GuestOwner?
            launchOutput = try platform.vmm.launch(vm, owner: &none, pin: pin)
        }
    }

    var accesses: [MemoryAccess] {
        sink.events.compactMap { if case .memoryAccess(let a) = $0.body { a } else { nil } }
    }

    /// The exits of the guest program. Early boot's (its CPUID and SEV_STATUS reads, and the hypercalls
    /// for the regions it decrypts) come before rip points at the program and carry rip 0: they are
    /// `bootExits`.
    var exits: [VMExit] { allExits.filter { $0.rip != 0 } }
    var bootExits: [VMExit] { allExits.filter { $0.rip == 0 } }
    private var allExits: [VMExit] {
        sink.events.compactMap { if case .vmExit(let x) = $0.body { x } else { nil } }
    }

    var pspCommands: [PSPCommand] {
        sink.events.compactMap { if case .pspCommand(let p) = $0.body { p } else { nil } }
    }
}
