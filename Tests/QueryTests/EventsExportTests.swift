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
}
