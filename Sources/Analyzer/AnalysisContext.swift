import TraceFormat

/// What every detector of one analysis shares: which VMs exist (names, platforms, RAM sizes, ASIDs),
/// which firmware handles and ASIDs are bound to which guest, which guests finished their launch, how
/// each VM's memory was first mapped, and where findings go.
final class AnalysisContext {
    /// The detectors this analysis runs.
    let detectors: Set<Detector>
    var collector: FindingCollector
    /// The labels, origins and encryption state of every byte written so far.
    let shadow: ShadowMemory

    var vmNames: [UInt16: String] = [:]
    var vmPlatform: [UInt16: UInt8] = [:]
    /// Each VM's RAM size: guest physical addresses below it are RAM.
    var vmMemory: [UInt16: UInt64] = [:]
    /// Each SEV VM's ASID, and the VM using each (platform << 16 | ASID).
    var vmASID: [UInt16: UInt16] = [:]
    var asidToVM: [UInt32: UInt16] = [:]
    /// The VM behind each (platform << 32 | firmware handle), from ACTIVATE.
    var handleVM: [UInt64: UInt16] = [:]
    /// Handles active on each (platform << 16 | ASID), and the slots guests sharing a key run on
    /// legitimately.
    var activeHandles: [UInt32: [UInt32]] = [:]
    var sharedSlots: Set<UInt32> = []
    /// Which VMs finished their launch, by VM id (looked up on every fetch, so an array, not a set).
    private(set) var launchedVMs: [Bool] = []
    /// Each VM's memory as the hypervisor mapped it at creation: (first guest page, first frame, pages, event).
    var mappings = NPTMappings()
    /// Each platform's C-bit position, from its power-on record.
    var platformCbit: [UInt8: UInt8] = [:]

    init(detectors: Set<Detector>, maxFindings: Int, maxShadowBytes: Int) {
        self.detectors = detectors
        collector = FindingCollector(maxFindings: max(1, maxFindings))
        shadow = ShadowMemory(maxBytes: maxShadowBytes)
    }

    /// The VM's name as the trace gave it.
    func name(_ vm: UInt16) -> String { vmNames[vm] ?? "vm\(vm)" }

    func isLaunched(_ vm: UInt16) -> Bool { Int(vm) < launchedVMs.count && launchedVMs[Int(vm)] }

    func markLaunched(_ vm: UInt16) {
        if Int(vm) >= launchedVMs.count { launchedVMs += [Bool](repeating: false, count: Int(vm) + 1 - launchedVMs.count) }
        launchedVMs[Int(vm)] = true
    }

    /// The guest physical address of a nested page fault: EXITINFO2 without the C-bit the processor reports
    /// in it (what KVM's `__sme_clr` leaves).
    func faultAddress(_ x: VMExit) -> UInt64 {
        guard let platform = vmPlatform[x.vm], let cbit = platformCbit[platform], cbit < 64 else { return x.exitInfo2 }
        return x.exitInfo2 & ~(1 << UInt64(cbit))
    }

    /// The guest physical address a system physical address was first mapped at.
    func homeGPA(of spa: UInt64) -> UInt64? {
        let frame = spa >> 12
        guard let m = mappings.first(containing: frame) else { return nil }
        return (frame - m.spaPage + m.gpaPage) << 12 | (spa & 0xFFF)
    }

    /// Reports a hit on memory access `a` (event `seq`), which the findings merge with the run of accesses it
    /// continues: the bytes carry `set`, came from `sourceSeq` (a declared secret among the labels becomes
    /// the flow's source), and `plaintext` says whether the sink saw the data itself (a preview is kept).
    func reportAccess(_ detector: Detector, _ severity: Severity, _ a: MemoryAccess, seq: UInt64, set: LabelTable.SetID = 0,
                      sourceSeq: UInt64, sourceSPA: UInt64, plaintext: Bool, flow: @autoclosure () -> [FlowStep]? = nil,
                      table: LabelTable = .empty, summary: @escaping FindingCollector.Summarizer) {
        // Most hits repeat or continue a finding: those need nothing more built.
        guard !collector.absorb(detector, severity, a, seq: seq, set: set, plaintext: plaintext) else { return }
        var secretSource = sourceSeq
        for l in table.members(set) { if case .secret = l.kind { secretSource = l.seq; break } }
        var steps = flow() ?? Analyzer.flow([(sourceSeq, .source), (seq, .sink)])
        if secretSource != sourceSeq, let first = steps.first, first.role == .source {
            // A declared secret is where the data really comes from.
            steps.insert(FlowStep(seq: secretSource, role: .source), at: 0)
            steps[1].role = .write
        }
        collector.start(.init(detector: detector, severity: severity, access: a, seq: seq, set: set, sourceSeq: secretSource,
                            sourceSPA: sourceSPA, plaintext: plaintext, flow: steps, summarize: summary),
                      vmNames: vmNames, table: table)
    }

    /// Reports a finding that is about an event rather than bytes (no addresses of its own unless given);
    /// returns its index for later repeats (nil once the findings are full).
    @discardableResult
    func report(_ detector: Detector, _ severity: Severity, vm: UInt16, asid: UInt16, actor: String, sourceSeq: UInt64,
                sinkSeq: UInt64, sinkGPA: UInt64 = 0, length: UInt64 = 0, labels: String = "", summary: String,
                flow: [FlowStep] = []) -> Int? {
        collector.add(Finding(
            detector: detector.rawValue, severity: severity, vm: vm, asid: asid, actor: actor, sourceSeq: sourceSeq,
            sinkSeq: sinkSeq, sinkLastSeq: sinkSeq, sourceSPA: 0, sinkSPA: 0, sinkGPA: sinkGPA, length: length,
            labels: labels, preview: "", summary: summary, flow: flow))
    }
}
