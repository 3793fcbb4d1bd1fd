import TraceFormat

/// HV_WRITE_PRIVATE (medium): the hypervisor wrote into a block stored encrypted under a guest key:
/// without the key its bytes decrypt to garbage for the guest (or, replayed ciphertext, to the guest's
/// old data: CIPHERTEXT_REPLAY).
final class HvWritePrivateDetector: ContextDetector, EventDetector {
    static let detector = Detector.hvWritePrivate

    /// A hypervisor write into a block stored encrypted under a guest key.
    func write(_ a: MemoryAccess, seq: UInt64) {
        context.reportAccess(Self.detector, .medium, a, seq: seq, sourceSeq: seq, sourceSPA: 0, plaintext: false,
                             summary: Self.summary)
    }

    static func summary(_ f: Finding, _ w: FindingCollector.SummaryWords) -> String {
        "the hypervisor wrote \(f.length) bytes into private memory of \(w.vm) at \(w.at)"
    }
}
