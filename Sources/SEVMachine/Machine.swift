import TraceFormat

/// The whole simulated system: one or more SEV platforms on one timeline. Everything they do is
/// reported to the sink as events, in the order it happens, stamped with a simulated cycle count. It
/// knows nothing of files.
public final class Machine {
    /// The simulated time: advanced by every event by that event's cost.
    public private(set) var cycle: UInt64 = 0
    let sink: EventSink
    /// The simulation's randomness (firmware keys and nonces), from the scenario's seed.
    var rng: SeededGenerator
    public private(set) var platforms: [Platform] = []
    private var vmCount: UInt16 = 0
    private var deviceCount: UInt16 = 0
    /// How long guest code may run and how much memory platforms may have.
    public var limits = MachineLimits()
    /// Why the simulation must stop now (the sink reached a limit), checked by every loop that runs
    /// guest code or repeats a statement.
    public private(set) var stopReason: String?
    private var eventsSinceCheck: UInt32 = 0
    /// Steps of simulated work done so far (see ``countSteps(_:)``).
    public private(set) var steps: UInt64 = 0

    /// Creates a machine with no platform yet.
    public init(seed: UInt64, sink: EventSink) {
        self.sink = sink
        self.rng = SeededGenerator(seed: seed)
    }

    /// Creates a machine with one platform, the usual case.
    public convenience init(config: PlatformConfig, seed: UInt64, sink: EventSink) {
        self.init(seed: seed, sink: sink)
        addPlatform(name: "host", config: config)
    }

    /// Adds a powered-on platform.
    @discardableResult
    public func addPlatform(name: String, config: PlatformConfig) -> Platform {
        let p = Platform(id: UInt8(platforms.count), name: name, config: config, machine: self)
        platforms.append(p)
        // The chip's keys exist from power-on, so they depend only on the seed and the platform's place.
        emit(.platformInfo(PlatformInfo(
            platform: p.id, cbitPosition: UInt8(config.cbitPosition), physAddrBits: UInt8(config.physAddrBits),
            physAddrReduction: UInt8(config.physAddrReduction), minSEVASID: config.minSEVASID, maxSEVASID: config.maxSEVASID,
            cores: UInt16(config.cores), cacheBytes: UInt64(config.cacheBytes),
            memoryEncryption: config.memoryEncryptionEnabled, sme: config.sme)), cost: 0)
        _ = p.firmware.identity
        if config.sme {
            // The SoC generates the SME key at reset; software never sees it.
            p.controller.setKey(EncryptionKey(bytes: rng.bytes(16)), forASID: 0)
        }
        p.announceCache()
        return p
    }

    /// The platform called `name`.
    public func platform(named name: String) -> Platform? { platforms.first { $0.name == name } }

    /// The first platform (the only one in most scenarios).
    public var primary: Platform { platforms[0] }

    /// Reports an event that took `cost` cycles. Not inlined: called here, with the machine as its
    /// guaranteed `self`, the sink is used without being retained and released per event (inlined into
    /// callers that reach the machine through an unchecked reference, it was).
    @inline(never)
    func emit(_ body: __owned EventBody, cost: UInt64) {
        cycle &+= cost
        sink.record(cycle: cycle, body)
        eventsSinceCheck &+= 1
        if eventsSinceCheck >= 4096 {
            eventsSinceCheck = 0
            if stopReason == nil { stopReason = sink.stopRequest }
        }
    }

    /// Steps one VMRUN…#VMEXIT round trip counts for: simulating one (the exit's registers, the index
    /// row, KVM's bookkeeping) costs about as much as twenty guest instructions, so a guest preempted
    /// every few instructions cannot run many times longer than its step budget suggests.
    public static let worldSwitchSteps: UInt64 = 20

    /// Counts `count` steps of simulated work and throws once the simulation has done all it may. A
    /// step is a guest instruction or one iteration of a repeated one (which a CPU can interrupt between
    /// iterations as it can between instructions), one access of at most 8 bytes by the hypervisor, a
    /// device or the PSP, or a twentieth of a world switch (``worldSwitchSteps``).
    @inline(__always)
    func countSteps(_ count: UInt64 = 1) throws(MachineError) {
        let before = steps
        let (sum, overflow) = steps.addingReportingOverflow(count)
        steps = overflow ? .max : sum
        if steps > limits.maxSteps { throw .stepLimit(limit: limits.maxSteps) }
        if steps >> 12 != before >> 12 { try checkStop() }
    }

    /// Throws when the sink asked the simulation to stop.
    @inline(__always)
    public func checkStop() throws(MachineError) {
        if let stopReason { throw .limit(stopReason) }
    }

    /// The next VM id (VM ids are unique across platforms).
    func nextVMID() -> UInt16 {
        defer { vmCount += 1 }
        return vmCount
    }

    /// The next device id.
    func nextDeviceID() -> UInt16 {
        defer { deviceCount += 1 }
        return deviceCount
    }

    /// A guest owner whose key comes from the simulation's randomness.
    public func makeGuestOwner(name: String, policy: UInt32) -> GuestOwner {
        GuestOwner(name: name, policy: policy, rng: &rng)
    }

    /// Every VM of every platform.
    public var vms: [VirtualMachine] { platforms.flatMap(\.kvm.vms) }

    /// The VM called `name`, on any platform.
    public func vm(named name: String) -> VirtualMachine? { vms.first { $0.name == name } }

    /// The device called `name`, on any platform.
    public func device(named name: String) -> DMADevice? { platforms.lazy.compactMap { $0.device(named: name) }.first }
}
