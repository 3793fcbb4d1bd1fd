import Foundation
import TestSupport
import Testing
import TraceFormat
@testable import Query

/// Constraints pushed down into the events table skip only chunks and rows without a match: on every
/// golden trace, random filters on `spa`, `gpa`, `vm`, `seq`, `type`, `actor`, `access`, `asid` and `cbit`
/// return exactly what a full scan returns.
struct PushdownTests {
    static let traces = GoldenTraces.directory(from: #filePath)
    static let bundles = GoldenTraces.bundles(in: traces)

    /// One clause over `column`, written `{c}` where the column goes.
    struct Clause {
        var text: String
        func sql(pushed: Bool) -> String {
            // `+column` is an expression: SQLite cannot hand it to the table, so the table scans everything.
            var s = text
            for column in PushdownTests.pushable { s = s.replacingOccurrences(of: "{\(column)}", with: pushed ? column : "+" + column) }
            return s
        }
    }

    static let pushable = ["spa", "gpa", "seq", "vm", "type", "actor", "access", "asid", "cbit"]

    @Test("random filters on every pushed-down column return what a full scan returns", arguments: bundles)
    func pushdownMatchesScan(bundle name: String) throws {
        #expect(Self.bundles.count > 50)
        try Self.check(try TraceBundle(existing: Self.traces.appendingPathComponent(name).path), name: name)
    }

    @Test("the same over a trace of hundreds of small chunks, read ahead on the other core", arguments: [256, 2048] as [UInt32])
    func pushdownMatchesScanAcrossChunks(chunkBytes: UInt32) throws {
        let r = try QueryEngineTests.Recorded(chunkBytes: chunkBytes)
        #expect(try r.bundle.reader().allChunks().count > 20)
        try Self.check(r.bundle, name: "default at \(chunkBytes)-byte chunks")
        // Every event, in order, as the reader decodes them chunk by chunk.
        var expected: [[SQLiteValue]] = []
        let reader = try r.bundle.reader()
        for info in try reader.allChunks() {
            expected += try reader.events(of: info).map { [.integer(Int64($0.seq)), .integer(Int64($0.cycle))] }
        }
        let engine = try QueryEngine(bundle: r.bundle)
        #expect(try engine.run("SELECT seq, cycle FROM events WHERE type IS NOT NULL")[0].rows == expected)
    }

    @Test("event_counts adds up to the events table, and the decoded tables (vm_exits, register_ops, …) hold exactly its events of their kind, under any filter",
          arguments: bundles)
    func derivedTablesMatchEvents(bundle name: String) throws {
        let bundle = try TraceBundle(existing: Self.traces.appendingPathComponent(name).path)
        try Self.checkDerived(bundle, name: name)
    }

    @Test("the same over a trace of many small chunks")
    func derivedTablesAcrossChunks() throws {
        let r = try QueryEngineTests.Recorded(chunkBytes: 512)
        try Self.checkDerived(r.bundle, name: "default at 512-byte chunks")
    }

    static func checkDerived(_ bundle: TraceBundle, name: String) throws {
        let engine = try QueryEngine(bundle: bundle)
        let grouped = "GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6"
        let counted = try engine.run("SELECT type, actor, access, vm, asid, cbit, sum(events) FROM event_counts " + grouped)[0].rows
        let scanned = try engine.run("SELECT type, actor, access, vm, asid, cbit, count(*) FROM events " + grouped)[0].rows
        #expect(counted == scanned, "\(name)")
        let perChunk = try engine.run("SELECT chunk, sum(events) FROM event_counts GROUP BY chunk ORDER BY chunk")[0].rows
        let chunks = try engine.run("SELECT chunk, event_count FROM chunks WHERE event_count > 0 ORDER BY chunk")[0].rows
        #expect(perChunk == chunks, "\(name)")

        // Every field of every world switch, against the reader's own decoding.
        var runs: [[SQLiteValue]] = [], exits: [[SQLiteValue]] = [], ops: [[SQLiteValue]] = [], caches: [[SQLiteValue]] = []
        var handovers: [[SQLiteValue]] = [], modes: [[SQLiteValue]] = [], halts: [[SQLiteValue]] = [], checks: [[SQLiteValue]] = []
        func int(_ v: UInt64) -> SQLiteValue { .integer(Int64(bitPattern: v)) }
        var accesses: [[SQLiteValue]] = []
        try bundle.reader().forEachEvent { e in
            switch e.body {
            case .memoryAccess(let a):
                accesses.append([int(e.seq), int(e.cycle), .text("mem"), .text(a.actor.description),
                                 a.vm == MemoryAccess.noVM ? .null : int(UInt64(a.vm)), int(UInt64(a.asid)), .text(a.kind.description),
                                 int(a.gva), int(a.gpa), int(a.spa), int(UInt64(a.size)), int(a.cbit ? 1 : 0), .text(a.reason.description),
                                 a.register == MemoryAccess.noRegister ? .null : .text(EventFormatter.registerName(a.register)),
                                 int(a.value), .null])
            case .registerOp(let r):
                ops.append([int(e.seq), int(e.cycle), int(UInt64(r.vm)), int(UInt64(r.vcpu)), .text(r.op.description),
                            .text(EventFormatter.registerName(r.dst)),
                            r.src == MemoryAccess.noRegister ? .null : .text(EventFormatter.registerName(r.src)), int(r.result)])
            case .cacheOp(let c):
                caches.append([int(e.seq), int(e.cycle), int(c.spa >> 40), .text(c.op.description), int(c.spa), int(UInt64(c.asid)),
                               int(c.lines), int(UInt64(c.core))])
            case .handover(let h):
                handovers.append([int(e.seq), int(e.cycle), int(UInt64(h.vm)), int(UInt64(h.vcpu)), int(h.gpa), int(h.spa), int(h.length)])
            case .vmRun(let r):
                runs.append([int(e.seq), int(e.cycle), int(UInt64(r.vm)), int(UInt64(r.vcpu)), int(UInt64(r.asid)),
                             int(r.nestedControl), int(r.ncr3), int(r.eventInjection), int(r.cr2)])
            case .vmExit(let x):
                exits.append([int(e.seq), int(e.cycle), int(UInt64(x.vm)), int(UInt64(x.vcpu)), int(UInt64(x.exitCode)),
                              .text(VMExit.name(of: x.exitCode)), int(x.exitInfo1), int(x.exitInfo2), int(x.rip)]
                             + (0..<16).map { $0 < x.registers.count ? int(x.registers[$0]) : .null })
            case .vcpuMode(let m):
                modes.append([int(e.seq), int(e.cycle), int(UInt64(m.vm)), int(UInt64(m.vcpu)), .text(m.mode.description)])
            case .vcpuHalt(let h):
                halts.append([int(e.seq), int(e.cycle), int(UInt64(h.vm)), int(UInt64(h.vcpu))])
            case .ownerCheck(let o):
                checks.append([int(e.seq), int(e.cycle), int(UInt64(o.vm)), int(o.accepted ? 1 : 0), int(o.entry),
                               .text(o.regions.map { "0x" + String($0.gpa, radix: 16) + "+" + String($0.length) }.joined(separator: ","))])
            default: break
            }
            return true
        }
        #expect(EventsTable.columns == ["seq", "cycle", "type", "actor", "vm", "asid", "access", "gva", "gpa", "spa", "size", "cbit",
                                        "reason", "register", "value", "detail"])
        #expect(try engine.run("SELECT * FROM events WHERE type = 'mem'")[0].rows == accesses, "\(name)")
        #expect(try engine.run("SELECT * FROM vm_runs")[0].rows == runs, "\(name)")
        #expect(try engine.run("SELECT * FROM vm_exits")[0].rows == exits, "\(name)")
        #expect(try engine.run("SELECT * FROM register_ops")[0].rows == ops, "\(name)")
        #expect(try engine.run("SELECT * FROM cache_ops")[0].rows == caches, "\(name)")
        #expect(try engine.run("SELECT * FROM handovers")[0].rows == handovers, "\(name)")
        #expect(try engine.run("SELECT * FROM vcpu_modes")[0].rows == modes, "\(name)")
        #expect(try engine.run("SELECT * FROM vcpu_halts")[0].rows == halts, "\(name)")
        #expect(try engine.run("SELECT * FROM owner_checks")[0].rows == checks, "\(name)")

        var rng = SplitMix(seed: UInt64(name.utf8.reduce(7) { $0 &* 31 &+ UInt64($1) }))
        let seqs = (runs + exits + ops + caches + handovers + modes + halts + checks).compactMap { if case .integer(let v) = $0[0] { v } else { nil } }
        guard let top = seqs.max() else { return }
        for table in EventSchema.decoded.map(\.name) {
            let hasVM = EventSchema.decoded.first { $0.name == table }?.index(of: "vm") != nil
            var clauses = ["{seq} = \(seqs[Int(rng.next() % UInt64(seqs.count))])", "{seq} BETWEEN 5 AND 4", "{seq} < -1", "{seq} > 100"]
            if hasVM { clauses += ["{vm} = 0", "{vm} = 1 AND {seq} > 100", "{vm} = 'x'"] }
            for _ in 0..<8 {
                let a = Int64(rng.next() % UInt64(top + 1)), b = Int64(rng.next() % UInt64(top + 1))
                clauses.append("{seq} BETWEEN \(min(a, b)) AND \(max(a, b))" + (hasVM && rng.next() % 2 == 0 ? " AND {vm} = \(rng.next() % 2)" : ""))
            }
            for clause in clauses {
                let select = "SELECT count(*), total(seq), total(cycle) FROM \(table) WHERE "
                let pushed = try engine.run(select + Clause(text: clause).sql(pushed: true))[0].rows
                let full = try engine.run(select + Clause(text: clause).sql(pushed: false))[0].rows
                #expect(pushed == full, "\(name): \(table) WHERE \(clause)")
            }
        }
    }

    static func check(_ bundle: TraceBundle, name: String) throws {
        let engine = try QueryEngine(bundle: bundle)
        func ints(_ sql: String) throws -> [Int64] {
            try engine.run(sql)[0].rows.compactMap { if case .integer(let v) = $0.first { v } else { nil } }
        }
        let pages = try ints("SELECT DISTINCT spa_page FROM page_chunks ORDER BY 1")
        let gpaPages = try ints("SELECT DISTINCT gpa_page FROM page_chunks WHERE gpa_page IS NOT NULL ORDER BY 1")
        let vms = try ints("SELECT DISTINCT vm FROM page_chunks WHERE vm IS NOT NULL ORDER BY 1")
        let lastSeq = try ints("SELECT max(last_seq) FROM chunks").first ?? 0
        let actors = try engine.run("SELECT DISTINCT actor FROM events WHERE actor IS NOT NULL ORDER BY 1")[0].rows
            .compactMap { if case .text(let t) = $0.first { t } else { nil } }
        let asids = try ints("SELECT DISTINCT asid FROM events WHERE asid IS NOT NULL ORDER BY 1")
        guard !pages.isEmpty else { return }
        var rng = SplitMix(seed: UInt64(name.utf8.reduce(0) { $0 &* 31 &+ UInt64($1) }))
        func pick<T>(_ list: [T]) -> T { list[Int(rng.next() % UInt64(list.count))] }
        func address(_ pageList: [Int64]) -> Int64 { pick(pageList) * 4096 + Int64(rng.next() % 4096) }
        var clauses: [Clause] = [
            Clause(text: "{spa} < 'text'"), Clause(text: "{spa} > 1.5"), Clause(text: "{spa} = NULL"), Clause(text: "{spa} > -5"), Clause(text: "{spa} BETWEEN 4096 AND 4095"),
            Clause(text: "{spa} < -1"), Clause(text: "{gpa} >= 0 AND {vm} = \(vms.first ?? 0)"), Clause(text: "{seq} < 'x'"),
            Clause(text: "{seq} BETWEEN 3 AND 2"), Clause(text: "{spa} BETWEEN 9223372036854775807 AND -1"),
            Clause(text: "{type} = 'mem'"), Clause(text: "{type} = 'MEM' COLLATE NOCASE"), Clause(text: "{type} = 'vmexit' AND {vm} = 0"),
            Clause(text: "{type} = 'mem' AND {type} = 'reg'"), Clause(text: "{actor} = 1"), Clause(text: "{access} = 'write' AND {cbit} = 0"),
            Clause(text: "{asid} BETWEEN 1 AND 3 AND {type} = 'mem'"), Clause(text: "{cbit} = '1'"), Clause(text: "{vm} = 1"),
            Clause(text: "{actor} = 'hv' AND {access} = 'read' AND {asid} = 0 AND {cbit} = 0 AND {type} = 'mem' AND {vm} >= 0"),
        ]
        for _ in 0..<16 {
            var parts: [String] = []
            switch rng.next() % 6 {
            case 0:
                let a = address(pages), b = address(pages)
                parts.append("{spa} BETWEEN \(min(a, b)) AND \(max(a, b))")
            case 1: parts.append("{spa} = \(address(pages))")
            case 2: parts.append(rng.next() % 2 == 0 ? "{spa} >= \(address(pages))" : "{spa} < \(address(pages))")
            case 3 where !gpaPages.isEmpty:
                let a = address(gpaPages), b = address(gpaPages)
                parts.append("{gpa} BETWEEN \(min(a, b)) AND \(max(a, b))")
                if !vms.isEmpty && rng.next() % 2 == 0 { parts.append("{vm} = \(pick(vms))") }
            case 4 where !gpaPages.isEmpty: parts.append("{gpa} = \(address(gpaPages)) AND {vm} = \(vms.isEmpty ? 0 : pick(vms))")
            default: parts.append("{spa} BETWEEN \(pick(pages) * 4096) AND \(pick(pages) * 4096 + 8191)")
            }
            if rng.next() % 3 == 0 { parts.append("{seq} >= \(Int64(rng.next() % UInt64(lastSeq + 1)))") }
            if rng.next() % 3 == 0 { parts.append("{seq} <= \(Int64(rng.next() % UInt64(lastSeq + 1)))") }
            if rng.next() % 4 == 0 { parts.append("access = 'write'") }
            if rng.next() % 3 == 0 { parts.append("{access} = '\(pick(["read", "write", "fetch", "ptwalk", "dma-read"]))'") }
            if rng.next() % 3 == 0, !actors.isEmpty { parts.append("{actor} = '\(pick(actors))'") }
            if rng.next() % 3 == 0, !asids.isEmpty { parts.append("{asid} = \(pick(asids))") }
            if rng.next() % 4 == 0 { parts.append("{cbit} = \(rng.next() % 2)") }
            if rng.next() % 4 == 0 { parts.append("{type} = '\(pick(["mem", "reg", "psp", "vmexit"]))'") }
            clauses.append(Clause(text: parts.joined(separator: " AND ")))
        }
        for clause in clauses {
            let select = "SELECT count(*), total(seq), total(spa % 1000003), total(value % 1000003) FROM events WHERE "
            let pushed = try engine.run(select + clause.sql(pushed: true))[0].rows
            let scanned = try engine.run(select + clause.sql(pushed: false))[0].rows
            #expect(pushed == scanned, "\(name): \(clause.sql(pushed: true))")
        }
        // The pushed-down form really is the one the table receives.
        let plan = try engine.run("EXPLAIN QUERY PLAN SELECT seq FROM events WHERE spa BETWEEN 0 AND 4095")[0].rows
        #expect(plan.contains { $0.contains { if case .text(let t) = $0 { t.contains("VIRTUAL TABLE INDEX") && !t.contains("INDEX 0:") } else { false } } },
                "\(plan)")
    }
}
