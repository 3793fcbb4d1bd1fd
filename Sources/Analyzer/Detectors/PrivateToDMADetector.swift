import TraceFormat

/// PRIVATE_TO_DMA: a device read private-origin plaintext by DMA (memory stored in the clear that holds a
/// secret or data the guest produced while private). Severities as for PRIVATE_TO_SHARED.
final class PrivateToDMADetector: ContextDetector, EventDetector {
    static let detector = Detector.privateToDMA

    /// A device read of plaintext bytes carrying `set`, written last by `origin` (through `via`).
    func read(_ a: MemoryAccess, seq: UInt64, set: LabelTable.SetID, origin: UInt64?, via: UInt64, table: LabelTable) {
        context.reportAccess(Self.detector, table.leakSeverity(set), a, seq: seq, set: set, sourceSeq: origin ?? seq,
                             sourceSPA: table.firstSecretSPA(set), plaintext: true,
                             flow: Analyzer.flow([(origin ?? seq, .source), (via, .write), (seq, .sink)]),
                             table: table, summary: Self.summary)
    }

    static func summary(_ f: Finding, _ w: FindingCollector.SummaryWords) -> String {
        "\(f.actor) read \(f.length) bytes of \(w.what) by DMA from \(w.at)\(w.note)"
    }
}
