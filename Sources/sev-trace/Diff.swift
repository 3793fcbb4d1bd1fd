import ArgumentParser
import TraceFormat

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare the events of two traces.",
        discussion: "Says which header fields differ (scenario, seed, tool version), then prints `identical` and exits 0, or prints the first differing event of each trace and exits 1.")

    @Argument(help: "The first trace bundle.")
    var left: String

    @Argument(help: "The second trace bundle.")
    var right: String

    func run() throws {
        let a = try TraceBundle(existing: left).reader(), b = try TraceBundle(existing: right).reader()
        let (ha, hb) = (a.header, b.header)
        if ha.scenarioText != hb.scenarioText { Console.line("scenario: \(ha.scenarioName) and \(hb.scenarioName) differ") }
        if ha.seed != hb.seed { Console.line("seed: \(ha.seed) and \(hb.seed)") }
        if ha.toolVersion != hb.toolVersion { Console.line("tool: \(ha.toolVersion) and \(hb.toolVersion)") }
        switch try TraceDiff.compare(a, b) {
        case .identical(let events):
            Console.line("identical (\(events) events)")
        case .differ(let seq, let x, let y):
            Console.line("\(left): " + (x.map(EventFormatter.line) ?? "(ends here)"))
            Console.line("\(right): " + (y.map(EventFormatter.line) ?? "(ends here)"))
            throw CheckFailed(message: "the traces differ at event #\(seq)")
        }
    }
}
