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

    @Argument(help: "The trace bundles.")
    var bundles: [String]

    @Option(help: "The baseline file of accepted findings (JSON).")
    var baseline: String?

    @Flag(help: "Write every finding of these traces into the --baseline file as accepted.")
    var updateBaseline = false

    @Option(help: "Fail on new findings of this severity or worse (info, low, medium, high, critical).")
    var failOn: String = "info"

    @Option(help: "Output: text, json (one document), junit (XML, one test case per trace) or sarif (SARIF 2.1.0).")
    var format: FindingReport.Format = .text

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
        var outcomes: [FindingReport.Trace] = []
        for path in bundles {
            let bundle = try TraceBundle(existing: path)
            let fresh = try analysis.analyzer(detectors: selected).analyze(bundle, rules: rules)
            let stored = try bundle.index().findings().filter { names.contains($0.detector) }
            let trace = FindingBaseline.traceName(path)
            let reference = accepted.map { b in
                b.entries.filter { $0.trace == trace && (names.contains($0.detector) || $0.detector.isEmpty) }
                    .map { ($0.fingerprint, $0.detector, $0.summary) }
            } ?? stored.map { ($0.fingerprint, $0.detector, $0.summary) }
            let comparison = FindingComparison(fresh: fresh, reference: reference, stored: stored)
            outcomes.append(FindingReport.Trace(path: path, name: trace, findings: fresh, comparison: comparison,
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
            let report = FindingReport(traces: outcomes, threshold: threshold, detectors: selected, rules: rules)
            Console.write(report.render(format))
        }
        let failing = outcomes.reduce(0) { $0 + $1.failing.count }
        if failing > 0 {
            throw CheckFailed(message: "\(failing) new finding(s) of severity \(threshold) or worse in \(outcomes.filter { !$0.failing.isEmpty }.count) trace(s)")
        }
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
}
