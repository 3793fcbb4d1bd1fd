import Foundation
import TestSupport
import Testing
import TraceFormat
@testable import Query

/// `export --table events` writes the events straight from the trace: exactly what `SELECT * FROM events`
/// gives through SQLite in the same format, on every golden trace.
struct EventsExportTests {
    static let traces = GoldenTraces.directory(from: #filePath)

    @Test("the direct export of the events table is SELECT * FROM events, byte for byte", arguments: [OutputFormat.csv, .jsonl])
    func sameAsSQL(format: OutputFormat) throws {
        let bundles = GoldenTraces.bundles(in: Self.traces)
        #expect(bundles.count > 50)
        for name in bundles {
            let bundle = try TraceBundle(existing: Self.traces.appendingPathComponent(name).path)
            var direct = ""
            try EventsExport.write(bundle, format: format) { direct += $0 }
            var viaSQL = ""
            try QueryEngine(bundle: bundle).run("SELECT * FROM events", file: "t", into: format.writer { viaSQL += $0 },
                                                limits: QueryLimits(timeout: nil))
            #expect(direct == viaSQL, "\(name) as \(format)")
            #expect(direct.split(separator: "\n").count == (format == .csv ? 1 : 0) + Int(try bundle.reader().allChunks().reduce(0) { $0 + $1.eventCount }))
        }
    }

    @Test("the events table's cells of a memory access are the columns EventSchema declares for it, value for value")
    func accessCellsAreDeclared() throws {
        var accesses = 0
        for name in GoldenTraces.bundles(in: Self.traces) {
            try TraceBundle(existing: Self.traces.appendingPathComponent(name).path).reader().forEachEvent { e in
                guard let declared = EventSchema.memoryAccess.row(e) else { return true }
                accesses += 1
                let names = EventSchema.memoryAccess.columnNames
                var cells: [SQLiteValue] = []
                withUnsafePointer(to: e) { p in
                    let row = EventsRow(p)
                    for column in names {
                        let i = EventsTable.columns.firstIndex(of: column)!
                        row.cell(i) { cells.append(StatementRow.value(of: $0)) }
                    }
                }
                #expect(cells == declared, "\(name) #\(e.seq)")
                return cells == declared
            }
        }
        #expect(accesses > 10_000)
    }
}
