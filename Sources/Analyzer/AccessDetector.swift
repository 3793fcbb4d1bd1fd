import TraceFormat

/// A detector whose findings are about runs of memory accesses: it summarizes them, and the findings
/// merge a run of hits into one.
protocol AccessDetector: EventDetector {
    var context: AnalysisContext { get }
    /// The one-line summary of a finding, written again as its run grows.
    static func summary(_ f: Finding, _ w: FindingCollector.SummaryWords) -> String
}

extension AccessDetector {
    /// A keyless reader (a device, the hypervisor) got plaintext carrying `set`, written last by `origin`
    /// (through `via`): a leak as bad as the labels say (``LabelTable/leakSeverity(_:)``).
    func plaintextRead(_ a: MemoryAccess, seq: UInt64, set: LabelTable.SetID, origin: UInt64?, via: UInt64, table: inout LabelTable) {
        context.reportAccess(Self.detector, table.leakSeverity(set), a, seq: seq, set: set, sourceSeq: origin ?? seq,
                             sourceSPA: table.firstSecretSPA(set), plaintext: true,
                             flow: Analyzer.flow([(origin ?? seq, .source), (via, .write), (seq, .sink)]),
                             table: table, summary: Self.summary)
    }

    /// A keyless writer (a device, the hypervisor) wrote into a block stored encrypted under a guest key:
    /// the guest will decrypt garbage there (medium).
    func keylessWrite(_ a: MemoryAccess, seq: UInt64) {
        context.reportAccess(Self.detector, .medium, a, seq: seq, sourceSeq: seq, sourceSPA: 0, plaintext: false,
                             summary: Self.summary)
    }
}
