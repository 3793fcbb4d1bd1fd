import ArgumentParser
import Foundation
import Query
import TraceFormat

/// `sev-trace export`: one table of a trace, streamed in a form the engines that scale past one
/// machine read directly.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stream one table of a trace as CSV or JSON Lines, or the trace as a Perfetto timeline.",
        discussion: "DuckDB (read_csv_auto, read_json_auto), pandas and Spark read the tables as they are; ui.perfetto.dev and chrome://tracing open the timeline (--perfetto, Trace Event Format JSON). Rows and events are streamed, never held whole; with -o or --perfetto the file appears only when complete. Tables are documented in Queries/README.md.")

    @Argument(help: "The trace bundle.")
    var bundle: String

    @Option(help: "The table to export: events, findings, psp_commands, vm_exits, … (see Queries/README.md).")
    var table: String?

    @Option(help: "Write the trace as a timeline for ui.perfetto.dev or chrome://tracing (Trace Event Format JSON) to this file.")
    var perfetto: String?

    @Option(help: "With --perfetto: the first event to include (its seq).")
    var from: UInt64 = 0

    @Option(help: "With --perfetto: the last event to include (its seq).")
    var to: UInt64 = .max

    @Option(help: "csv (a header row, LF line ends) or jsonl (one JSON object per line).")
    var format: String = "csv"

    @Option(name: .shortAndLong, help: "The file to write (default: standard output).")
    var output: String?

    @OptionGroup(title: "Progress")
    var progressOptions: ProgressOptions

    func validate() throws {
        guard (table == nil) != (perfetto == nil) else { throw ValidationError("give --table NAME or --perfetto FILE") }
        guard from <= to else { throw ValidationError("--from must not be after --to") }
    }

    func run() throws {
        let b = try TraceBundle(existing: bundle)
        let line = progressOptions.line("export")
        defer { line.finish() }
        if let perfetto {
            try Self.staged(perfetto) { out in try TimelineExport(from: from, to: to).write(b, out.write) }
            return
        }
        let table = table!
        guard let fmt = OutputFormat(rawValue: format), fmt == .csv || fmt == .jsonl else {
            throw InputError(description: "unknown export format '\(printable(format))'; use csv or jsonl")
        }
        let engine = try QueryEngine(bundle: b)
        let names = try engine.run("SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'")
        let known = Set((names.first?.rows ?? []).compactMap { if case .text(let t) = $0.first { t } else { nil } } + QueryEngine.decodedTables)
        guard known.contains(table) else {
            throw InputError(description: "no table '\(printable(table))' in \(bundle); tables: \(known.sorted().joined(separator: ", "))")
        }
        let sql = "SELECT * FROM \"\(table)\""
        /// The table into `out`: `events` straight from the trace, any other through SQLite.
        func write(_ out: BufferedOutput) throws {
            if table == "events" { return try EventsExport.write(b, format: fmt, out.write) }
            try engine.run(sql, file: "export", into: fmt.writer(out.write), limits: QueryLimits(timeout: nil))
        }
        guard let output else {
            let out = BufferedOutput()
            try write(out)
            out.flush()
            return
        }
        try Self.staged(output) { out in
            do {
                try write(out)
            } catch let error as TraceError {
                throw error
            } catch {
                throw QueryFailure(description: "\(error)")
            }
        }
    }

    /// Writes a file beside its place and renames it when complete: a failed export leaves nothing behind.
    static func staged(_ output: String, _ body: (BufferedOutput) throws -> Void) throws {
        let url = URL(fileURLWithPath: output)
        let partial = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial")
        guard FileManager.default.createFile(atPath: partial.path, contents: nil), let handle = try? FileHandle(forWritingTo: partial) else {
            throw InputError(description: "cannot write \(output)")
        }
        do {
            let out = BufferedOutput(handle)
            try body(out)
            out.flush()
            try handle.close()
            guard rename(partial.path, url.path) == 0 else { throw InputError(description: "cannot write \(output)") }
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(at: partial)
            throw error
        }
    }
}
