import TraceFormat

/// How a trace's findings, analyzed afresh, compare with what it is expected to have: a baseline's
/// accepted findings when there is one, else the findings stored in its index. Findings are matched by
/// fingerprint, counting repeats.
public struct FindingComparison: Sendable {
    /// Findings of the fresh analysis that the reference does not have.
    public var new: [Finding] = []
    /// Fingerprints the reference has that the fresh analysis does not, with the reference's summary.
    public var disappeared: [(fingerprint: String, detector: String, summary: String)] = []
    /// Findings present in both whose severity, length or count differ from the stored ones.
    public var changed: [(fresh: Finding, stored: Finding)] = []

    /// Compares `fresh` with `reference` (fingerprint → detector and summary, one element per expected
    /// finding), and with `stored` for what changed.
    public init(fresh: [Finding], reference: [(fingerprint: String, detector: String, summary: String)], stored: [Finding]) {
        var remaining: [String: Int] = [:]
        for r in reference { remaining[r.fingerprint, default: 0] += 1 }
        var seen: [String: Int] = [:]
        for f in fresh {
            let fp = f.fingerprint
            seen[fp, default: 0] += 1
            if let n = remaining[fp], n > 0 { remaining[fp] = n - 1 } else { new.append(f) }
        }
        var counted: [String: Int] = [:]
        for r in reference {
            counted[r.fingerprint, default: 0] += 1
            if counted[r.fingerprint]! > seen[r.fingerprint, default: 0] { disappeared.append(r) }
        }
        var storedByFingerprint: [String: [Finding]] = [:]
        for s in stored { storedByFingerprint[s.fingerprint, default: []].append(s) }
        for f in fresh {
            guard var list = storedByFingerprint[f.fingerprint], !list.isEmpty else { continue }
            let s = list.removeFirst()
            storedByFingerprint[f.fingerprint] = list
            if s.severity != f.severity || s.length != f.length || s.occurrences != f.occurrences { changed.append((f, s)) }
        }
    }

    /// New findings of `threshold` or worse: what fails a check.
    public func failing(at threshold: Severity) -> [Finding] { new.filter { $0.severity >= threshold } }
}
