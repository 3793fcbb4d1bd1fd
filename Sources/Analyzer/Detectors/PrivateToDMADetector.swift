import TraceFormat

/// PRIVATE_TO_DMA: a device read private-origin plaintext by DMA (memory stored in the clear that holds a
/// secret or data the guest produced while private). Severities as for PRIVATE_TO_SHARED.
final class PrivateToDMADetector: ContextDetector, AccessDetector {
    static let detector = Detector.privateToDMA

    static func summary(_ f: Finding, _ w: FindingCollector.SummaryWords) -> String {
        "\(f.actor) read \(f.length) bytes of \(w.what) by DMA from \(w.at)\(w.note)"
    }
}
