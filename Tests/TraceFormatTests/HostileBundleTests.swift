import Foundation
import TestSupport
import Testing
@testable import TraceFormat

/// Bundles made by a stranger: forged headers, zstd bombs, invalid events, planted schema objects,
/// symlinks, FIFOs, journals and WAL files. Each gets a clean error within bounded memory, and no
/// reader writes anything.
@Suite(.serialized)
struct HostileBundleTests {
    /// A small analyzed bundle of valid random events.
    static func bundle(in dir: TemporaryDirectory, events count: Int = 2000) throws -> TraceBundle {
        var fuzz = EventFuzzer(state: 21)
        let stage = try StagedBundle(at: dir.path + "/h.sevtrace")
        let recorder = try TraceRecorder(directory: stage.staging,
                                         header: TraceHeader(seed: 1, scenarioName: "h", scenarioText: "# h\n", chunkBytes: 4096))
        for e in fuzz.events(count) { recorder.record(cycle: e.cycle, e.body) }
        _ = try recorder.finish()
        try stage.commit()
        try stage.bundle.rewriteIndex { try $0.replaceFindings([], detectors: ["NONE"]) }
        return stage.bundle
    }

    /// Replaces chunk 0 with a header whose fields are `edit`ed (checksums recomputed) and `payload`.
    static func forgeFirstChunk(_ bundle: TraceBundle, payload: [UInt8]? = nil, _ edit: (inout ChunkInfo) -> Void) throws {
        let reader = try bundle.reader()
        var info = try #require(try reader.chunkInfo(0))
        let original = try reader.rawBytes(at: info.offset + UInt64(ChunkInfo.headerSize), count: Int(info.compressedLength))
        let body = payload ?? original
        info.compressedLength = UInt32(body.count)
        info.payloadChecksum = CRC32C.checksum(body)
        edit(&info)
        let head = try reader.rawBytes(at: 0, count: Int(info.offset))
        try Data(head + info.encodedHeader() + body).write(to: URL(fileURLWithPath: bundle.eventsPath))
    }

    static func error(_ body: () throws -> Void) -> String {
        do { try body() } catch { return "\(error)" }
        return "(no error)"
    }

    static func readAll(_ bundle: TraceBundle) throws {
        try bundle.reader().forEachEvent { _ in true }
    }

    @Test("a chunk header announcing a huge raw length or event count is refused before anything is allocated")
    func oversizedChunkHeaders() throws {
        let dir = TemporaryDirectory()
        let b = try Self.bundle(in: dir)
        let original = try Data(contentsOf: URL(fileURLWithPath: b.eventsPath))
        try Self.forgeFirstChunk(b) { $0.rawLength = 0xFFFF_FFF0 }
        #expect(Self.error { try Self.readAll(b) }.contains("raw length 4294967280 exceeds"))
        try original.write(to: URL(fileURLWithPath: b.eventsPath))
        try Self.forgeFirstChunk(b) { $0.eventCount = 0xFFFF_FFFF }
        #expect(Self.error { try Self.readAll(b) }.contains("event count 4294967295 exceeds the raw length"))
    }

    @Test("a small zstd frame that inflates to 64 MiB stops at the size its header announces")
    func zstdBomb() throws {
        let dir = TemporaryDirectory()
        let b = try Self.bundle(in: dir)
        let bomb = try ZstdCompressor(level: 19).compress([UInt8](repeating: 0, count: 64 << 20))
        #expect(bomb.count < 64 << 10)
        try Self.forgeFirstChunk(b, payload: bomb) { $0.rawLength = 4096 }
        let message = Self.error { try Self.readAll(b) }
        #expect(message.hasPrefix("chunk 0 at offset"), "\(message)")
    }

    @Test("a header with a chunk size or length out of bounds is a corrupt header", arguments: [UInt32(0), 100, 1 << 30])
    func headerBounds(_ chunkBytes: UInt32) throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/events.zst"
        try Data(TraceHeader(seed: 1, scenarioName: "x", scenarioText: "", chunkBytes: chunkBytes).encoded())
            .write(to: URL(fileURLWithPath: path))
        #expect(Self.error { _ = try TraceReader(path: path) }.contains("chunk size \(chunkBytes) is outside"))
        var huge = Array("SEVTRACE".utf8) + [UInt8(TraceHeader.formatVersion), 0]
        huge += [0xFF, 0xFF, 0xFF, 0x7F]
        try Data(huge).write(to: URL(fileURLWithPath: path))
        #expect(Self.error { _ = try TraceReader(path: path) }.contains("exceeds the limit"))
    }

    @Test("an event the decoder accepts but no recorder writes is refused, naming its seq")
    func invalidEvent() throws {
        let dir = TemporaryDirectory()
        let b = try Self.bundle(in: dir)
        var w = ByteWriter()
        var encoder = EventEncoder()
        let bad = MemoryAccess(actor: .hypervisor, vm: 0, asid: 0, kind: .read, gva: 0, gpa: 0, spa: UInt64.max - 2, size: 8,
                               cbit: false, reason: .host)
        encoder.encode(cycle: 1, .memoryAccess(bad), into: &w)
        let frame = try ZstdCompressor().compress(w.bytes)
        try Self.forgeFirstChunk(b, payload: frame) {
            $0.rawLength = UInt32(w.count)
            $0.eventCount = 1
        }
        let message = Self.error { _ = try b.reader().events(of: try #require(try b.reader().chunkInfo(0))) }
        #expect(message.contains("event 0: access range wraps around the address space"), "\(message)")
        for (body, problem) in [(EventBody.memoryAccess(MemoryAccess(actor: .psp, vm: 0, asid: 0, kind: .read, gva: 0, gpa: 0, spa: 0,
                                                                       size: 0, cbit: false, reason: .host)), "access size 0"),
                                (.taintSource(TaintSource(vm: 0, name: "k", gpa: 0, spa: 0, length: 1 << 40)), "secret of"),
                                (.nptChange(NPTChange(vm: 0, op: .map, gpa: 0, spa: 0, pages: UInt64.max / 2)), "NPT change of"),
                                (.registerOp(RegisterOp(vm: 0, vcpu: 0, op: .move, dst: 200, src: 1, result: 0)), "destination register")] {
            #expect(body.validationProblem?.hasPrefix(problem) == true, "\(problem)")
            #expect(!body.isValid, "\(problem)")
        }
    }

    @Test("the reader's quick check (isValid) passes exactly the events that have no validation problem")
    func quickCheckAgrees() {
        var fuzz = EventFuzzer(state: 77)
        var bodies: [EventBody] = (0..<4000).map { _ in fuzz.body() }
        // The two kinds checked in line, broken every way the full check knows.
        let access = MemoryAccess(actor: .vcpu(vm: 0, index: 1), vm: 0, asid: 1, kind: .write, gva: 0x1000, gpa: 0x2000, spa: 0x3000,
                                  size: 8, cbit: true, reason: .guestPTE, register: 3, value: 7)
        for change in [{ (a: inout MemoryAccess) in a.size = 0 }, { $0.size = TraceLimits.maxAccessBytes + 1 },
                       { $0.spa = UInt64.max - 3 }, { $0.gva = UInt64.max }, { $0.gpa = UInt64.max - 1 }, { $0.register = 99 },
                       { $0.actor = .vcpu(vm: 0, index: 1024) }, { _ in }] as [(inout MemoryAccess) -> Void] {
            var a = access
            change(&a)
            bodies.append(.memoryAccess(a))
        }
        for (dst, src) in [(UInt8(3), UInt8(4)), (200, 1), (1, 200), (1, MemoryAccess.noRegister)] {
            bodies.append(.registerOp(RegisterOp(vm: 0, vcpu: 0, op: .add, dst: dst, src: src, result: 0)))
        }
        var invalid = 0
        for body in bodies {
            #expect(body.isValid == (body.validationProblem == nil), "\(body)")
            if !body.isValid { invalid += 1 }
        }
        #expect(invalid >= 9)
    }

    @Test("symlinks and FIFOs in a bundle are refused, without blocking")
    func nonRegularFiles() throws {
        let dir = TemporaryDirectory()
        let b = try Self.bundle(in: dir)
        let outside = dir.path + "/outside.sqlite"
        try FileManager.default.moveItem(atPath: b.indexPath, toPath: outside)
        try FileManager.default.createSymbolicLink(atPath: b.indexPath, withDestinationPath: outside)
        #expect(Self.error { _ = try TraceBundle(existing: b.path) }.contains("is not a regular file"))
        let before = try Data(contentsOf: URL(fileURLWithPath: outside))
        #expect(throws: (any Error).self) { _ = try TraceBundle(existing: b.path).index() }
        #expect(try Data(contentsOf: URL(fileURLWithPath: outside)) == before)
        try FileManager.default.removeItem(atPath: b.indexPath)
        #expect(mkfifo(b.indexPath, 0o644) == 0)
        #expect(Self.error { _ = try TraceBundle(existing: b.path) }.contains("is not a regular file"))
        #expect(Self.error { _ = try TraceIndex(path: b.indexPath) }.contains("not a sev-trace index"))
        try FileManager.default.removeItem(atPath: b.eventsPath)
        #expect(mkfifo(b.eventsPath, 0o644) == 0)
        #expect(Self.error { _ = try TraceReader(path: b.eventsPath) }.contains("is not a regular file"))
    }

    @Test("a table, view or trigger planted in the index makes every reader and verify refuse it",
          arguments: ["CREATE TABLE events(seq INTEGER)",
                      "CREATE VIEW events AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n AS seq FROM r",
                      "CREATE TRIGGER t AFTER INSERT ON findings BEGIN DELETE FROM findings; END",
                      "CREATE INDEX extra ON findings(detector)",
                      "DROP VIEW asid_bindings"])
    func plantedSchema(_ sql: String) throws {
        let dir = TemporaryDirectory()
        let b = try Self.bundle(in: dir)
        try SQLiteDatabase(path: b.indexPath, mode: .readWrite).execute(sql)
        let message = Self.error { _ = try b.index() }
        #expect(message.contains("rebuild the index with `sev-trace reindex`"), "\(message)")
        #expect(throws: (any Error).self) { _ = try TraceVerifier.verify(b) }
        // reindex repairs it.
        try b.rebuildIndex { try $0.replaceFindings([], detectors: ["NONE"]) }
        #expect(try TraceVerifier.verify(b).events == 2000)
    }

    @Test("readers create nothing beside a WAL-mode index or a planted hot journal, and verify reports both")
    func journalsAndWAL() throws {
        let dir = TemporaryDirectory()
        let b = try Self.bundle(in: dir)
        let pristine = try Data(contentsOf: URL(fileURLWithPath: b.indexPath))
        try Data(repeating: 0xA5, count: 4096).write(to: URL(fileURLWithPath: b.indexPath + "-journal"))
        _ = try b.index().meta()
        #expect(try Data(contentsOf: URL(fileURLWithPath: b.indexPath)) == pristine)
        #expect(Self.error { _ = try TraceVerifier.verify(b) }.contains("index.sqlite-journal: not part of a trace bundle"))
        try FileManager.default.removeItem(atPath: b.indexPath + "-journal")

        do {
            let db = try SQLiteDatabase(path: b.indexPath, mode: .readWrite)
            try db.execute("PRAGMA journal_mode = WAL")
        }
        try? FileManager.default.removeItem(atPath: b.indexPath + "-wal")
        try? FileManager.default.removeItem(atPath: b.indexPath + "-shm")
        let before = try FileManager.default.contentsOfDirectory(atPath: b.path).sorted()
        _ = try b.index().meta()
        #expect(try FileManager.default.contentsOfDirectory(atPath: b.path).sorted() == before)
        #expect(Self.error { _ = try TraceVerifier.verify(b) }.contains("WAL mode"))
    }

    @Test("an index whose analysis is missing, or whose findings do not match its analysis record, fails verify")
    func analysisRecord() throws {
        let dir = TemporaryDirectory()
        let b = try Self.bundle(in: dir)
        #expect(try TraceVerifier.verify(b).findings == 0)
        try SQLiteDatabase(path: b.indexPath, mode: .readWrite).execute("UPDATE meta SET value = 'none' WHERE key = 'analysis'")
        #expect(Self.error { _ = try TraceVerifier.verify(b) }.contains("was not analyzed"))
        try b.rewriteIndex { try $0.replaceFindings([], detectors: ["NONE"]) }
        try SQLiteDatabase(path: b.indexPath, mode: .readWrite).execute("""
            INSERT INTO findings VALUES (1, 'X', 'high', 3, NULL, 0, 'hv', 0, 0, 0, 0, 0, 0, 0, '', '', 'planted', 1, '0000000000000000')
            """)
        #expect(Self.error { _ = try TraceVerifier.verify(b) }.contains("holds 1 findings but its analysis recorded 0"))
    }

    @Test("a torn tail is salvaged into a bundle of every complete chunk; the cut is reported")
    func salvage() throws {
        let dir = TemporaryDirectory()
        let b = try Self.bundle(in: dir)
        let chunks = try b.reader().allChunks()
        try FileHandle(forUpdatingAtPath: b.eventsPath)!.truncate(atOffset: chunks[5].offset + 20)
        #expect(Self.error { try Self.readAll(b) }.contains("file ends inside the chunk"))
        let report = try TraceSalvage.salvage(b, to: dir.path + "/saved.sevtrace") { staging in
            try TraceIndex(path: staging.indexPath, writable: true).replaceFindings([], detectors: ["NONE"])
        }
        #expect(report.chunks == 5)
        #expect(report.events == chunks[4].lastSeq + 1)
        #expect(report.cut?.contains("chunk 5 at offset \(chunks[5].offset)") == true)
        #expect(report.cutBytes == 20)
        #expect(try TraceVerifier.verify(report.bundle).events == report.events)
    }

    @Test("names a bundle carries print with their control and format characters escaped")
    func printableNames() {
        #expect(printable("vm\u{1B}[2J\u{202E}x\u{85}") == "vm\\u{1B}[2J\\u{202E}x\\u{85}")
        #expect(printable("plain é ✓") == "plain é ✓")
        let line = EventFormatter.line(TraceEvent(seq: 0, cycle: 0, body: .vmCreated(VMCreated(
            vm: 0, platform: 0, name: "evil\u{1B}]0;owned\u{07}", asid: 1, policy: 0, memoryBytes: 4096, vcpus: 1, sev: true))))
        #expect(!line.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 })
    }
}
