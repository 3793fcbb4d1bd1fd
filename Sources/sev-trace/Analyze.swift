import Analyzer
import ArgumentParser
import TraceFormat

struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay a trace through the taint analyzer and rewrite its findings.",
        discussion: "The findings table of index.sqlite is the only part of a bundle this command writes. Detectors: "
            + Detector.allCases.map { "\($0.rawValue) (\($0.summary))" }.joined(separator: "; ") + ".")

    @Argument(help: "The trace bundle.")
    var bundle: String

    @Option(help: "Comma-separated detector ids to run (default: all). The other detectors' stored findings stay.")
    var detectors: String?

    @Option(help: "SQL rules to run as well: a directory of *.sql files (Queries/detectors) or one file.")
    var rules: String?

    @Option(help: "Exit 1 when a finding of this severity or worse exists (info, low, medium, high, critical).")
    var failOn: String?

    @Option(help: "Output: text, json (one document), junit (XML: the trace as one test case, failed by --fail-on) or sarif (SARIF 2.1.0).")
    var format: FindingReport.Format = .text

    @OptionGroup(title: "Progress")
    var progressOptions: ProgressOptions

    @OptionGroup(title: "Analysis limits")
    var analysis: AnalysisOptions

    func run() throws {
        let selected = try AnalysisOptions.detectors(detectors)
        let threshold = try failOn.map(AnalysisOptions.severity)
        let rules = try AnalysisOptions.rules(self.rules)
        let line = progressOptions.line("analyze")
        let findings = try analysis.analyzer(detectors: selected).analyzeAndStore(try TraceBundle(existing: bundle), rules: rules)
        line.finish()
        if !progressOptions.quiet {
            if format == .text {
                FindingPrinter.print(findings)
            } else {
                let failing = threshold.map { t in findings.filter { $0.severity >= t } } ?? []
                let trace = FindingReport.Trace(path: bundle, name: FindingBaseline.traceName(bundle), findings: findings, comparison: nil,
                                                failing: failing)
                Console.write(FindingReport(traces: [trace], threshold: threshold, detectors: selected, rules: rules).render(format))
            }
        }
        if let threshold, let worst = findings.map(\.severity).max(), worst >= threshold {
            throw CheckFailed(message: "\(findings.filter { $0.severity >= threshold }.count) finding(s) of severity \(threshold) or worse")
        }
    }
}

/// Prints findings for people.
enum FindingPrinter {
    static func print(_ findings: [Finding]) {
        guard !findings.isEmpty else {
            Console.line("findings: none")
            return
        }
        Console.line("findings (\(findings.count)):")
        for f in findings {
            let sev = f.severity.description.padding(toLength: 9, withPad: " ", startingAt: 0)
            let det = f.detector.padding(toLength: 25, withPad: " ", startingAt: 0)
            let preview = f.preview.isEmpty ? "" : " [\(f.preview)]"
            let times = f.occurrences > 1 ? " (\(f.occurrences) times, last #\(f.sinkLastSeq))" : ""
            Console.line(printable("  \(sev)\(det)\(f.summary)\(preview) (events #\(f.sourceSeq) -> #\(f.sinkSeq))\(times) {\(f.fingerprint)}"))
        }
    }
}
