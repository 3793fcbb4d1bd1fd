import TraceFormat

/// PRIVATE_TO_SHARED: a vCPU wrote private-origin data (a declared secret, or bytes the guest produced
/// while private) through a C=0 mapping, so it now sits in plaintext in memory the hypervisor and devices
/// read. High for a secret, medium for other private data, one step lower when the guest handed the
/// bytes over on purpose (a SWIOTLB bounce slot it declared).
final class PrivateToSharedDetector: ContextDetector, AccessDetector {
    static let detector = Detector.privateToShared

    /// A guest store through a C=0 mapping of the bytes of `source` that carry `set`.
    func sharedStore(_ a: MemoryAccess, seq: UInt64, set: LabelTable.SetID, source: Analyzer.RegisterTaint, table: inout LabelTable) {
        context.reportAccess(Self.detector, table.leakSeverity(set), a, seq: seq, set: set, sourceSeq: source.origin,
                             sourceSPA: source.loadSPA, plaintext: true,
                             flow: Analyzer.flow([(source.origin, .source), (source.via, .write), (source.load, .load), (seq, .sink)]),
                             table: table, summary: Self.summary)
    }

    static func summary(_ f: Finding, _ w: FindingCollector.SummaryWords) -> String {
        "\(f.actor) wrote \(f.length) bytes of \(w.what) into shared memory at \(w.at)\(w.note)"
    }
}
