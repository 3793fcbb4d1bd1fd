import ArgumentParser
import Scenario
import TraceFormat

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-run the simulation a trace stores and compare it with the recording, chunk by chunk.",
        discussion: "Prints `identical` and exits 0, or prints the first differing event as recorded and as replayed and exits 1.")

    @Argument(help: "The trace bundle.")
    var bundle: String

    @OptionGroup(title: "Limits")
    var limitOptions: LimitOptions

    @OptionGroup(title: "Progress")
    var progressOptions: ProgressOptions

    func run() throws {
        let line = progressOptions.line("replay")
        defer { line.finish() }
        let outcome = try Replayer.replay(try TraceBundle(existing: bundle), limits: limitOptions.limits)
        line.finish()
        switch outcome {
        case .identical(let events):
            if !progressOptions.quiet { Console.line("identical (\(events) events)") }
        case .diverged(let seq, let recorded, let replayed):
            Console.line("recorded: " + (recorded.map(EventFormatter.line) ?? "(the recording ends here)"))
            Console.line("replayed: " + (replayed.map(EventFormatter.line) ?? "(the replay ends here)"))
            throw CheckFailed(message: "replay diverged at event #\(seq)")
        }
    }
}
