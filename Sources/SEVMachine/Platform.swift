import TraceFormat

/// One SEV host: its memory and memory controller, its PSP, its hypervisor with VMs, and its devices.
/// A ``Machine`` holds one or more; system physical addresses of platform `n` appear in the trace offset
/// by `n << 40`, so the platforms' memories never alias.
public final class Platform {
    /// The platform's number in its machine.
    public let id: UInt8
    public let name: String
    public let config: PlatformConfig
    public let memory: PhysicalMemory
    public let controller: MemoryController
    /// The machine owns its platforms, so this reference is unretained: every event goes through it, and
    /// ``emit(_:cost:)`` reaches it without reference counting.
    let machineRef: Unretained<Machine>
    /// The machine this platform belongs to.
    var machine: Machine { machineRef.object }
    /// What this platform adds to its system physical addresses in events.
    public let traceBase: UInt64
    /// The cores' caches, when the platform has them.
    let caches: CoreCaches?
    /// The PSP running the SEV firmware.
    public private(set) lazy var firmware = SEVFirmware(platform: self)
    /// The hypervisor.
    public private(set) lazy var kvm = KVM(platform: self)
    /// The VMM (QEMU's part) that drives KVM's SEV ioctl.
    public private(set) lazy var vmm = VMM(platform: self)
    /// The DMA-capable devices, by id.
    public private(set) var devices: [DMADevice] = []

    /// Cycle costs of the things the machine does.
    enum Cost {
        static let instruction: UInt64 = 1
        static let access: UInt64 = 4
        static let walkStep: UInt64 = 4
        static let dma: UInt64 = 8
        static let pspAccess: UInt64 = 2
        static let pspCommand: UInt64 = 1000
        static let control: UInt64 = 10
    }

    /// Creates a powered-on platform: PSP in UNINIT, no VMs.
    init(id: UInt8, name: String, config: PlatformConfig, machine: Machine) {
        self.id = id
        self.name = name
        self.config = config
        self.memory = PhysicalMemory(size: config.memoryBytes)
        self.controller = MemoryController(memory: memory, asidCount: Int(config.maxSEVASID) + 1)
        self.machineRef = Unretained(machine)
        self.traceBase = UInt64(id) << 40
        caches = config.cacheBytes > 0
            ? CoreCaches(cores: config.cores, bytes: config.cacheBytes, ways: 8, controller: controller) : nil
        for (core, cache) in (caches?.caches ?? []).enumerated() {
            cache.onWriteBack = { [unowned self] spa, keyID in
                emit(.cacheOp(CacheOp(op: .writeBack, spa: traced(spa), asid: keyID, lines: 1, core: UInt16(core))), cost: Cost.access)
            }
        }
    }

    /// Reports each core's cache at power-on, so readers know the platform has them.
    func announceCache() {
        guard let caches else { return }
        for core in caches.caches.indices {
            emit(.cacheOp(CacheOp(op: .present, spa: traceBase, asid: 0, lines: UInt64(caches.lineCount), core: UInt16(core))),
                 cost: Cost.control)
        }
    }

    /// The core an actor's CPU-side accesses run on: vCPU n on core n mod cores, the host on core 0.
    @inline(__always)
    func core(of actor: Actor) -> Int {
        if case .vcpu(_, let index) = actor { return Int(index) % config.cores }
        return 0
    }

    /// A CPU-side load (a vCPU or the host) on `core`: through its cache when there is one, tagged with `keyID`.
    @inline(__always)
    func cpuLoad(_ spa: UInt64, size: Int, key: KeySchedule?, keyID: UInt16, core: Int) throws(MachineError) -> UInt64 {
        guard let caches else { return try controller.readValue(spa, size: size, schedule: key) }
        try memory.check(spa, size)
        return caches.read(core: core, spa, size: size, key: key?.owner, keyID: key == nil ? 0 : keyID)
    }

    /// CLFLUSH of `[spa, spa + count)`: the lines tagged `keyID` go back to memory and out of every core's cache.
    func clflush(_ spa: UInt64, count: Int, keyID: UInt16) {
        guard let caches else { return }
        caches.flush(spa, count: count, keyID: keyID)
        let first = spa & ~(Cache.lineSize - 1)
        let lines = (spa + UInt64(count) - first + Cache.lineSize - 1) / Cache.lineSize
        emit(.cacheOp(CacheOp(op: .clflush, spa: traced(first), asid: keyID, lines: lines)), cost: Cost.control)
    }

    /// VM_PAGE_FLUSH: the hypervisor writes the page's address and an ASID to MSR 0xC001_011E, and the
    /// lines of that page tagged with that ASID go back to memory (encrypted) and out of the cache.
    public func vmPageFlush(_ spa: UInt64, asid: UInt16) {
        guard let caches else { return }
        let page = spa & ~0xFFF
        caches.flush(page, count: 4096, keyID: asid)
        emit(.cacheOp(CacheOp(op: .pageFlush, spa: traced(page), asid: asid, lines: 4096 / Cache.lineSize)), cost: Cost.control)
    }

    /// Reports an event that took `cost` cycles.
    @inline(__always)
    func emit(_ body: __owned EventBody, cost: UInt64) { machineRef.with { $0.emit(body, cost: cost) } }

    /// Counts a step of the machine's work (``Machine/countSteps(_:)``).
    @inline(__always)
    func countSteps() throws(MachineError) { try machineRef.with { (m) throws(MachineError) in try m.countSteps() } }

    /// A system physical address as events show it.
    @inline(__always)
    func traced(_ spa: UInt64) -> UInt64 { spa &+ traceBase }

    /// The machine's seeded randomness.
    func randomBytes(_ count: Int) -> [UInt8] { machine.rng.bytes(count) }
    /// Adds a DMA-capable device and returns it.
    @discardableResult
    public func addDevice(name: String) -> DMADevice {
        let d = DMADevice(id: machine.nextDeviceID(), name: name, platform: self)
        devices.append(d)
        return d
    }

    /// The device called `name`, if there is one.
    public func device(named name: String) -> DMADevice? { devices.first { $0.name == name } }

    // MARK: - The one path to memory

    /// Reads `size` (1 to 8) bytes for `actor` and reports the access; returns what the actor saw.
    @inline(__always)
    func read(actor: Actor, vm: UInt16, asid: UInt16, kind: AccessKind, gva: UInt64, gpa: UInt64, spa: UInt64,
              size: Int, cbit: Bool, reason: CbitReason, register: UInt8 = MemoryAccess.noRegister,
              key: KeySchedule?, cost: UInt64 = Cost.access) throws(MachineError) -> UInt64 {
        let value: UInt64
        if case .vcpu = actor {} else { try countSteps() }  // a guest's accesses are paid by its instructions
        switch actor {
        case .vcpu, .hypervisor:
            value = try cpuLoad(spa, size: size, key: key, keyID: asid, core: core(of: actor))
        case .device, .psp:
            // Devices and the PSP snoop the unkeyed lines; what the PSP reads under a guest key comes
            // from memory, past the CPU caches.
            if key == nil { caches?.snoop(spa, invalidate: false) }
            value = try controller.readValue(spa, size: size, schedule: key)
        }
        emit(.memoryAccess(MemoryAccess(actor: actor, vm: vm, asid: asid, kind: kind, gva: gva, gpa: gpa, spa: traced(spa),
                                        size: UInt32(size), cbit: cbit, reason: reason, register: register, value: value)),
             cost: cost)
        return value
    }

    /// Writes `size` (1 to 8) bytes of `value` for `actor` and reports the access.
    @inline(__always)
    func write(actor: Actor, vm: UInt16, asid: UInt16, kind: AccessKind, gva: UInt64, gpa: UInt64, spa: UInt64,
               size: Int, value: UInt64, cbit: Bool, reason: CbitReason, register: UInt8 = MemoryAccess.noRegister,
               key: KeySchedule?, cost: UInt64 = Cost.access) throws(MachineError) {
        let v = size == 8 ? value : value & ((1 << UInt64(8 * size)) - 1)
        if case .vcpu = actor {} else { try countSteps() }
        switch (actor, caches) {
        case (.vcpu, let caches?), (.hypervisor, let caches?):
            try memory.check(spa, size)
            caches.write(core: core(of: actor), spa, size: size, value: v, key: key?.owner, keyID: key == nil ? 0 : asid)
        case (.device, let caches?), (.psp, let caches?):
            if key == nil { caches.snoop(spa, invalidate: true) }
            try controller.writeValue(spa, size: size, value: v, schedule: key)
        default:
            try controller.writeValue(spa, size: size, value: v, schedule: key)
        }
        emit(.memoryAccess(MemoryAccess(actor: actor, vm: vm, asid: asid, kind: kind, gva: gva, gpa: gpa, spa: traced(spa),
                                        size: UInt32(size), cbit: cbit, reason: reason, register: register, value: v)),
             cost: cost)
    }

    /// A `memcpy` by the host (the hypervisor or the VMM) of `count` bytes from `srcSPA` on `source` (this
    /// platform or another: a migration) to `dstSPA` here, through its own mappings (no guest key). Each
    /// piece is a read then a write on the host-copy path, and the write names its source in `gva`.
    /// `srcVM`/`srcGPA` and `dstVM`/`dstGPA` say whose guest memory each side is, when it is.
    func hostCopy(from source: Platform, _ srcSPA: UInt64, to dstSPA: UInt64, count: Int,
                  srcVM: UInt16 = MemoryAccess.noVM, srcGPA: UInt64 = 0,
                  dstVM: UInt16 = MemoryAccess.noVM, dstGPA: UInt64 = 0) throws(MachineError) {
        let pieces = (srcSPA ^ dstSPA) & 7 == 0
            ? Array(try Self.granules(start: dstSPA, count: count)) : (0..<count).map { (offset: $0, size: 1) }
        for (offset, size) in pieces {
            let o = UInt64(offset)
            let v = try source.read(actor: .hypervisor, vm: srcVM, asid: 0, kind: .read, gva: 0,
                                    gpa: srcVM == MemoryAccess.noVM ? 0 : srcGPA + o, spa: srcSPA + o, size: size,
                                    cbit: false, reason: .host, register: Instruction.hostCopy, key: nil)
            try write(actor: .hypervisor, vm: dstVM, asid: 0, kind: .write, gva: source.traced(srcSPA + o),
                      gpa: dstVM == MemoryAccess.noVM ? 0 : dstGPA + o, spa: dstSPA + o, size: size, value: v,
                      cbit: false, reason: .host, register: Instruction.hostCopy, key: nil)
        }
    }

    /// Splits `[start, start + count)` into naturally aligned pieces of at most 8 bytes, computed as
    /// they are iterated. A range that wraps around the address space is an error, so callers may add
    /// any offset of it to `start`.
    static func granules(start: UInt64, count: Int) throws(MachineError) -> Granules {
        guard count >= 0, start.addingReportingOverflow(UInt64(count)).overflow == false else {
            throw .invalid("the range of \(count) bytes at \(hex(start)) wraps around the address space")
        }
        return Granules(start: start, count: count)
    }

    /// The pieces of ``granules(start:count:)``.
    struct Granules: Sequence, IteratorProtocol {
        let start: UInt64
        let count: Int
        private var done = 0

        init(start: UInt64, count: Int) {
            self.start = start
            self.count = count
        }

        mutating func next() -> (offset: Int, size: Int)? {
            guard done < count else { return nil }
            let addr = start + UInt64(done)
            var size = 8
            while size > 1 && (addr % UInt64(size) != 0 || size > count - done) { size /= 2 }
            defer { done += size }
            return (done, size)
        }
    }

    /// The value of `size` bytes at `offset` in `bytes`, little-endian.
    static func value(_ bytes: [UInt8], at offset: Int, size: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<size { v |= UInt64(bytes[offset + i]) << UInt64(8 * i) }
        return v
    }

    /// Stores `size` bytes of `value` at `offset` in `bytes`.
    static func store(_ value: UInt64, into bytes: inout [UInt8], at offset: Int, size: Int) {
        for i in 0..<size { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> UInt64(8 * i)) }
    }

    /// WBINVD on every core (`wbinvd_on_all_cpus`): writes back and invalidates all cache lines. The
    /// PSP notes it, since DF_FLUSH requires it after a DEACTIVATE.
    public func wbinvdAllCores() {
        for core in 0..<config.cores { wbinvd(core: core) }
    }

    /// WBINVD on one core: its cache's lines are written back and invalidated; the other cores keep theirs.
    public func wbinvd(core: Int) {
        if let caches {
            emit(.cacheOp(CacheOp(op: .wbinvd, spa: traceBase, asid: 0, lines: UInt64(caches.lineCount), core: UInt16(core))),
                 cost: Cost.control)
            caches.writeBackAndInvalidate(core: core)
        }
        firmware.noteWBINVD(core: core)
    }
}
