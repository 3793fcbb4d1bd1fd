import TraceFormat

/// Gathers detector hits into findings, merging a run of hits that continue one another (same detector,
/// actor, VM and labels, each sink access starting where the previous one ended) into one finding, and
/// counting a hit that repeats an access a finding already covers (the same block read again and again)
/// as another occurrence of it. At most ``maxFindings`` findings are kept; hits past that are counted
/// per detector and reported as one finding each, so a hostile trace cannot make the findings grow
/// without bound.
struct FindingCollector {
    /// The most findings kept.
    let maxFindings: Int
    /// Hits that found no room, per detector and severity, with the first and last event.
    private var dropped: [String: (detector: String, severity: Severity, count: UInt64, first: UInt64, last: UInt64)] = [:]

    /// A detector at one severity: the findings it may extend.
    private struct Slot: Hashable {
        var detector: Detector
        var severity: Severity

        /// Its place in ``open`` (looked up for every hit: no hashing).
        var index: Int { detector.ordinal * Severity.allCases.count + severity.rawValue }
    }
    /// What identifies a repeated access: the same detector and severity, actor, VM, labels and address.
    private struct RepeatKey: Hashable {
        var slot: Slot
        var actor: Actor
        var vm: UInt16
        var set: LabelTable.SetID
        var spa: UInt64
        var size: UInt32
    }
    /// The finding each first access of a finding belongs to.
    private var firstAccess: [RepeatKey: Int] = [:]

    init(maxFindings: Int = 100_000) { self.maxFindings = maxFindings }

    struct Hit {
        var detector: Detector
        var severity: Severity
        var access: MemoryAccess
        var seq: UInt64
        var set: LabelTable.SetID
        var sourceSeq: UInt64
        var sourceSPA: UInt64
        /// The plaintext the sink saw, when it is a plaintext leak.
        var plaintext: Bool
        /// The provenance of the first access of the run.
        var flow: [FlowStep]
        /// The detector's one-line summary of the finding, written when the findings are read.
        var summarize: Summarizer
    }

    /// The words the summary of a finding about accesses is made of.
    struct SummaryWords {
        /// The VM of the sink ("host" for none).
        var vm: String
        /// What the bytes are: "secret NAME", or "private data of VM".
        var what: String
        /// " (handed over on purpose)" when the guest handed the data over, else "".
        var note: String
        /// Where the sink is: "gpa 0x…", or "host spa 0x…" for the host's own memory.
        var at: String
    }

    /// A detector's summary of a finding about accesses, from the finding and the words for its labels.
    typealias Summarizer = (Finding, SummaryWords) -> String

    private(set) var findings: [Finding] = []
    private var sets: [LabelTable.SetID] = []
    private var previews: [[UInt8]] = []
    /// The sink's actor of each finding about accesses (nil for the others).
    private var actors: [Actor?] = []
    /// How to write each finding about accesses' summary and preview, which ``finished`` does once: a run
    /// of a million hits changes only the finding's length and last event.
    private var summaries: [(summarize: Summarizer, words: SummaryWords)?] = []
    /// The index of the finding each detector may extend next, per severity (by ``Slot/index``; -1: none).
    private var open = [Int](repeating: -1, count: Detector.allCases.count * Severity.allCases.count)

    /// Takes in a hit that repeats an access a finding covers or continues the run a finding is (the
    /// common case, checked before anything about the hit is built); false when it starts a finding.
    mutating func absorb(_ detector: Detector, _ severity: Severity, _ a: MemoryAccess, seq: UInt64, set: LabelTable.SetID,
                         plaintext: Bool) -> Bool {
        let slot = Slot(detector: detector, severity: severity)
        if case let i = open[slot.index], i >= 0, actors[i] == a.actor, findings[i].vm == a.vm, sets[i] == set {
            let (start, length) = (findings[i].sinkSPA, findings[i].length)
            if a.spa >= start && a.spa - start < length {
                repeatFinding(i, seq: seq)
                return true
            }
            if start &+ length == a.spa {
                findings[i].length += UInt64(a.size)
                findings[i].sinkLastSeq = seq
                if plaintext && previews[i].count < 16 { previews[i] += Self.bytes(a) }
                return true
            }
        }
        if let i = firstAccess[RepeatKey(slot: slot, actor: a.actor, vm: a.vm, set: set, spa: a.spa, size: a.size)] {
            repeatFinding(i, seq: seq)
            return true
        }
        return false
    }

    /// Makes a new finding of a hit that ``absorb(_:_:_:seq:set:plaintext:)`` did not take.
    mutating func start(_ hit: Hit, vmNames: [UInt16: String], table: LabelTable) {
        let a = hit.access
        guard findings.count < maxFindings else {
            drop(hit.detector.rawValue, hit.severity, seq: hit.seq)
            return
        }
        let f = Finding(detector: hit.detector.rawValue, severity: hit.severity, vm: a.vm, asid: a.asid,
                        actor: a.actor.description, sourceSeq: hit.sourceSeq, sinkSeq: hit.seq, sinkLastSeq: hit.seq,
                        sourceSPA: hit.sourceSPA, sinkSPA: a.spa, sinkGPA: a.gpa, length: UInt64(a.size),
                        labels: table.names(hit.set, vmNames: vmNames), preview: "", summary: "", flow: hit.flow)
        findings.append(f)
        sets.append(hit.set)
        previews.append(hit.plaintext ? Self.bytes(a) : [])
        actors.append(a.actor)
        summaries.append((hit.summarize, Self.words(f, vmNames: vmNames, labels: table.members(hit.set))))
        let slot = Slot(detector: hit.detector, severity: hit.severity)
        open[slot.index] = findings.count - 1
        firstAccess[RepeatKey(slot: slot, actor: a.actor, vm: a.vm, set: hit.set, spa: a.spa, size: a.size)] = findings.count - 1
    }

    /// The bytes an access carried (its value, little-endian, up to 8).
    private static func bytes(_ a: MemoryAccess) -> [UInt8] {
        (0..<Int(min(a.size, 8))).map { UInt8(truncatingIfNeeded: a.value >> UInt64(8 * $0)) }
    }

    /// Another occurrence of finding `index` at event `seq`.
    private mutating func repeatFinding(_ index: Int, seq: UInt64) {
        findings[index].occurrences += 1
        findings[index].sinkLastSeq = max(findings[index].sinkLastSeq, seq)
    }

    private mutating func drop(_ detector: String, _ severity: Severity, seq: UInt64) {
        let key = "\(detector)/\(severity)"
        if var d = dropped[key] {
            d.count += 1
            d.last = seq
            dropped[key] = d
        } else {
            dropped[key] = (detector, severity, 1, seq, seq)
        }
    }

    /// The findings, then one for each detector whose hits overflowed ``maxFindings``, in a fixed order.
    var finished: [Finding] {
        var written = findings
        for (i, s) in summaries.enumerated() {
            guard let s else { continue }
            written[i].preview = Self.hex(previews[i].prefix(16))
            written[i].summary = s.summarize(written[i], s.words)
        }
        return written + dropped.values.sorted { ($0.first, $0.detector) < ($1.first, $1.detector) }.map { d in
            var f = Finding(detector: d.detector, severity: d.severity, vm: MemoryAccess.noVM, asid: 0, actor: "",
                            sourceSeq: d.first, sinkSeq: d.first, sinkLastSeq: d.last, sourceSPA: 0, sinkSPA: 0, sinkGPA: 0,
                            length: 0, labels: "", preview: "",
                            summary: "\(d.count) further \(d.detector) hits from event #\(d.first) to #\(d.last) are not listed one by one: the analysis keeps at most \(maxFindings) findings",
                            flow: [FlowStep(seq: d.first, role: .sink)])
            f.occurrences = d.count
            return f
        }
    }

    /// Adds a finding that is not about a run of accesses (and so is never merged); returns its index,
    /// or nil when there is no room left for it (it is counted instead).
    @discardableResult
    mutating func add(_ finding: Finding) -> Int? {
        guard findings.count < maxFindings else {
            drop(finding.detector, finding.severity, seq: finding.sinkSeq)
            return nil
        }
        findings.append(finding)
        sets.append(0)
        previews.append([])
        actors.append(nil)
        summaries.append(nil)
        return findings.count - 1
    }

    /// Extends finding `index` to event `seq` (`bytes` more bytes exposed).
    mutating func repeatFinding(_ index: Int, seq: UInt64, bytes: UInt64) {
        findings[index].sinkLastSeq = seq
        findings[index].length += bytes
    }

    static func name(vmNames: [UInt16: String]) -> (LabelTable.Label) -> String {
        { label in
            switch label.kind {
            case .secret(let name): "secret:\(name)"
            case .privateData(let vm): "private:\(vmNames[vm] ?? "vm\(vm)")"
            case .handover(let vm): "handover:\(vmNames[vm] ?? "vm\(vm)")"
            }
        }
    }

    static func hex<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    /// The words for a finding's sink and labels.
    static func words(_ f: Finding, vmNames: [UInt16: String], labels: [LabelTable.Label]) -> SummaryWords {
        let vm = vmNames[f.vm] ?? (f.vm == MemoryAccess.noVM ? "host" : "vm\(f.vm)")
        let owner = labels.compactMap { l -> String? in
            if case .privateData(let v) = l.kind { vmNames[v] ?? "vm\(v)" } else { nil }
        }.first ?? vm
        let what = labels.compactMap { l -> String? in if case .secret(let n) = l.kind { "secret \(n)" } else { nil } }
            .first ?? "private data of \(owner)"
        let handedOver = labels.contains { if case .handover = $0.kind { true } else { false } }
        let at = f.vm == MemoryAccess.noVM ? "host spa 0x\(String(f.sinkSPA, radix: 16))" : "gpa 0x\(String(f.sinkGPA, radix: 16))"
        return SummaryWords(vm: vm, what: what, note: handedOver ? " (handed over on purpose)" : "", at: at)
    }
}
