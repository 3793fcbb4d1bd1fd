import ArgumentParser
import TraceFormat

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every chunk's checksum and events, and the index against the events.")

    @Argument(help: "The trace bundle.")
    var bundle: String

    @OptionGroup(title: "Progress")
    var progressOptions: ProgressOptions

    func run() throws {
        let b = try TraceBundle(existing: bundle)
        let line = progressOptions.line("verify")
        defer { line.finish() }
        do {
            let r = try TraceVerifier.verify(b)
            line.finish()
            if !progressOptions.quiet { Console.line("ok: \(r.chunks) chunk\(r.chunks == 1 ? "" : "s"), \(r.events) events, index consistent, \(r.findings) finding\(r.findings == 1 ? "" : "s")") }
        } catch let e as TraceError {
            throw CheckFailed(message: e.description)
        } catch let e as TraceVerifier.Failure {
            throw CheckFailed(message: e.message)
        }
    }
}
