import ArgumentParser
import Foundation
import Query
import TraceFormat

struct Query: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the SQL in a file against a trace's index (read-only).",
        discussion: "Tables are documented in Queries/README.md. The events virtual table decodes events from events.zst on demand. Rows are printed as SQLite returns them; Ctrl-C stops a query cleanly.")

    /// The largest SQL file read.
    static let maxSQLBytes = 16 << 20

    @Argument(help: "The trace bundle.")
    var bundle: String

    @Argument(help: "A file of SQL statements.")
    var sqlFile: String

    @Option(help: "Output format: table, csv or json.")
    var format: String = "table"

    @Option(help: "Stop a query file that runs longer than this many seconds (0: no limit).")
    var timeout: Double = 300

    func run() throws {
        guard let fmt = OutputFormat(rawValue: format) else {
            throw InputError(description: "unknown format '\(format)'; use table, csv or json")
        }
        guard timeout >= 0, timeout.isFinite else { throw InputError(description: "--timeout takes a number of seconds, 0 for none") }
        let sql = try InputFile.text(sqlFile, what: "SQL file", limit: Self.maxSQLBytes)
        let engine = try QueryEngine(bundle: try TraceBundle(existing: bundle))
        signal(SIGINT) { _ in QueryInterrupt.raise() }
        // A parent may have started us with SIGINT blocked; Ctrl-C must still reach the handler.
        var interrupt = sigset_t()
        sigemptyset(&interrupt)
        sigaddset(&interrupt, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &interrupt, nil)
        defer { signal(SIGINT, SIG_DFL) }
        let out = BufferedOutput()
        do {
            try engine.run(sql, file: sqlFile, into: fmt.writer(out.write),
                           limits: QueryLimits(timeout: timeout == 0 ? nil : .milliseconds(Int64(timeout * 1000))))
            out.flush()
        } catch {
            out.flush()
            if QueryInterrupt.isRaised {
                Console.error(error.description)
                throw ExitCode(130)
            }
            throw QueryFailure(description: error.description)
        }
    }
}

/// Standard output in 64 KiB writes, so that streaming a large result costs no write per row.
final class BufferedOutput {
    private var buffer: [UInt8] = []

    init() { buffer.reserveCapacity(1 << 16) }

    func write(_ s: String) {
        buffer.append(contentsOf: s.utf8)
        if buffer.count >= 1 << 16 { flush() }
    }

    func flush() {
        guard !buffer.isEmpty else { return }
        FileHandle.standardOutput.write(Data(buffer))
        buffer.removeAll(keepingCapacity: true)
    }
}
