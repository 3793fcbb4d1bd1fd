import Analyzer
import ArgumentParser
import Foundation
import TraceFormat

/// Checks committed traces in CI: analyzes each afresh in memory (nothing in a bundle is written) and
/// compares the findings with a baseline of accepted ones, or with those the trace stores.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Analyze traces afresh, without writing them, and compare their findings with a baseline.",
        discussion: """
            Each finding is matched by its fingerprint (see Queries/README.md). With --baseline, a finding \
            the baseline does not accept for that trace is new; without one, a finding the trace's index \
            does not store is new. Exits 1 when a new finding has the --fail-on severity or worse, printing \
            what is new, what disappeared and what changed. --update-baseline rewrites the baseline with \
            every finding of the traces checked (keeping the reasons of those that stay) and exits 0.
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json, junit, sarif
    }

    @Argument(help: "The trace bundles.")
    var bundles: [String]

    @Option(help: "The baseline file of accepted findings (JSON).")
    var baseline: String?

    @Flag(help: "Write every finding of these traces into the --baseline file as accepted.")
    var updateBaseline = false

    @Option(help: "Fail on new findings of this severity or worse (info, low, medium, high, critical).")
    var failOn: String = "info"

    @Option(help: "Output: text, json (one document), junit (XML, one test case per trace) or sarif (SARIF 2.1.0).")
    var format: Format = .text

    @Option(help: "Comma-separated detector ids to run (default: all); only their findings are compared.")
    var detectors: String?

    @Option(help: "SQL rules to run as well: a directory of *.sql files (Queries/detectors) or one file.")
    var rules: String?

    @Flag(help: "Print nothing; the exit status and an error line say whether the check passed.")
    var quiet = false

    @OptionGroup(title: "Analysis limits")
    var analysis: AnalysisOptions

    func validate() throws {
        guard !bundles.isEmpty else { throw ValidationError("give at least one trace bundle") }
        if updateBaseline && baseline == nil { throw ValidationError("--update-baseline needs --baseline FILE") }
    }

    /// One trace's outcome.
    struct Outcome {
        var path: String
        var trace: String
        var findings: [Finding]
        var comparison: FindingComparison
        var failing: [Finding]
    }

    func run() throws {
        let selected = try AnalysisOptions.detectors(detectors)
        let rules = try AnalysisOptions.rules(self.rules)
        let names = Set(selected.map(\.rawValue) + rules.map(\.id))
        let threshold = try AnalysisOptions.severity(failOn)
        var accepted: FindingBaseline?
        if let baseline {
            accepted = FileManager.default.fileExists(atPath: baseline) || !updateBaseline
                ? try FindingBaseline.read(baseline) : FindingBaseline()
        }
        var outcomes: [Outcome] = []
        for path in bundles {
            let bundle = try TraceBundle(existing: path)
            let fresh = try analysis.analyzer(detectors: selected).analyze(bundle, rules: rules)
            let stored = try bundle.index().findings().filter { names.contains($0.detector) }
            let trace = Self.traceName(path)
            let reference = accepted.map { b in
                b.entries.filter { $0.trace == trace && (names.contains($0.detector) || $0.detector.isEmpty) }
                    .map { ($0.fingerprint, $0.detector, $0.summary) }
            } ?? stored.map { ($0.fingerprint, $0.detector, $0.summary) }
            let comparison = FindingComparison(fresh: fresh, reference: reference, stored: stored)
            outcomes.append(Outcome(path: path, trace: trace, findings: fresh, comparison: comparison,
                                    failing: comparison.failing(at: threshold)))
            if updateBaseline {
                accepted = accepted!.updating(trace: trace, with: fresh, reason: "accepted with --update-baseline; say why")
            }
        }
        if updateBaseline, let baseline, let accepted {
            try Self.writeAtomically(accepted.encoded(), to: baseline)
            if !quiet { Console.line("baseline: \(printable(baseline)) accepts \(accepted.entries.count) finding(s)") }
            return
        }
        if !quiet {
            switch format {
            case .text: Self.printText(outcomes, threshold: threshold)
            case .json: Console.write(Self.json(outcomes, threshold: threshold))
            case .junit: Console.write(Self.junit(outcomes, threshold: threshold))
            case .sarif:
                let described = selected.sorted { $0.rawValue < $1.rawValue }.map { ($0.rawValue, $0.summary) }
                    + rules.map { ($0.id, $0.summary) }
                Console.write(SARIFReport(rules: described).document(outcomes.map {
                    SARIFReport.Trace(path: $0.path, findings: $0.findings, new: Set($0.comparison.new.map(\.fingerprint)))
                }))
            }
        }
        let failing = outcomes.reduce(0) { $0 + $1.failing.count }
        if failing > 0 {
            throw CheckFailed(message: "\(failing) new finding(s) of severity \(threshold) or worse in \(outcomes.filter { !$0.failing.isEmpty }.count) trace(s)")
        }
    }

    /// How a baseline names a trace: the bundle directory's name and that of the folder holding it
    /// (`Traces/race.sevtrace`, `detectors/race.sevtrace`), from its real path, so that the name does not
    /// depend on the directory `check` runs in or on how the path was typed.
    static func traceName(_ path: String) -> String {
        let real = realpath(path, nil).map { p in
            defer { free(p) }
            return String(cString: p)
        } ?? path
        return real.split(separator: "/").suffix(2).joined(separator: "/")
    }

    static func writeAtomically(_ text: String, to path: String) throws {
        let tmp = path + ".tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: Data(text.utf8)) else {
            throw InputError(description: "\(path): cannot write the baseline")
        }
        guard rename(tmp, path) == 0 else {
            unlink(tmp)
            throw InputError(description: "\(path): cannot write the baseline")
        }
    }

    static func line(_ f: Finding) -> String {
        let sev = f.severity.description.padding(toLength: 9, withPad: " ", startingAt: 0)
        return printable("\(sev)\(f.detector) \(f.fingerprint) \(f.summary)")
    }

    static func printText(_ outcomes: [Outcome], threshold: Severity) {
        for o in outcomes {
            let c = o.comparison
            Console.line(printable("\(o.path): \(o.findings.count) finding(s), \(c.new.count) new, \(c.disappeared.count) disappeared, \(c.changed.count) changed"))
            for f in c.new { Console.line("  new       " + line(f)) }
            for d in c.disappeared { Console.line(printable("  gone      \(d.detector) \(d.fingerprint) \(d.summary)")) }
            for (f, s) in c.changed {
                Console.line("  changed   " + line(f) + " (stored: \(s.severity), \(s.length) bytes, \(s.occurrences) times)")
            }
        }
        let new = outcomes.reduce(0) { $0 + $1.comparison.new.count }
        let failing = outcomes.reduce(0) { $0 + $1.failing.count }
        Console.line("check: \(outcomes.count) trace(s), \(new) new finding(s), \(failing) of severity \(threshold) or worse")
    }

    static func jsonFinding(_ f: Finding) -> String {
        "{\"fingerprint\": \(MarkupText.json(f.fingerprint)), \"detector\": \(MarkupText.json(f.detector)), "
            + "\"severity\": \(MarkupText.json(f.severity.description)), \"vm\": \(f.vm == MemoryAccess.noVM ? "null" : String(f.vm)), "
            + "\"actor\": \(MarkupText.json(f.actor)), \"source_seq\": \(f.sourceSeq), \"sink_seq\": \(f.sinkSeq), "
            + "\"sink_last_seq\": \(f.sinkLastSeq), \"sink_gpa\": \(f.sinkGPA), \"length\": \(f.length), "
            + "\"occurrences\": \(f.occurrences), \"labels\": \(MarkupText.json(f.labels)), "
            + "\"preview\": \(MarkupText.json(f.preview)), \"summary\": \(MarkupText.json(f.summary))}"
    }

    static func json(_ outcomes: [Outcome], threshold: Severity) -> String {
        let traces = outcomes.map { o in
            let c = o.comparison
            return "    {\"trace\": \(MarkupText.json(o.trace)), \"path\": \(MarkupText.json(o.path)), \"failed\": \(!o.failing.isEmpty),\n"
                + "     \"findings\": [" + o.findings.map(jsonFinding).joined(separator: ", ") + "],\n"
                + "     \"new\": [" + c.new.map { MarkupText.json($0.fingerprint) }.joined(separator: ", ") + "],\n"
                + "     \"disappeared\": [" + c.disappeared.map { MarkupText.json($0.fingerprint) }.joined(separator: ", ") + "],\n"
                + "     \"changed\": [" + c.changed.map { MarkupText.json($0.fresh.fingerprint) }.joined(separator: ", ") + "]}"
        }
        let failed = outcomes.contains { !$0.failing.isEmpty }
        return "{\n  \"tool\": \"sev-trace\", \"version\": \(MarkupText.json(ToolVersion.current)), "
            + "\"fail_on\": \(MarkupText.json(threshold.description)), \"failed\": \(failed),\n"
            + "  \"traces\": [\n" + traces.joined(separator: ",\n") + (traces.isEmpty ? "" : "\n") + "  ]\n}\n"
    }

    static func junit(_ outcomes: [Outcome], threshold: Severity) -> String {
        let failures = outcomes.filter { !$0.failing.isEmpty }.count
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<testsuites name=\"sev-trace check\" tests=\"\(outcomes.count)\" failures=\"\(failures)\">\n"
        out += "  <testsuite name=\"sev-trace check\" tests=\"\(outcomes.count)\" failures=\"\(failures)\" errors=\"0\" skipped=\"0\">\n"
        for o in outcomes {
            out += "    <testcase classname=\"sev-trace.check\" name=\(quoted(o.trace)) file=\(quoted(o.path))"
            if o.failing.isEmpty {
                out += " />\n"
                continue
            }
            out += ">\n      <failure type=\"new-findings\" message=\(quoted("\(o.failing.count) new finding(s) of severity \(threshold) or worse"))>"
            out += MarkupText.xml(o.failing.map(line).joined(separator: "\n"))
            out += "</failure>\n    </testcase>\n"
        }
        return out + "  </testsuite>\n</testsuites>\n"
    }

    private static func quoted(_ s: String) -> String { "\"" + MarkupText.xml(s) + "\"" }
}
