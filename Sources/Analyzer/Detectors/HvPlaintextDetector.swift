import TraceFormat

/// HV_PLAINTEXT: the hypervisor read private-origin plaintext (memory stored in the clear that holds a
/// secret or data the guest produced while private). The host reading back bytes its own copy put there
/// saw them already, at the copy, and is not reported again. Severities as for PRIVATE_TO_SHARED.
final class HvPlaintextDetector: ContextDetector, EventDetector {
    static let detector = Detector.hvPlaintext

    /// A hypervisor read of plaintext bytes carrying `set`, written last by `origin` (through `via`).
    func read(_ a: MemoryAccess, seq: UInt64, set: LabelTable.SetID, origin: UInt64?, via: UInt64, table: LabelTable) {
        context.reportAccess(Self.detector, table.leakSeverity(set), a, seq: seq, set: set, sourceSeq: origin ?? seq,
                             sourceSPA: table.firstSecretSPA(set), plaintext: true,
                             flow: Analyzer.flow([(origin ?? seq, .source), (via, .write), (seq, .sink)]),
                             table: table, summary: Self.summary)
    }

    static func summary(_ f: Finding, _ w: FindingCollector.SummaryWords) -> String {
        "the hypervisor read \(f.length) bytes of \(w.what) in plaintext at \(w.at)\(w.note)"
    }
}
