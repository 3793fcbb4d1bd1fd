import TraceFormat

/// HV_PLAINTEXT: the hypervisor read private-origin plaintext (memory stored in the clear that holds a
/// secret or data the guest produced while private). The host reading back bytes its own copy put there
/// saw them already, at the copy, and is not reported again. Severities as for PRIVATE_TO_SHARED.
final class HvPlaintextDetector: ContextDetector, AccessDetector {
    static let detector = Detector.hvPlaintext

    static func summary(_ f: Finding, _ w: FindingCollector.SummaryWords) -> String {
        "the hypervisor read \(f.length) bytes of \(w.what) in plaintext at \(w.at)\(w.note)"
    }
}
