import Foundation
import TraceFormat

/// Findings a project has reviewed and accepted, by trace and fingerprint, each with the reason it was
/// accepted: the file `sev-trace check --baseline` reads and `--update-baseline` writes, kept in the
/// repository and reviewed like code.
///
/// ```json
/// {
///   "version": 1,
///   "accepted": [
///     {"trace": "Traces/race.sevtrace", "fingerprint": "3f…", "detector": "PRIVATE_TO_SHARED", "severity": "high",
///      "summary": "…", "reason": "the race the scenario demonstrates"}
///   ]
/// }
/// ```
/// A trace is named by its bundle's directory and the folder holding it (`Traces/race.sevtrace`). `detector`, `severity` and `summary` are there for
/// the reviewer; matching uses `trace` and `fingerprint` only. Entries are written sorted, so the file
/// changes only where the findings do.
public struct FindingBaseline: Equatable, Sendable {
    /// One accepted finding.
    public struct Entry: Equatable, Sendable {
        public var trace: String
        public var fingerprint: String
        public var detector: String
        public var severity: String
        public var summary: String
        public var reason: String

        public init(trace: String, fingerprint: String, detector: String, severity: String, summary: String, reason: String) {
            (self.trace, self.fingerprint, self.detector, self.severity, self.summary, self.reason) =
                (trace, fingerprint, detector, severity, summary, reason)
        }
    }

    /// The largest baseline file read.
    public static let maxBytes = 16 << 20

    public var entries: [Entry]

    public init(entries: [Entry] = []) { self.entries = entries }

    /// How a baseline names a trace: the bundle directory's name and that of the folder holding it
    /// (`Traces/race.sevtrace`, `detectors/race.sevtrace`), from its real path, so that the name does not
    /// depend on the directory a check runs in or on how the path was typed.
    public static func traceName(_ path: String) -> String {
        let real = realpath(path, nil).map { p in
            defer { free(p) }
            return String(cString: p)
        } ?? path
        return real.split(separator: "/").suffix(2).joined(separator: "/")
    }

    /// A problem with a baseline file, named by file and entry.
    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads the baseline at `path`, checking its size and every entry.
    public static func read(_ path: String) throws -> FindingBaseline {
        let data = Data(try InputFile.text(path, what: "baseline", limit: maxBytes).utf8)
        return try parse(data, name: path)
    }

    /// Parses a baseline document; `name` names it in errors.
    public static func parse(_ data: Data, name: String) throws -> FindingBaseline {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw Problem(description: "\(name): the baseline is not JSON")
        }
        guard let object = root as? [String: Any], object["version"] as? Int == 1, let list = object["accepted"] as? [Any] else {
            throw Problem(description: "\(name): a baseline is an object with \"version\": 1 and an \"accepted\" list")
        }
        var entries: [Entry] = []
        for (i, item) in list.enumerated() {
            guard let e = item as? [String: Any], let trace = e["trace"] as? String, let fingerprint = e["fingerprint"] as? String,
                  fingerprint.count == 16, fingerprint.allSatisfy(\.isHexDigit) else {
                throw Problem(description: "\(name): accepted entry \(i + 1) needs \"trace\" and a 16-digit hex \"fingerprint\"")
            }
            entries.append(Entry(trace: trace, fingerprint: fingerprint.lowercased(), detector: e["detector"] as? String ?? "",
                                 severity: e["severity"] as? String ?? "", summary: e["summary"] as? String ?? "",
                                 reason: e["reason"] as? String ?? ""))
        }
        return FindingBaseline(entries: entries)
    }

    /// The document, sorted by trace, detector and fingerprint.
    public func encoded() -> String {
        let sorted = entries.sorted { ($0.trace, $0.detector, $0.fingerprint, $0.summary) < ($1.trace, $1.detector, $1.fingerprint, $1.summary) }
        let lines = sorted.map { e in
            "    {\"trace\": \(MarkupText.json(e.trace)), \"fingerprint\": \(MarkupText.json(e.fingerprint)), "
                + "\"detector\": \(MarkupText.json(e.detector)), \"severity\": \(MarkupText.json(e.severity)),\n"
                + "     \"summary\": \(MarkupText.json(e.summary)),\n"
                + "     \"reason\": \(MarkupText.json(e.reason))}"
        }
        return "{\n  \"version\": 1,\n  \"accepted\": [\n" + lines.joined(separator: ",\n") + (lines.isEmpty ? "" : "\n") + "  ]\n}\n"
    }

    /// This baseline with `trace`'s entries replaced by `findings`, keeping the reason of every entry
    /// that stays (new ones get `reason`).
    public func updating(trace: String, with findings: [Finding], reason: String) -> FindingBaseline {
        var reasons: [String: [String]] = [:]
        for e in entries where e.trace == trace { reasons[e.fingerprint, default: []].append(e.reason) }
        var out = entries.filter { $0.trace != trace }
        for f in findings {
            let fp = f.fingerprint
            let kept = reasons[fp]?.isEmpty == false ? reasons[fp]!.removeFirst() : reason
            out.append(Entry(trace: trace, fingerprint: fp, detector: f.detector, severity: f.severity.description,
                             summary: f.summary, reason: kept))
        }
        return FindingBaseline(entries: out)
    }
}
