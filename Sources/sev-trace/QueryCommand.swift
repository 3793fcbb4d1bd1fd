import ArgumentParser
import Foundation
import Query
import TraceFormat

struct Query: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run SQL against a trace's index (read-only), from a file, from -c or from standard input.",
        discussion: "Tables are documented in Queries/README.md. The events virtual table decodes events from events.zst on demand. Rows are printed as SQLite returns them; Ctrl-C stops a query cleanly. TEMP tables and views may be made (in memory, never beside the trace); the trace itself is never written.")

    /// The largest SQL file read.
    static let maxSQLBytes = 16 << 20

    @Argument(help: "The trace bundle.")
    var bundle: String

    @Argument(help: "A file of SQL statements; - or nothing (without -c) reads standard input.")
    var sqlFile: String?

    @Option(name: [.customShort("c"), .customLong("command")], help: "The SQL to run, instead of a file.")
    var command: String?

    @Option(name: .customLong("param"), help: ArgumentHelp(
        "Bind NAME=VALUE to :NAME in every statement: an integer when VALUE is one (decimal or 0x hex), text otherwise. Repeatable.",
        valueName: "NAME=VALUE"))
    var params: [String] = []

    @Option(help: "Output format: table, csv, json or jsonl.")
    var format: String = "table"

    @Option(help: "Stop a query file that runs longer than this many seconds (0: no limit).")
    var timeout: Double = 300

    @OptionGroup(title: "Progress")
    var progressOptions: ProgressOptions

    func run() throws {
        guard let fmt = OutputFormat(rawValue: format) else {
            throw InputError(description: "unknown format '\(format)'; use table, csv, json or jsonl")
        }
        guard timeout >= 0, timeout.isFinite else { throw InputError(description: "--timeout takes a number of seconds, 0 for none") }
        let (sql, source) = try readSQL()
        let parameters = try Self.parameters(params)
        let engine = try QueryEngine(bundle: try TraceBundle(existing: bundle), temporary: true)
        QueryInterrupt.arm()
        signal(SIGINT) { _ in QueryInterrupt.raise() }
        // A parent may have started us with SIGINT blocked; Ctrl-C must still reach the handler.
        var interrupt = sigset_t()
        sigemptyset(&interrupt)
        sigaddset(&interrupt, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &interrupt, nil)
        defer { signal(SIGINT, SIG_DFL) }
        // Progress shows how far a long scan of events has come, until the first output: then the rows
        // take the terminal.
        let line = progressOptions.line("query")
        defer { line.finish() }
        let out = BufferedOutput()
        do {
            try engine.run(sql, file: source, into: fmt.writer(statements: QueryEngine.statementCount(sql)) { text in
                line.finish()
                out.write(text)
            },
                           limits: QueryLimits(timeout: timeout == 0 ? nil : .milliseconds(Int64(timeout * 1000))),
                           parameters: parameters)
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

extension Query {
    /// The SQL to run and the name its error positions use: `-c`'s text, a file's, or standard input's.
    func readSQL() throws -> (sql: String, source: String) {
        if let command {
            guard sqlFile == nil else { throw InputError(description: "give the SQL either as a file or with -c, not both") }
            guard command.utf8.count <= Self.maxSQLBytes else { throw InputError(description: "-c: the SQL is larger than \(Self.maxSQLBytes) bytes") }
            return (command, "-c")
        }
        guard let sqlFile, sqlFile != "-" else {
            var data = Data()
            while let chunk = try FileHandle.standardInput.read(upToCount: 1 << 16), !chunk.isEmpty {
                data.append(chunk)
                guard data.count <= Self.maxSQLBytes else {
                    throw InputError(description: "<stdin>: the SQL is larger than \(Self.maxSQLBytes) bytes")
                }
            }
            guard let text = String(data: data, encoding: .utf8) else { throw InputError(description: "<stdin>: the SQL is not UTF-8") }
            return (text, "<stdin>")
        }
        return (try InputFile.text(sqlFile, what: "SQL file", limit: Self.maxSQLBytes), sqlFile)
    }

    /// `NAME=VALUE` pairs as bound values: integers (decimal or 0x hex) or text.
    static func parameters(_ pairs: [String]) throws -> [String: SQLiteValue] {
        var out: [String: SQLiteValue] = [:]
        for pair in pairs {
            guard let eq = pair.firstIndex(of: "="), pair[..<eq].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }),
                  !pair[..<eq].isEmpty else {
                throw InputError(description: "--param takes NAME=VALUE with a name of letters, digits and _, not '\(printable(pair))'")
            }
            let name = String(pair[..<eq]), value = String(pair[pair.index(after: eq)...])
            guard out[name] == nil else { throw InputError(description: "--param \(name) given twice") }
            let lower = value.lowercased()
            if let i = Int64(value) {
                out[name] = .integer(i)
            } else if lower.hasPrefix("0x"), let u = UInt64(lower.dropFirst(2), radix: 16) {
                out[name] = .integer(Int64(bitPattern: u))
            } else {
                out[name] = .text(value)
            }
        }
        return out
    }
}

/// Standard output (or a file) in 64 KiB writes, so that streaming a large result costs no write per row.
final class BufferedOutput {
    private var buffer: [UInt8] = []
    private let handle: FileHandle

    init(_ handle: FileHandle = .standardOutput) {
        self.handle = handle
        buffer.reserveCapacity(1 << 16)
    }

    func write(_ s: String) {
        buffer.append(contentsOf: s.utf8)
        if buffer.count >= 1 << 16 { flush() }
    }

    func flush() {
        guard !buffer.isEmpty else { return }
        handle.write(Data(buffer))
        buffer.removeAll(keepingCapacity: true)
    }
}
