import TraceFormat

/// ENCRYPTION_MISMATCH (medium): a guest read memory under another encryption state than it was written
/// in. With its key (C=1), bytes stored in the clear (a host or device write into a page it maps
/// private); without (C=0), a block stored encrypted under a guest key (a C-bit flip that did not convert
/// the page). Either way it got garbage. Transport ciphertext (written under the TEK) is left out, and a
/// rolled-back block decrypts correctly (CIPHERTEXT_REPLAY instead).
final class EncryptionMismatchDetector: ContextDetector, AccessDetector {
    static let detector = Detector.encryptionMismatch

    /// Whether a read by a guest (its kernel's own services included) of `a.size` bytes gets garbage. Asked
    /// on every guest read, so a static function the analyzer calls on its own shadow memory.
    static func isMismatch(_ a: MemoryAccess, in shadow: ShadowMemory) -> Bool {
        let size = Int(a.size)
        if a.cbit { return shadow.writtenInClear(a.spa, size: size) }
        let stored = shadow.encryption(a.spa, size: size)
        return stored != 0 && stored != Analyzer.transportEncrypted
    }

    /// A guest read for which ``isMismatch(_:in:)`` holds.
    func guestRead(_ a: MemoryAccess, seq: UInt64) {
        context.reportAccess(Self.detector, .medium, a, seq: seq, sourceSeq: seq, sourceSPA: a.spa, plaintext: false,
                             summary: Self.summary)
    }

    static func summary(_ f: Finding, _ w: FindingCollector.SummaryWords) -> String {
        "\(f.actor) read \(f.length) bytes at \(w.at) under another encryption state than they were written in: garbage"
    }
}
