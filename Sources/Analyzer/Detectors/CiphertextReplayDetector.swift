import TraceFormat

/// CIPHERTEXT_REPLAY (high): the host or a device wrote back into a private block the very ciphertext it
/// had read from it before the guest changed it, and the guest then read the block: it decrypts
/// correctly, to the guest's old data (a rollback of private state, which plain SEV cannot detect). The
/// analyzer's shadow memory tracks the ciphertext read and the blocks rolled back
/// (``CiphertextReplays``); this detector reports the guest's reads of such blocks.
final class CiphertextReplayDetector: ContextDetector, AccessDetector {
    static let detector = Detector.ciphertextReplay

    /// A guest read (C=1) of a block the host rolled back: `readSeq` read the ciphertext, `writeSeq` wrote it back.
    func guestRead(_ a: MemoryAccess, seq: UInt64, readSeq: UInt64, writeSeq: UInt64) {
        context.reportAccess(Self.detector, .high, a, seq: seq, sourceSeq: readSeq, sourceSPA: a.spa, plaintext: false,
                             flow: Analyzer.flow([(readSeq, .source), (writeSeq, .write), (seq, .sink)]), summary: Self.summary)
    }

    static func summary(_ f: Finding, _ w: FindingCollector.SummaryWords) -> String {
        "\(f.actor) read \(f.length) bytes at \(w.at) that the host had rolled back to an older ciphertext: the guest accepted its stale private state (replay)"
    }
}
