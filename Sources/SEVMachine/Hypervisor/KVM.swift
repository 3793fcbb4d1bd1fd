import TraceFormat

/// The hypervisor, modelled on KVM: it creates VMs and their nested page tables, allocates SEV ASIDs,
/// drives the PSP as KVM's `KVM_MEMORY_ENCRYPT_OP` does, runs vCPUs, and can read and write guest
/// memory directly (which is what a curious or malicious hypervisor does).
public final class KVM {
    unowned let platform: Platform
    public private(set) var vms: [VirtualMachine] = []
    /// Host memory below this is the host kernel's; guests are allocated above it.
    static let guestMemoryStart: UInt64 = 16 << 20
    /// A host page the hypervisor hands to the PSP for command output (the launch measurement).
    public static let scratchSPA: UInt64 = 1 << 20
    private var nextFree = guestMemoryStart
    private var asidInUse: [Bool]

    init(platform: Platform) {
        self.platform = platform
        asidInUse = Array(repeating: false, count: Int(platform.config.maxSEVASID) + 1)
    }

    /// The VM called `name`.
    public func vm(named name: String) -> VirtualMachine? { vms.first { $0.name == name } }

    /// Creates a VM with `memoryBytes` of memory (a multiple of 2 MiB) mapped 1:1 at consecutive host
    /// pages, and for an SEV guest the lowest free ASID from the minimum SEV ASID up (as `sev_asid_new`).
    @discardableResult
    public func createVM(name: String, memoryBytes: UInt64, policy: UInt32, sev: Bool, vcpus: Int = 1)
        throws(MachineError) -> VirtualMachine {
        guard memoryBytes >= 2 << 20, memoryBytes % (2 << 20) == 0 else {
            throw .invalid("\(name): memory must be a multiple of 2 MiB")
        }
        let free = platform.config.memoryBytes > nextFree ? platform.config.memoryBytes - nextFree : 0
        guard memoryBytes <= free else { throw .outOfHostMemory(requested: memoryBytes, free: free) }
        var asid: UInt16 = 0
        if sev {
            guard let a = (Int(platform.config.minSEVASID)...Int(platform.config.maxSEVASID)).first(where: { !asidInUse[$0] })
            else { throw .noFreeASID }
            asidInUse[a] = true
            asid = UInt16(a)
        }
        let vm = VirtualMachine(id: platform.machine.nextVMID(), name: name, platform: platform, memoryBytes: memoryBytes, policy: policy, asid: asid,
                                spaBase: nextFree)
        for i in 0..<vcpus { vm.vcpus.append(VCPU(vm: vm, index: UInt16(i), platform: platform)) }
        vms.append(vm)
        platform.emit(.vmCreated(VMCreated(vm: vm.id, platform: platform.id, name: name, asid: asid, policy: policy, memoryBytes: memoryBytes,
                                          vcpus: UInt16(vcpus))), cost: Platform.Cost.control)
        platform.emit(.nptChange(NPTChange(vm: vm.id, op: .map, gpa: 0, spa: platform.traced(nextFree), pages: memoryBytes >> 12)),
                     cost: Platform.Cost.control)
        nextFree += memoryBytes
        return vm
    }

    /// Makes sure the platform is initialised, as KVM_SEV_INIT does: INIT if needed, then WBINVD and
    /// DF_FLUSH ("Prepare for first SEV guest launch after INIT").
    public func sevInit() {
        guard platform.firmware.platformState == .uninit else { return }
        var b = CommandBuffer(size: CommandBuffer.size(of: .initialize))
        guard platform.firmware.execute(SEVCommand.initialize.rawValue, buffer: &b) == .success else { return }
        platform.wbinvdAllCores()
        var none = CommandBuffer(size: 0)
        platform.firmware.execute(SEVCommand.dfFlush.rawValue, buffer: &none)
    }

    /// Launches an SEV guest the way QEMU and KVM do: the hypervisor copies the image into guest memory,
    /// then LAUNCH_START, ACTIVATE, LAUNCH_UPDATE_DATA for each image region, LAUNCH_MEASURE,
    /// LAUNCH_FINISH. Stops at the first command that fails and returns its status.
    @discardableResult
    public func launch(_ vm: VirtualMachine) throws(MachineError) -> (command: SEVCommand, status: SEVStatus) {
        guard vm.isSEV else { throw .invalid("\(vm.name) is not an SEV guest") }
        sevInit()
        try loadImage(vm)
        let fw = platform.firmware
        var start = CommandBuffer(size: CommandBuffer.size(of: .launchStart))
        start.setU32(4, vm.policy)
        var status = fw.execute(SEVCommand.launchStart.rawValue, buffer: &start)
        guard status == .success else { return (.launchStart, status) }
        vm.handle = start.u32(0)
        var activate = CommandBuffer(size: CommandBuffer.size(of: .activate))
        activate.setU32(0, vm.handle)
        activate.setU32(4, UInt32(vm.asid))
        status = fw.execute(SEVCommand.activate.rawValue, buffer: &activate)
        guard status == .success else { return (.activate, status) }
        for region in vm.image {
            var update = CommandBuffer(size: CommandBuffer.size(of: .launchUpdateData))
            update.setU32(0, vm.handle)
            update.setU64(8, try vm.translate(region.gpa))
            update.setU32(16, UInt32(region.bytes.count))
            status = fw.execute(SEVCommand.launchUpdateData.rawValue, buffer: &update)
            guard status == .success else { return (.launchUpdateData, status) }
        }
        var measure = CommandBuffer(size: CommandBuffer.size(of: .launchMeasure))
        measure.setU32(0, vm.handle)
        measure.setU64(8, Self.scratchSPA)
        measure.setU32(16, 48)
        status = fw.execute(SEVCommand.launchMeasure.rawValue, buffer: &measure)
        guard status == .success else { return (.launchMeasure, status) }
        var finish = CommandBuffer(size: CommandBuffer.size(of: .launchFinish))
        finish.setU32(0, vm.handle)
        status = fw.execute(SEVCommand.launchFinish.rawValue, buffer: &finish)
        return (.launchFinish, status)
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
    public func run(_ vm: VirtualMachine, vcpu index: Int = 0, stepLimit: UInt64 = 500_000_000) throws(MachineError) {
        guard index < vm.vcpus.count else { throw .invalid("\(vm.name) has no vcpu \(index)") }
        try prepareToRun(vm)
        try vm.vcpus[index].run(stepLimit: stepLimit)
    }

    /// Checks that the VM can run: an SEV guest needs its key loaded; a plain guest gets its image now.
    func prepareToRun(_ vm: VirtualMachine) throws(MachineError) {
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
        // One taint source per run of contiguous system physical pages.
        var start = 0
        while start < bytes.count {
            let g = gpa + UInt64(start)
            let spa = try vm.translate(g)
            var end = min(bytes.count, start + Int(4096 - (g & 0xFFF)))
            while end < bytes.count, try vm.translate(gpa + UInt64(end)) == spa + UInt64(end - start) {
                end = min(bytes.count, end + 4096)
            }
            platform.emit(.taintSource(TaintSource(vm: vm.id, name: name, gpa: g, spa: platform.traced(spa), length: UInt64(end - start))),
                         cost: Platform.Cost.control)
            start = end
        }
    }
}
