import TraceFormat

/// `export --table events` without SQLite in between: every event of the trace, chunk by chunk (decoded
/// ahead on the other core), written as CSV or JSON Lines straight from ``EventsRow`` — the same text
/// `SELECT * FROM events` gives in those formats, several times faster, since SQLite's per-column calls
/// and values are what a whole-trace export spends most on.
public enum EventsExport {
    /// Writes the `events` table of `bundle` in `format` (``OutputFormat/csv`` or ``OutputFormat/jsonl``),
    /// handing the text to `emit` in pieces of whole rows.
    public static func write(_ bundle: TraceBundle, format: OutputFormat, _ emit: @escaping (String) -> Void) throws {
        precondition(format == .csv || format == .jsonl, "export writes CSV or JSON Lines")
        let out = FormattedText(emit)
        let columns = EventsTable.columns
        let names = columns.map(JSONWriter.string)
        if format == .csv {
            out.write { line in
                for (i, c) in columns.enumerated() {
                    if i > 0 { line.byte(0x2C) }
                    line.ascii(c)
                }
                line.byte(0x0A)
            }
        }
        try bundle.reader().forEachChunk { events in
            events.withUnsafeBufferPointer { events in
                guard let base = events.baseAddress else { return }
                for i in events.indices {
                    let e = base + i
                    let row = EventsRow(e)
                    out.write { line in
                        if format == .csv {
                            for c in columns.indices {
                                if c > 0 { line.byte(0x2C) }
                                row.cell(c, of: e) { line.csv($0) }
                            }
                        } else {
                            line.jsonObject(names) { c, line in row.cell(c, of: e) { line.json($0) } }
                        }
                        line.byte(0x0A)
                    }
                }
            }
            return true
        }
        out.flush()
    }
}
