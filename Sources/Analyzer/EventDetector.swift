import TraceFormat

/// A detector that watches the trace's control events (firmware commands, world switches, register
/// writes, nested-page-table changes, the owner's launch checks, the first fetch of a guest) through
/// the state every detector shares, ``AnalysisContext``. Each lives in its own file under Detectors/,
/// with its rules and severities; the analyzer calls the hooks of those it runs, after its own
/// bookkeeping for the event. The detectors of data flow conform too (for their id and construction) and
/// are called besides with the facts of the analyzer's taint engine (``FlowDetectors``).
protocol EventDetector: AnyObject, SendableMetatype {
    /// The detector whose findings it reports.
    static var detector: Detector { get }
    /// The hooks it implements: the analyzer calls only those (a register write, an instruction fetch
    /// are frequent; a call to each of ten detectors that ignore them is not free).
    static var hooks: EventHooks { get }
    init(context: AnalysisContext)
    func pspCommand(_ p: PSPCommand, seq: UInt64)
    func vmExit(_ x: VMExit, seq: UInt64)
    func vmRun(_ r: VMRun, seq: UInt64)
    func registerOp(_ r: RegisterOp, seq: UInt64)
    func nptChange(_ n: NPTChange, seq: UInt64)
    func ownerCheck(_ o: OwnerCheck, seq: UInt64)
    /// An instruction fetch by a vCPU of `vm`.
    func fetch(_ a: MemoryAccess, vm: UInt16, seq: UInt64)
}

extension EventDetector {
    static var hooks: EventHooks { [] }

    func pspCommand(_ p: PSPCommand, seq: UInt64) {}
    func vmExit(_ x: VMExit, seq: UInt64) {}
    func vmRun(_ r: VMRun, seq: UInt64) {}
    func registerOp(_ r: RegisterOp, seq: UInt64) {}
    func nptChange(_ n: NPTChange, seq: UInt64) {}
    func ownerCheck(_ o: OwnerCheck, seq: UInt64) {}
    func fetch(_ a: MemoryAccess, vm: UInt16, seq: UInt64) {}

    /// The (platform << 32 | handle) key of a command's guest.
    static func handleKey(_ p: PSPCommand) -> UInt64 { UInt64(p.platform) << 32 | UInt64(p.handle) }
}

/// The hooks of ``EventDetector``, as a set.
struct EventHooks: OptionSet {
    let rawValue: UInt8
    static let pspCommand = EventHooks(rawValue: 1 << 0)
    static let vmExit = EventHooks(rawValue: 1 << 1)
    static let vmRun = EventHooks(rawValue: 1 << 2)
    static let registerOp = EventHooks(rawValue: 1 << 3)
    static let nptChange = EventHooks(rawValue: 1 << 4)
    static let ownerCheck = EventHooks(rawValue: 1 << 5)
    static let fetch = EventHooks(rawValue: 1 << 6)
    /// Each hook by the name of its method.
    static let byName: [(name: String, hook: EventHooks)] = [
        ("pspCommand", .pspCommand), ("vmExit", .vmExit), ("vmRun", .vmRun), ("registerOp", .registerOp),
        ("nptChange", .nptChange), ("ownerCheck", .ownerCheck), ("fetch", .fetch),
    ]
}

/// The event detectors an analysis runs, per hook, in ``eventDetectorTypes`` order.
struct HookedDetectors {
    let pspCommand: [any EventDetector]
    let vmExit: [any EventDetector]
    let vmRun: [any EventDetector]
    let registerOp: [any EventDetector]
    let nptChange: [any EventDetector]
    let ownerCheck: [any EventDetector]
    let fetch: [any EventDetector]

    init(_ detectors: [any EventDetector]) {
        func with(_ hook: EventHooks) -> [any EventDetector] { detectors.filter { type(of: $0).hooks.contains(hook) } }
        (pspCommand, vmExit, vmRun, registerOp) = (with(.pspCommand), with(.vmExit), with(.vmRun), with(.registerOp))
        (nptChange, ownerCheck, fetch) = (with(.nptChange), with(.ownerCheck), with(.fetch))
    }
}

/// What every event detector holds: the analysis's shared state. Detectors inherit it, so each file holds
/// only the detector's own rules and state.
class ContextDetector {
    let context: AnalysisContext

    required init(context: AnalysisContext) { self.context = context }
}

/// The event detectors, in the order the analyzer calls them (which is the order their findings take
/// when one event raises several).
let eventDetectorTypes: [any EventDetector.Type] = [
    KeySharingDetector.self, MigrationToUntrustedDetector.self, AsidReuseWithoutFlushDetector.self,
    PlacementMismatchDetector.self, PolicyViolationAttemptDetector.self, AsidMisuseDetector.self,
    CbitPositionLieDetector.self, RamAsMMIODetector.self, PageFaultTrackingDetector.self, UnmeasuredExecutionDetector.self,
]
