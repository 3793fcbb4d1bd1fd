import TraceFormat

/// HV_WRITE_PRIVATE (medium): the hypervisor wrote into a block stored encrypted under a guest key:
/// without the key its bytes decrypt to garbage for the guest (or, replayed ciphertext, to the guest's
/// old data: CIPHERTEXT_REPLAY).
final class HvWritePrivateDetector: ContextDetector, AccessDetector {
    static let detector = Detector.hvWritePrivate

    static func summary(_ f: Finding, _ w: FindingCollector.SummaryWords) -> String {
        "the hypervisor wrote \(f.length) bytes into private memory of \(w.vm) at \(w.at)"
    }
}
