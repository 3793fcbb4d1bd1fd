import Analyzer
import ArgumentParser
import TraceFormat

struct Reindex: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rebuild index.sqlite from events.zst (for example after a recorder was killed), then analyze.")

    @Argument(help: "The trace bundle.")
    var bundle: String

    func run() throws {
        let b = try TraceBundle(existing: bundle)
        try b.rebuildIndex()
        let findings = try AnalysisRun.run(b, detectors: Set(Detector.allCases))
        Console.line("rebuilt \(b.indexPath)")
        FindingPrinter.print(findings)
    }
}
