import Analyzer
import ArgumentParser
import Foundation
import Scenario
import TraceFormat

/// The `sev-trace` command line. Every command parses its arguments and calls into the libraries.
@main
struct SevTrace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sev-trace",
        abstract: "Simulate AMD SEV end to end, record it into an indexed trace, and find where guest data escapes.",
        version: ToolVersion.current,
        subcommands: [Record.self, Analyze.self, Query.self, Replay.self, Diff.self, Verify.self, Dump.self, Reindex.self,
                      Measure.self, Session.self, Certs.self, Bench.self, Check.self, Export.self, Mem.self, LaunchReport.self, Report.self, Manual.self])

    /// Runs the command; every error becomes one line on stderr and an exit status: 1 for a check that
    /// failed, 2 for bad usage or input.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let failure as CheckFailed {
            Console.error(failure.message)
            Foundation.exit(1)
        } catch let e as ScenarioError {
            Console.line(printable(e.description), to: .standardError)
            Foundation.exit(2)
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }  // --help, --version
            let message: String
            if error is TraceError || error is SQLiteError || error is QueryFailure || error is InputError || error is AnalysisLimitError {
                message = "\(error)"
            } else {
                message = Self.message(for: error)
            }
            let first = message.split(separator: "\n").first.map(String.init) ?? message
            Console.error(first.hasPrefix("Error: ") ? String(first.dropFirst(7)) : first)
            Foundation.exit(2)
        }
    }
}

/// A check that ran and failed (exit 1).
struct CheckFailed: Error {
    var message: String
}

/// Bad input that is not a scenario or trace error (exit 2).
struct InputError: Error, CustomStringConvertible {
    var description: String
}

/// A query that SQLite rejected.
struct QueryFailure: Error, CustomStringConvertible {
    var description: String
}

/// Output helpers.
enum Console {
    enum Stream { case standardOutput, standardError }

    static func line(_ s: String, to stream: Stream = .standardOutput) {
        let data = Data((s + "\n").utf8)
        switch stream {
        case .standardOutput: FileHandle.standardOutput.write(data)
        case .standardError: FileHandle.standardError.write(data)
        }
    }

    static func write(_ s: String) { FileHandle.standardOutput.write(Data(s.utf8)) }

    /// One line on stderr beginning `error:`, with any control character of the message (which may
    /// quote a hostile scenario, trace or query) shown as an escape instead of reaching the terminal.
    static func error(_ s: String) { line("error: " + printable(s), to: .standardError) }

}
