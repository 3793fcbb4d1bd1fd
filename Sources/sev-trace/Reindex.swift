import Analyzer
import ArgumentParser
import TraceFormat

struct Reindex: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rebuild index.sqlite from events.zst, then analyze; with --salvage, keep the complete chunks of a torn trace.",
        discussion: "The new index replaces the old one only when it is complete and analyzed. --salvage takes a bundle whose events.zst ends inside a chunk or has a damaged chunk (or what a stopped `record` left in NAME.sevtrace.tmp) and writes a bundle of every chunk before the damage, reporting what was cut.")

    @Argument(help: "The trace bundle (or, with --salvage, a recording's leftover NAME.sevtrace.tmp).")
    var bundle: String

    @Flag(help: "Keep every complete chunk and cut the torn or damaged tail.")
    var salvage = false

    @Option(name: .shortAndLong, help: "With --salvage: where to write the salvaged bundle (default: in place).")
    var output: String?

    @OptionGroup(title: "Analysis limits")
    var analysis: AnalysisOptions

    @OptionGroup(title: "Progress")
    var progressOptions: ProgressOptions

    func run() throws {
        let b = try TraceBundle(existing: bundle)
        var findings: [Finding] = []
        let line = progressOptions.line("reindex")
        defer { line.finish() }
        guard salvage else {
            if output != nil { throw InputError(description: "-o goes with --salvage") }
            try b.rebuildIndex { index in findings = try analysis.analyzer().analyze(b, storingIn: index) }
            line.finish()
            guard !progressOptions.quiet else { return }
            Console.line("rebuilt \(b.indexPath)")
            FindingPrinter.print(findings)
            return
        }
        let report = try TraceSalvage.salvage(b, to: output ?? bundle) { staging in
            findings = try analysis.analyzer().analyze(staging, storingIn: TraceIndex(path: staging.indexPath, writable: true))
        }
        line.finish()
        guard !progressOptions.quiet else { return }
        Console.line("salvaged \(report.chunks) complete chunk\(report.chunks == 1 ? "" : "s") (\(report.events) events) into \(report.bundle.path)")
        if let cut = report.cut {
            Console.line("cut \(report.cutBytes) bytes: \(cut)")
        }
        FindingPrinter.print(findings)
    }
}
