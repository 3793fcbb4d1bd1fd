import Foundation
import Query
import Scenario
import SEVMachine
import TraceFormat

/// `bench --queries`: the questions people ask of a large trace, timed against their goals on a trace of
/// the mixed workload (two SEV guests × two vCPUs: table updates, copies, port I/O, DMA, hypervisor reads).
struct QueryBench {
    var events: UInt64
    var runs: Int
    var seed: UInt64
    /// An existing bundle to query instead of recording one.
    var trace: String?
    var output: String?

    /// One row of the table: a question, how long it took in each run, its goal.
    struct Row {
        var question: String
        var goal: String
        var seconds: [Double] = []
        var note = ""
    }

    func run() throws {
        let clock = ContinuousClock()
        func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
        var scratch: String?
        defer { if let scratch { try? FileManager.default.removeItem(atPath: scratch) } }
        let bundle: TraceBundle
        if let trace {
            bundle = try TraceBundle(existing: trace)
        } else {
            let path: String
            if let output {
                path = output
            } else {
                scratch = NSTemporaryDirectory() + "/sev-trace-qbench-\(ProcessInfo.processInfo.processIdentifier)"
                path = scratch! + "/mixed.sevtrace"
            }
            // About 0.93 events per memory access on the mixed workload.
            let text = try Bench.mixedScenario(accesses: events, platform: "")
            let script = try ScenarioParser(file: "bench-mixed", limits: ScenarioLimits(machine: MachineLimits(maxSteps: .max, maxMemoryBytes: 4 << 30))).parse(text)
            let start = clock.now
            let s = try ScenarioRecorder.record(script, seed: seed, to: path, limits: RecordingLimits(maxEvents: .max, maxBytes: .max))
            Console.line("recorded \(s.events) events in \(s.chunks) chunks (\(String(format: "%.1f", seconds(clock.now - start))) s): \(path)")
            bundle = s.bundle
        }
        let engine = try QueryEngine(bundle: bundle)
        let eventsBytes = (try? FileManager.default.attributesOfItem(atPath: bundle.path + "/events.zst")[.size] as? UInt64) ?? 0
        let indexBytes = (try? FileManager.default.attributesOfItem(atPath: bundle.path + "/index.sqlite")[.size] as? UInt64) ?? 0
        let total = try bundle.reader().eventCount()
        func integers(_ sql: String) throws -> [Int64] {
            try engine.run(sql).first?.rows.first?.compactMap { if case .integer(let v) = $0 { v } else { nil } } ?? []
        }
        // The hot page is touched all along the trace (in the most chunks; of those in at least 80% of the
        // chunks, the one with the fewest accesses: finding its rows is the question, not returning them);
        // the cold one in a few chunks.
        let hot = try integers("""
            SELECT spa_page, count(*) AS n FROM page_chunks GROUP BY spa_page
            HAVING n >= (SELECT max(m) FROM (SELECT count(*) AS m FROM page_chunks GROUP BY spa_page)) * 8 / 10
            ORDER BY sum(reads + writes), spa_page LIMIT 1
            """)
        let cold = try integers("SELECT spa_page, count(*) AS n FROM page_chunks GROUP BY spa_page HAVING n >= 3 ORDER BY n, spa_page LIMIT 1")
        guard hot.count == 2, cold.count == 2 else { throw InputError(description: "the trace has no memory accesses to query") }
        func page(_ p: Int64) -> String { "spa BETWEEN \(p * 4096) AND \(p * 4096 + 4095)" }
        var rows: [Row] = []
        func time(_ question: String, goal: String, _ body: () throws -> String) throws {
            var row = Row(question: question, goal: goal)
            for _ in 0..<runs {
                var note = ""
                row.seconds.append(seconds(try clock.measure { note = try body() }))
                row.note = note
            }
            rows.append(row)
        }
        func count(_ sql: String) throws -> String { "\(try integers(sql).first ?? 0) rows" }
        try time("every access to a page touched all along the trace (in \(hot[1]) chunks)", goal: "≤ 100 ms") {
            try count("SELECT count(*) FROM events WHERE \(page(hot[0]))")
        }
        try time("every access to a cold page (in \(cold[1]) chunks), WHERE spa BETWEEN", goal: "≤ 20 ms") {
            try count("SELECT count(*) FROM events WHERE \(page(cold[0]))")
        }
        try time("the same, joined by hand with page_chunks", goal: "≤ 20 ms") {
            try count("""
                SELECT count(*) FROM events e JOIN (SELECT min(c.first_seq) AS lo, max(c.last_seq) AS hi FROM page_chunks p
                JOIN chunks c ON c.chunk = p.chunk WHERE p.spa_page = \(cold[0])) r ON e.seq BETWEEN r.lo AND r.hi WHERE e.\(page(cold[0]))
                """)
        }
        try time("count(*) over all \(total) events", goal: "≤ 1.5 s") { try count("SELECT count(*) FROM events") }
        try time("exact accesses per ASID (summed from event_counts)", goal: "≤ 2 s") {
            "\(try engine.run("SELECT asid, sum(events) FROM event_counts WHERE type = 'mem' GROUP BY asid")[0].rows.count) ASIDs"
        }
        try time("every #VMEXIT by kind, decoded from the trace (vm_exits)", goal: "—") {
            let kinds = try engine.run("SELECT exit_name, count(*) FROM vm_exits GROUP BY exit_name")[0].rows
            let exits = kinds.reduce(Int64(0)) { if case .integer(let n) = $1[1] { $0 + n } else { $0 } }
            return "\(exits) exits of \(kinds.count) kinds"
        }
        if let vm = try engine.run("SELECT name FROM vms ORDER BY vm LIMIT 1")[0].rows.first?.first, case .text(let name) = vm {
            let late = total - total / 100
            try time("64 bytes of a guest page at event \(late) (memory_at)", goal: "≤ 1 s") {
                let sql = "SELECT count(*) FROM memory_at(\(late), '\(name)', 0x300000, 64) WHERE last_write IS NOT NULL"
                return "\(try integers(sql).first ?? 0) bytes written"
            }
        }
        let streamed = min(total, 5_000_000)
        var streamPeak = 0
        try time("SELECT * of \(streamed) rows as CSV (to /dev/null)", goal: "streamed, ≤ 100 MB") {
            Bench.resetPeakRSS()
            let before = Bench.peakRSS()
            let null = try FileHandle(forWritingTo: URL(fileURLWithPath: "/dev/null"))
            var pending = ""
            let writer = OutputFormat.csv.writer {
                pending += $0
                if pending.utf8.count >= 1 << 16 {
                    null.write(Data(pending.utf8))
                    pending = ""
                }
            }
            try engine.run("SELECT * FROM events WHERE seq < \(streamed)", file: "-c", into: writer, limits: QueryLimits())
            null.write(Data(pending.utf8))
            streamPeak = max(streamPeak, Bench.peakRSS() - before)
            return "peak RSS +\(streamPeak / 1024) MiB"
        }
        var rng = SeededGenerator(seed: seed)
        try time("seek to a random event (dump --from N), a fresh reader each time", goal: "≤ 50 ms") {
            let n = UInt64.random(in: 0..<max(total, 1), using: &rng)
            var found: UInt64 = 0
            try bundle.reader().forEachEvent(from: n) {
                found = $0.seq
                return false
            }
            return "#\(found)"
        }
        Console.line("")
        Console.line("index.sqlite: \(indexBytes) bytes, \(String(format: "%.1f", Double(indexBytes) * 100 / Double(max(eventsBytes, 1))))% of events.zst (\(eventsBytes) bytes); goal ≤ 50%")
        Console.line("")
        Console.line("| question | " + (1...runs).map { "run \($0)" }.joined(separator: " | ") + " | goal | answer |")
        Console.line("|---|" + String(repeating: "---|", count: runs) + "---|---|")
        for r in rows {
            let cells = r.seconds.map { $0 < 1 ? String(format: "%.1f ms", $0 * 1000) : String(format: "%.2f s", $0) }
            Console.line("| \(r.question) | " + cells.joined(separator: " | ") + " | \(r.goal) | \(r.note) |")
        }
    }
}
