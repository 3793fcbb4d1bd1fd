import Analyzer
import Foundation
import Scenario
import TestSupport
import Testing
import TraceFormat
@testable import Query

struct QueryEngineTests {
    /// Records the default scenario (analyzed) into a fresh temporary bundle.
    final class Recorded {
        let dir = TemporaryDirectory()
        let bundle: TraceBundle

        init(chunkBytes: UInt32 = 1 << 20) throws {
            let script = try ScenarioParser(file: "default").parse(DefaultScenario.text)
            bundle = try ScenarioRecorder.record(script, seed: 1, to: dir.path + "/d.sevtrace", chunkBytes: chunkBytes).bundle
            try Analyzer().analyzeAndStore(bundle)
        }

    }

    static let leaksSQL = try! String(contentsOfFile: URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Queries/leaks.sql").path, encoding: .utf8)

    @Test("the events table answers seq ranges from the right chunks, in order")
    func eventsBySeq() throws {
        let r = try Recorded(chunkBytes: 512)
        let engine = try QueryEngine(bundle: r.bundle)
        let all = try engine.run("SELECT count(*) FROM events")[0].rows[0][0]
        let total = try r.bundle.reader().eventCount()
        #expect(all == .integer(Int64(total)))
        let rows = try engine.run("SELECT seq FROM events WHERE seq BETWEEN 700 AND 705")[0].rows
        #expect(rows == (700...705).map { [.integer($0)] })
        #expect(try engine.run("SELECT seq FROM events WHERE seq > 1147")[0].rows.count == Int(total) - 1148)
        #expect(try engine.run("SELECT seq FROM events WHERE seq = 3")[0].rows == [[.integer(3)]])
        #expect(try engine.run("SELECT seq FROM events WHERE seq < 0")[0].rows.isEmpty)
        let psp = try engine.run("SELECT count(*) FROM events WHERE type = 'psp'")[0].rows[0][0]
        let indexed = try engine.run("SELECT count(*) FROM psp_commands")[0].rows[0][0]
        #expect(psp == indexed)
    }

    @Test("cache_flushes lists every CLFLUSH, WBINVD and VM_PAGE_FLUSH of the trace, with the core of each WBINVD")
    func cacheFlushes() throws {
        let dir = TemporaryDirectory()
        let text = """
            platform memory=64M cache=64K cores=2
            vm guest memory=2M policy=0x1 vcpus=2
            program guest at=0x100000
                hlt
            end
            launch guest
            run guest vcpu=1
            hv page-flush guest 0x100000
            hv wbinvd core=1
            hv wbinvd

            """
        let script = try ScenarioParser(file: "flush").parse(text)
        let bundle = try ScenarioRecorder.record(script, seed: 1, to: dir.path + "/f.sevtrace").bundle
        let engine = try QueryEngine(bundle: bundle)
        let fromEvents = try engine.run(
            "SELECT count(*) FROM events WHERE type = 'cache' AND (detail LIKE '% op=clflush %' OR detail LIKE '% op=wbinvd %' OR detail LIKE '% op=vm_page_flush %')")
        let indexed = try engine.run("SELECT count(*) FROM cache_flushes")
        #expect(fromEvents[0].rows == indexed[0].rows)
        let tail = try engine.run("SELECT op, core FROM cache_flushes ORDER BY seq DESC LIMIT 4")[0].rows
        #expect(tail == [[.text("wbinvd"), .integer(1)], [.text("wbinvd"), .integer(0)], [.text("wbinvd"), .integer(1)],
                         [.text("vm_page_flush"), .integer(0)]])
    }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test("hypervisor.sql: the exits per VM and one timeline of what the hypervisor did, in trace order")
    func hypervisorTimeline() throws {
        let sql = try String(contentsOfFile: Self.root.appendingPathComponent("Queries/hypervisor.sql").path, encoding: .utf8)
        let bundle = try TraceBundle(existing: Self.root.appendingPathComponent("Traces/async-pf.sevtrace").path)
        let results = try QueryEngine(bundle: bundle).run(sql, file: "hypervisor.sql")
        #expect(results.count == 2)
        let exits = results[0].rows.map { ($0[0], $0[1]) }
        #expect(exits.contains { $0 == .text("right") && $1 == .text("NPF") })
        let actions = results[1].rows.map { $0[2] }
        let seqs = results[1].rows.map { $0[0] }
        #expect(actions.filter { $0 == .text("inject") }.count == 3, "right's two async-PF notices and wrong's one")
        #expect(actions.contains(.text("npt unmap")) && actions.contains(.text("psp LAUNCH_START")))
        let bindings = try QueryEngine(bundle: bundle).run("SELECT handle, asid, op FROM asid_bindings ORDER BY seq")[0].rows
        #expect(bindings == [[.integer(1), .integer(1), .text("bind")], [.integer(2), .integer(2), .text("bind")]])
        #expect(seqs == seqs.sorted { if case .integer(let a) = $0, case .integer(let b) = $1 { a < b } else { false } })
    }

    @Test("the events table's memory columns match the index's page counts")
    func memoryColumns() throws {
        let r = try Recorded()
        let engine = try QueryEngine(bundle: r.bundle)
        let fromEvents = try engine.run("SELECT count(*) FROM events WHERE type = 'mem' AND spa >> 12 = (SELECT spa_page FROM page_chunks ORDER BY reads + writes DESC LIMIT 1)")[0].rows[0][0]
        // A page has one row per chunk and per (VM, guest page) it was reached as: sum them.
        let fromIndex = try engine.run("SELECT sum(reads + writes) FROM page_chunks WHERE spa_page = (SELECT spa_page FROM page_chunks ORDER BY reads + writes DESC LIMIT 1)")[0].rows[0][0]
        #expect(fromEvents == fromIndex)
    }

    @Test("leaks.sql lists the default scenario's findings, worst first")
    func leaks() throws {
        let r = try Recorded()
        let result = try QueryEngine(bundle: r.bundle).run(Self.leaksSQL, file: "leaks.sql")
        #expect(result.count == 1)
        let detectors = result[0].rows.map { $0[result[0].columns.firstIndex(of: "detector")!] }
        #expect(detectors == [.text("PRIVATE_TO_SHARED"), .text("PRIVATE_TO_DMA"), .text("CIPHERTEXT_OBSERVATION")])
    }

    @Test("a bad query names the line and column of the problem")
    func errorPosition() throws {
        let r = try Recorded()
        let engine = try QueryEngine(bundle: r.bundle)
        #expect(throws: QueryError(file: "q.sql", line: 2, column: 8, message: "no such column: nope")) {
            _ = try engine.run("SELECT 1;\nSELECT nope FROM findings;", file: "q.sql")
        }
    }

    @Test("the connection is read-only: a query cannot change the trace")
    func readOnly() throws {
        let r = try Recorded()
        let before = try Data(contentsOf: URL(fileURLWithPath: r.bundle.indexPath))
        let engine = try QueryEngine(bundle: r.bundle)
        #expect(throws: QueryError.self) { _ = try engine.run("DELETE FROM findings") }
        #expect(throws: QueryError.self) { _ = try engine.run("CREATE TABLE x(a)") }
        #expect(try Data(contentsOf: URL(fileURLWithPath: r.bundle.indexPath)) == before)
    }

    @Test("statements are counted outside strings, quoted names and comments",
          arguments: [("SELECT 1", 1), ("SELECT 1;", 1), ("SELECT 1; SELECT 2;", 2), ("SELECT ';;'; -- a; b\n", 1),
                      ("/* ; */ SELECT \"a;b\", [c;d], `e;f`;\n;\n", 1), ("-- only a comment;\n", 0), ("SELECT 'it''s;'; SELECT 2", 2)]
                     as [(String, Int)])
    func statementCount(_ sql: String, _ expected: Int) {
        #expect(QueryEngine.statementCount(sql) == expected)
    }

    @Test("counting the statements of a hostile file is linear: millions of ; inside one string")
    func statementCountLinear() {
        let sql = "SELECT '" + String(repeating: ";", count: 4_000_000) + "';"
        let start = ContinuousClock.now
        #expect(QueryEngine.statementCount(sql) == 1)
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test("output formats", arguments: OutputFormat.allCases)
    func formats(_ format: OutputFormat) throws {
        let result = QueryResult(columns: ["n", "s", "b"], rows: [[.integer(1), .text("a,\"b\"\n"), .blob([0xab, 1])],
                                                                  [.null, .real(2.5), .text("é")]])
        let out = format.render(result)
        switch format {
        case .table:
            #expect(out.contains("(2 rows)"))
            #expect(out.split(separator: "\n")[1].allSatisfy { $0 == "-" || $0 == " " })
            #expect(out.split(separator: "\n")[3].hasPrefix("NULL"), "NULL is not shown as an empty string")
        case .csv:
            #expect(out == "n,s,b\n1,\"a,\"\"b\"\"\n\",ab01\n,2.5,é\n")
        case .json:
            let parsed = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [[String: Any]]
            #expect(parsed.count == 2)
            #expect(parsed[0]["s"] as? String == "a,\"b\"\n")
            #expect(parsed[0]["b"] as? String == "ab01")
            #expect(parsed[1]["n"] is NSNull)
        case .jsonl:
            let lines = out.split(separator: "\n")
            #expect(lines.count == 2, "one object per line: a newline inside a value stays escaped")
            let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
            #expect(first["s"] as? String == "a,\"b\"\n" && first["b"] as? String == "ab01")
        }
    }

    @Test("no query can write, attach, vacuum or change a setting, and none leaves a file behind",
          arguments: ["PRAGMA query_only = OFF", "PRAGMA journal_mode = WAL", "VACUUM INTO 'VACUUMED'", "ATTACH 'ATTACHED' AS x",
                      "CREATE TEMP TABLE t(a)", "PRAGMA writable_schema = ON", "UPDATE meta SET value = 'x'",
                      "SELECT load_extension('x')"])
    func escapes(_ sql: String) throws {
        let r = try Recorded()
        let dir = r.dir.path + "/d.sevtrace"
        let sqlHere = sql.replacingOccurrences(of: "VACUUMED", with: r.dir.path + "/v.db")
            .replacingOccurrences(of: "ATTACHED", with: r.dir.path + "/a.db")
        let before = try Data(contentsOf: URL(fileURLWithPath: r.bundle.indexPath))
        let engine = try QueryEngine(bundle: r.bundle)
        #expect(throws: QueryError.self) { _ = try engine.run(sqlHere + ";\nSELECT 1;") }
        #expect(try engine.run("PRAGMA query_only")[0].rows == [[.integer(1)]])
        #expect(try FileManager.default.contentsOfDirectory(atPath: r.dir.path).sorted() == ["d.sevtrace"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["events.zst", "index.sqlite"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: r.bundle.indexPath)) == before)
    }

    @Test("a runaway query stops at its time limit with an error that names the option")
    func timeout() throws {
        let r = try Recorded()
        let engine = try QueryEngine(bundle: r.bundle)
        let clock = ContinuousClock()
        let start = clock.now
        do {
            _ = try engine.run("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n;",
                               file: "forever.sql", limits: QueryLimits(timeout: .milliseconds(300)))
            Issue.record("the query ended by itself")
        } catch {
            #expect(error.message.contains("--timeout"), "\(error)")
            #expect(error.file == "forever.sql" && error.line == 1)
        }
        #expect(clock.now - start < .seconds(10))
    }

    @Test("rows reach the output one by one as SQLite returns them, statement by statement")
    func streaming() throws {
        final class Log: QueryOutput {
            var calls: [String] = []
            func begin(columns: [String], index: Int) { calls.append("begin \(index) \(columns.joined(separator: ","))") }
            func row(_ values: [SQLiteValue]) { calls.append("row") }
            func end() { calls.append("end") }
        }
        let r = try Recorded()
        let log = Log()
        try QueryEngine(bundle: r.bundle).run("SELECT seq FROM events LIMIT 3; SELECT 1 AS one;", file: "q", into: log,
                                             limits: QueryLimits())
        #expect(log.calls == ["begin 0 seq", "row", "row", "row", "end", "begin 1 one", "row", "end"])
        // A table wider than its sample keeps the sample's widths and still prints every row.
        var out = ""
        let table = OutputFormat.table.writer { out += $0 }
        table.begin(columns: ["v"], index: 0)
        for i in 0..<(TableWriter.sampleRows + 3) { table.row([.text(i < TableWriter.sampleRows ? "a" : "longer")]) }
        table.end()
        #expect(out.hasSuffix("longer\n(\(TableWriter.sampleRows + 3) rows)\n"))
    }
}
