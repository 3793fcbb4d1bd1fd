import Analyzer
import ArgumentParser
import Query
import TraceFormat

/// Findings of one or more traces written for people (text) or machines (JSON, JUnit XML, SARIF), as
/// `check` and `analyze` print them.
struct FindingReport {
    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json, junit, sarif
    }

    /// One trace's findings, and how they compare with what was expected when there was a comparison.
    struct Trace {
        var path: String
        /// The name a baseline knows the trace by.
        var name: String
        var findings: [Finding]
        var comparison: FindingComparison?
        /// The findings that fail the run.
        var failing: [Finding]
    }

    var traces: [Trace]
    /// The severity at which findings fail the run (nil: nothing fails).
    var threshold: Severity?
    var detectors: Set<Detector>
    var rules: [SQLRule]

    func render(_ format: Format) -> String {
        switch format {
        case .text: text()
        case .json: json()
        case .junit: junit()
        case .sarif: sarif()
        }
    }

    static func line(_ f: Finding) -> String {
        let sev = f.severity.description.padding(toLength: 9, withPad: " ", startingAt: 0)
        return printable("\(sev)\(f.detector) \(f.fingerprint) \(f.summary)")
    }

    func text() -> String {
        var out: [String] = []
        for t in traces {
            guard let c = t.comparison else {
                out.append(printable("\(t.path): \(t.findings.count) finding(s)"))
                out += t.findings.map { "  " + Self.line($0) }
                continue
            }
            out.append(printable("\(t.path): \(t.findings.count) finding(s), \(c.new.count) new, \(c.disappeared.count) disappeared, \(c.changed.count) changed"))
            for f in c.new { out.append("  new       " + Self.line(f)) }
            for d in c.disappeared { out.append(printable("  gone      \(d.detector) \(d.fingerprint) \(d.summary)")) }
            for (f, s) in c.changed {
                out.append("  changed   " + Self.line(f) + " (stored: \(s.severity), \(s.length) bytes, \(s.occurrences) times)")
            }
        }
        let failing = traces.reduce(0) { $0 + $1.failing.count }
        if traces.contains(where: { $0.comparison != nil }) {
            let new = traces.reduce(0) { $0 + ($1.comparison?.new.count ?? 0) }
            out.append("check: \(traces.count) trace(s), \(new) new finding(s), \(failing) of severity \(threshold ?? .info) or worse")
        }
        return out.map { $0 + "\n" }.joined()
    }

    static func jsonFinding(_ f: Finding) -> String {
        let j = MarkupText.json
        return "{\"fingerprint\": \(j(f.fingerprint)), \"detector\": \(j(f.detector)), "
            + "\"severity\": \(j(f.severity.description)), \"vm\": \(f.vm == MemoryAccess.noVM ? "null" : String(f.vm)), "
            + "\"actor\": \(j(f.actor)), \"source_seq\": \(f.sourceSeq), \"sink_seq\": \(f.sinkSeq), "
            + "\"sink_last_seq\": \(f.sinkLastSeq), \"sink_gpa\": \(f.sinkGPA), \"length\": \(f.length), "
            + "\"occurrences\": \(f.occurrences), \"labels\": \(j(f.labels)), "
            + "\"preview\": \(j(f.preview)), \"summary\": \(j(f.summary))}"
    }

    func json() -> String {
        let j = MarkupText.json
        let list = traces.map { t in
            var fields = "    {\"trace\": \(j(t.name)), \"path\": \(j(t.path)), \"failed\": \(!t.failing.isEmpty),\n"
                + "     \"findings\": [" + t.findings.map(Self.jsonFinding).joined(separator: ", ") + "]"
            if let c = t.comparison {
                fields += ",\n     \"new\": [" + c.new.map { j($0.fingerprint) }.joined(separator: ", ") + "],\n"
                    + "     \"disappeared\": [" + c.disappeared.map { j($0.fingerprint) }.joined(separator: ", ") + "],\n"
                    + "     \"changed\": [" + c.changed.map { j($0.fresh.fingerprint) }.joined(separator: ", ") + "]"
            }
            return fields + "}"
        }
        let failed = traces.contains { !$0.failing.isEmpty }
        return "{\n  \"tool\": \"sev-trace\", \"version\": \(j(ToolVersion.current)), "
            + "\"fail_on\": \(threshold.map { j($0.description) } ?? "null"), \"failed\": \(failed),\n"
            + "  \"traces\": [\n" + list.joined(separator: ",\n") + (list.isEmpty ? "" : "\n") + "  ]\n}\n"
    }

    func junit() -> String {
        let quoted = { (s: String) in "\"" + MarkupText.xml(s) + "\"" }
        let failures = traces.filter { !$0.failing.isEmpty }.count
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<testsuites name=\"sev-trace\" tests=\"\(traces.count)\" failures=\"\(failures)\">\n"
        out += "  <testsuite name=\"sev-trace\" tests=\"\(traces.count)\" failures=\"\(failures)\" errors=\"0\" skipped=\"0\">\n"
        for t in traces {
            out += "    <testcase classname=\"sev-trace.findings\" name=\(quoted(t.name)) file=\(quoted(t.path))"
            if t.failing.isEmpty {
                out += " />\n"
                continue
            }
            let what = t.comparison == nil ? "finding(s)" : "new finding(s)"
            out += ">\n      <failure type=\"findings\" message=\(quoted("\(t.failing.count) \(what) of severity \(threshold ?? .info) or worse"))>"
            out += MarkupText.xml(t.failing.map(Self.line).joined(separator: "\n"))
            out += "</failure>\n    </testcase>\n"
        }
        return out + "  </testsuite>\n</testsuites>\n"
    }

    func sarif() -> String {
        let described = detectors.sorted { $0.rawValue < $1.rawValue }.map { ($0.rawValue, $0.summary) }
            + rules.map { ($0.id, $0.summary) }
        return SARIFReport(rules: described).document(traces.map {
            SARIFReport.Trace(path: $0.path, findings: $0.findings, new: $0.comparison.map { Set($0.new.map(\.fingerprint)) })
        })
    }
}
