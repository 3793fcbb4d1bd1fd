import ArgumentParser
import Query
import TraceFormat

/// `sev-trace report`: one self-contained HTML file about a trace.
struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a self-contained HTML report of a trace: findings, memory maps, firmware log, exits, integrity.",
        discussion: "The file needs no network: styles are inline and pictures inline SVG. It appears only when complete.")

    @Argument(help: "The trace bundle.")
    var bundle: String

    @Option(name: .shortAndLong, help: "The HTML file to write.")
    var output: String

    @OptionGroup(title: "Progress")
    var progressOptions: ProgressOptions

    func run() throws {
        let b = try TraceBundle(existing: bundle)
        let line = progressOptions.line("report")
        defer { line.finish() }
        let html = try HTMLReport().render(b)
        try Export.staged(output) { out in out.write(html) }
        line.finish()
        if !progressOptions.quiet { Console.line("report: \(output)") }
    }
}
