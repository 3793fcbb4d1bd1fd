import TraceFormat

/// `export --table events` without SQLite in between: every event of the trace, chunk by chunk (decoded
/// ahead on the other core), written as CSV or JSON Lines straight from ``EventsRow`` — the same text
/// `SELECT * FROM events` gives in those formats, several times faster, since SQLite's per-column calls
/// and values are what a whole-trace export spends most on.
public enum EventsExport {
    /// Writes the `events` table of `bundle` in `format` (``OutputFormat/csv`` or ``OutputFormat/jsonl``),
    /// handing the text to `emit` in pieces of whole rows.
    public static func write(_ bundle: TraceBundle, format: OutputFormat, _ emit: @escaping (String) -> Void) throws {
        switch format {
        case .csv: try write(bundle, into: CSVWriter(emit)) { $0.row(cells: $1) }
        case .jsonl: try write(bundle, into: JSONLinesWriter(emit)) { $0.row(cells: $1) }
        case .table, .json: preconditionFailure("export writes CSV or JSON Lines")
        }
    }

    /// Every event through `writer`, as the format's own writer puts a row of SQLite's.
    @inline(__always)
    private static func write<W: QueryOutput>(_ bundle: TraceBundle, into writer: W, row: (W, EventsRow) -> Void) throws {
        writer.begin(columns: EventsTable.columns, index: 0)
        try bundle.reader().forEachChunk { events in
            events.withUnsafeBufferPointer { events in
                guard let base = events.baseAddress else { return }
                for i in events.indices { row(writer, EventsRow(base + i)) }
            }
            return true
        }
        writer.end()
    }
}
