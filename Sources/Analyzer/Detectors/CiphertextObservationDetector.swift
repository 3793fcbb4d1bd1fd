import TraceFormat

/// CIPHERTEXT_OBSERVATION: a device or the hypervisor read a block DRAM holds encrypted under a guest
/// key: it got ciphertext, not the data (low). Reading the same block again is medium: ciphertext
/// compared over time reveals when the plaintext repeats (CipherLeaks' dictionary attack).
final class CiphertextObservationDetector: ContextDetector, AccessDetector {
    static let detector = Detector.ciphertextObservation
    /// Addresses of private memory whose ciphertext the host or a device has read.
    private var observed: Set<UInt64> = []

    /// A host or device read of a block stored encrypted.
    func read(_ a: MemoryAccess, seq: UInt64) {
        let repeated = !observed.insert(a.spa).inserted
        context.reportAccess(Self.detector, repeated ? .medium : .low, a, seq: seq, sourceSeq: seq, sourceSPA: a.spa,
                             plaintext: false, summary: Self.summary)
    }

    static func summary(_ f: Finding, _ w: FindingCollector.SummaryWords) -> String {
        f.severity > .low
            ? "\(f.actor) read \(f.length) bytes of ciphertext of \(w.vm) at \(w.at) again: comparing ciphertext over time is a dictionary attack (CipherLeaks)"
            : "\(f.actor) read \(f.length) bytes of ciphertext of \(w.vm) at \(w.at)"
    }
}
