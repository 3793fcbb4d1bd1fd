import TraceFormat

/// DMA_INTO_PRIVATE (medium): a device wrote into a block stored encrypted under a guest key. Devices
/// write in the clear, so the guest will decrypt garbage there (or, with the very ciphertext the block
/// held before, its own old data: CIPHERTEXT_REPLAY).
final class DmaIntoPrivateDetector: ContextDetector, AccessDetector {
    static let detector = Detector.dmaIntoPrivate

    static func summary(_ f: Finding, _ w: FindingCollector.SummaryWords) -> String {
        "\(f.actor) wrote \(f.length) bytes by DMA into private memory of \(w.vm) at \(w.at)"
    }
}
