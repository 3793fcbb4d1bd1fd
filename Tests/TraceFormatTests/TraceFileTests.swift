import Foundation
import TestSupport
import Testing
@testable import TraceFormat

struct TraceFileTests {
    /// Records fuzzed events into a bundle with small chunks.
    func record(_ events: [TraceEvent], in dir: TemporaryDirectory, chunkBytes: UInt32 = 4096) throws -> TraceBundle {
        let header = TraceHeader(seed: 9, scenarioName: "fuzz", scenarioText: "# none\n", chunkBytes: chunkBytes)
        let stage = try StagedBundle(at: dir.path + "/t.sevtrace")
        let recorder = try TraceRecorder(directory: stage.staging, header: header)
        for e in events { recorder.record(cycle: e.cycle, e.body) }
        _ = try recorder.finish()
        try stage.commit()
        return stage.bundle
    }

    @Test("events written in many chunks read back identically, and the header keeps replay's inputs")
    func roundTrip() throws {
        let dir = TemporaryDirectory()
        var fuzz = EventFuzzer(state: 11)
        let events = fuzz.events(20_000)
        let bundle = try record(events, in: dir)
        let reader = try bundle.reader()
        #expect(reader.header.seed == 9)
        #expect(reader.header.scenarioText == "# none\n")
        #expect(try reader.allChunks().count > 10)
        var read: [TraceEvent] = []
        try reader.forEachEvent { read.append($0); return true }
        #expect(read == events)
    }

    @Test("a chunk decoded into a buffer that held another keeps the buffer's storage and holds only its own events")
    func decodeIntoReusedBuffer() throws {
        let dir = TemporaryDirectory()
        var fuzz = EventFuzzer(state: 12)
        let bundle = try record(fuzz.events(6_000), in: dir)
        let reader = try bundle.reader()
        let chunks = try reader.allChunks()
        #expect(chunks.count > 3)
        var buffer: [TraceEvent] = []
        try reader.events(of: chunks[0], into: &buffer)
        buffer.reserveCapacity(buffer.count * 4)  // room for any chunk of this trace
        let storage = buffer.withUnsafeBufferPointer { $0.baseAddress }
        for info in chunks.dropFirst() {
            try reader.events(of: info, into: &buffer)
            #expect(buffer == (try reader.events(of: info)))
            #expect(buffer.withUnsafeBufferPointer { $0.baseAddress } == storage)
        }
    }

    @Test("a chunk after one that compressed less than 4:1 drops to level 3; the header's level holds otherwise",
          arguments: [(7, 1000, 100, 7), (7, 1000, 250, 7), (7, 1000, 251, 3), (7, 1000, 1000, 3), (1, 1000, 900, 1),
                      (19, 4000, 999, 19)] as [(Int32, Int, Int, Int32)])
    func chunkLevels(level: Int32, raw: Int, compressed: Int, next: Int32) {
        #expect(TraceWriter.chunkLevel(level, after: raw, compressed: compressed) == next)
    }

    @Test("chunks of random values and of repetitive ones, in turn, read back identically")
    func alternatingCompressibility() throws {
        let dir = TemporaryDirectory()
        var fuzz = EventFuzzer(state: 17)
        var events: [TraceEvent] = []
        for i in 0..<40_000 as Range<UInt64> {
            let random = (i / 5000) % 2 == 1
            events.append(TraceEvent(seq: i, cycle: i * 4, body: .memoryAccess(MemoryAccess(
                actor: .vcpu(vm: 0, index: 0), vm: 0, asid: 1, kind: .read, gva: 0x1000 + i * 8 % 4096, gpa: 0x1000 + i * 8 % 4096,
                spa: 0x10_1000 + i * 8 % 4096, size: 8, cbit: true, reason: .guestPTE, value: random ? fuzz.next() : 7))))
        }
        let bundle = try record(events, in: dir, chunkBytes: 16 << 10)
        let reader = try bundle.reader()
        let chunks = try reader.allChunks()
        #expect(chunks.contains { $0.rawLength >= $0.compressedLength * 4 } && chunks.contains { $0.rawLength < $0.compressedLength * 4 })
        var read: [TraceEvent] = []
        try reader.forEachEvent { read.append($0); return true }
        #expect(read == events)
    }

    @Test("diff compares events across different chunkings, and finds the first changed or missing one")
    func diff() throws {
        var fuzz = EventFuzzer(state: 13)
        let events = fuzz.events(5000)
        let small = TemporaryDirectory(), large = TemporaryDirectory(), changed = TemporaryDirectory(), short = TemporaryDirectory()
        let a = try record(events, in: small, chunkBytes: 1024).reader()
        let b = try record(events, in: large, chunkBytes: 1 << 20).reader()
        #expect(try a.allChunks().count > 5 && b.allChunks().count == 1)
        #expect(try TraceDiff.compare(a, b) == .identical(events: 5000))
        var edited = events
        edited[3210].cycle += 1
        let c = try record(edited, in: changed, chunkBytes: 2048).reader()
        #expect(try TraceDiff.compare(a, c) == .differ(seq: 3210, left: events[3210], right: edited[3210]))
        let d = try record(Array(events.prefix(4000)), in: short).reader()
        #expect(try TraceDiff.compare(a, d) == .differ(seq: 4000, left: events[4000], right: nil))
    }

    @Test("seeking starts at the requested event, in any chunk", arguments: [0, 1, 4321, 19_999] as [UInt64])
    func seek(seq: UInt64) throws {
        let dir = TemporaryDirectory()
        var fuzz = EventFuzzer(state: 12)
        let events = fuzz.events(20_000)
        let reader = try record(events, in: dir).reader()
        var first: TraceEvent?
        try reader.forEachEvent(from: seq) { first = $0; return false }
        #expect(first == events[Int(seq)])
        #expect(try reader.chunk(containing: 20_000) == nil)
    }

    @Test("the index lists every chunk and the page each access touched")
    func index() throws {
        let dir = TemporaryDirectory()
        var fuzz = EventFuzzer(state: 13)
        let events = fuzz.events(5000)
        let bundle = try record(events, in: dir)
        let index = try bundle.index()
        let chunks = try index.database.prepare("SELECT count(*), sum(event_count), max(last_seq) FROM chunks").rows()[0]
        #expect(chunks[0] == .integer(Int64(try bundle.reader().allChunks().count)))
        #expect(chunks[1] == .integer(5000))
        #expect(chunks[2] == .integer(4999))
        let accesses = events.filter { if case .memoryAccess = $0.body { true } else { false } }.count
        let counted = try index.database.prepare("SELECT sum(reads + writes) FROM page_chunks").rows()[0][0]
        #expect(counted == .integer(Int64(accesses)))
        #expect(try index.meta("event_count") == "5000")
        // Not analyzed: verify says so instead of "ok".
        #expect(throws: TraceVerifier.Failure.self) { _ = try TraceVerifier.verify(bundle) }
        try bundle.rewriteIndex { try $0.replaceFindings([], detectors: ["NONE"]) }
        #expect(try TraceVerifier.verify(bundle).events == 5000)
    }

    @Test("a flipped payload byte is detected and names the chunk")
    func corruption() throws {
        let dir = TemporaryDirectory()
        var fuzz = EventFuzzer(state: 14)
        let bundle = try record(fuzz.events(3000), in: dir)
        let chunks = try bundle.reader().allChunks()
        let victim = chunks[2]
        let handle = try #require(FileHandle(forUpdatingAtPath: bundle.eventsPath))
        let at = victim.offset + UInt64(ChunkInfo.headerSize) + 5
        try handle.seek(toOffset: at)
        let byte = try #require(try handle.read(upToCount: 1))
        try handle.seek(toOffset: at)
        try handle.write(contentsOf: Data([byte[0] ^ 0x40]))
        try handle.close()
        let reader = try bundle.reader()
        #expect(throws: TraceError.self) { _ = try reader.events(of: victim) }
        do {
            _ = try TraceVerifier.verify(bundle)
            Issue.record("verify passed a corrupt trace")
        } catch let e as TraceError {
            #expect(e.description.hasPrefix("chunk 2 at offset \(victim.offset): payload checksum mismatch"))
        }
        // The chunks before the damaged one still read.
        #expect(try reader.events(of: chunks[1]).count == Int(chunks[1].eventCount))
    }

    @Test("decoding ahead on another thread hands over every event before a damaged chunk or header, then its error",
          arguments: [(payload: true, stopAfter: Int?.none), (payload: false, stopAfter: nil), (payload: true, stopAfter: 1500)])
    func prefetchOrder(payload: Bool, stopAfter: Int?) throws {
        let dir = TemporaryDirectory()
        var fuzz = EventFuzzer(state: 15)
        let events = fuzz.events(6000)
        let bundle = try record(events, in: dir)
        let chunks = try bundle.reader().allChunks()
        let victim = chunks[4]
        // Damage chunk 4's payload, or its header's magic (then chunk 3 is the last that reads).
        let handle = try #require(FileHandle(forUpdatingAtPath: bundle.eventsPath))
        let at = payload ? victim.offset + UInt64(ChunkInfo.headerSize) + 5 : victim.offset
        try handle.seek(toOffset: at)
        let byte = try #require(try handle.read(upToCount: 1))
        try handle.seek(toOffset: at)
        try handle.write(contentsOf: Data([byte[0] ^ 0x40]))
        try handle.close()
        var seen: [TraceEvent] = []
        let reader = try bundle.reader()
        do {
            try reader.forEachEvent { e in
                seen.append(e)
                return stopAfter.map { seen.count < $0 } ?? true
            }
            #expect(stopAfter != nil, "the damage went unnoticed")
        } catch let e as TraceError {
            #expect(e.description.hasPrefix("chunk 4 at offset \(victim.offset)"), "\(e)")
        }
        let before = events.prefix(Int(victim.firstSeq))
        #expect(seen == Array(before.prefix(stopAfter ?? before.count)))
        // Stopped early, the reader is the caller's again.
        #expect(try reader.events(of: chunks[1]).count == Int(chunks[1].eventCount))
    }

    /// Keeps memory accesses only.
    final class AccessesOnly: EventFilter, @unchecked Sendable {
        override func accepts(_ body: EventBody) -> Bool { Self.isAccess(body) }

        static func isAccess(_ body: EventBody) -> Bool {
            switch body {
            case .memoryAccess: return true
            default: return false
            }
        }
    }

    @Test("decoders taking chunks in turn, filtering as they decode, hand over exactly the kept events in order, then the error",
          arguments: [(1, true), (2, true), (3, true), (2, false)] as [(Int, Bool)])
    func prefetchInTurns(decoders: Int, threaded: Bool) throws {
        let dir = TemporaryDirectory()
        var fuzz = EventFuzzer(state: 19)
        let events = fuzz.events(12_000)
        let bundle = try record(events, in: dir)
        let chunks = try bundle.reader().allChunks()
        #expect(chunks.count > 12)
        let victim = chunks[9]
        let handle = try #require(FileHandle(forUpdatingAtPath: bundle.eventsPath))
        try handle.seek(toOffset: victim.offset + UInt64(ChunkInfo.headerSize) + 3)
        let byte = try #require(try handle.read(upToCount: 1))
        try handle.seek(toOffset: victim.offset + UInt64(ChunkInfo.headerSize) + 3)
        try handle.write(contentsOf: Data([byte[0] ^ 0x10]))
        try handle.close()
        let lower = chunks[2].firstSeq + 5
        if !threaded { ChunkPrefetcher.threaded = false }
        defer { ChunkPrefetcher.threaded = true }
        let prefetcher = ChunkPrefetcher(reader: try bundle.reader(), chunks: .following(1), lower: lower,
                                         keep: { AccessesOnly() }, decoders: decoders)
        var seen: [TraceEvent] = []
        var infos: [Int] = []
        var failure: TraceError?
        do throws(TraceError) {
            while let next = try prefetcher.next() {
                infos.append(next.info.index)
                seen += next.events.filter { $0.seq >= lower }
            }
        } catch {
            failure = error
        }
        let e = try #require(failure, "the damage went unnoticed")
        #expect(e.description.hasPrefix("chunk 9 at offset \(victim.offset)"), "\(e)")
        #expect(infos == Array(1...8))
        let expected = events[Int(lower)..<Int(victim.firstSeq)].filter { AccessesOnly.isAccess($0.body) }
        #expect(seen == Array(expected))
        prefetcher.stop()
    }

    @Test("a recorder stopped mid-chunk leaves every complete chunk readable")
    func truncatedTail() throws {
        let dir = TemporaryDirectory()
        var fuzz = EventFuzzer(state: 15)
        let events = fuzz.events(3000)
        let bundle = try record(events, in: dir)
        let chunks = try bundle.reader().allChunks()
        let cut = chunks[3].offset + 30
        try FileHandle(forUpdatingAtPath: bundle.eventsPath)!.truncate(atOffset: cut)
        let reader = try bundle.reader()
        var read: [TraceEvent] = []
        do {
            try reader.forEachEvent { read.append($0); return true }
            Issue.record("a truncated chunk went unnoticed")
        } catch let e as TraceError {
            #expect(e == .truncatedChunk(chunk: 3, offset: chunks[3].offset))
        }
        #expect(read == Array(events.prefix(Int(chunks[3].firstSeq))))
    }

    @Test("a file that is not a trace is refused")
    func notATrace() throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/x"
        try Data("hello world, not a trace".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: TraceError.notATrace(path: path)) { _ = try TraceReader(path: path) }
    }

    @Test("creating a bundle refuses to replace a directory that is not one")
    func refusesToClobber() throws {
        let dir = TemporaryDirectory()
        let other = dir.path + "/precious"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: URL(fileURLWithPath: other + "/notes.txt"))
        #expect(throws: TraceError.self) { _ = try StagedBundle(at: other) }
        #expect(FileManager.default.fileExists(atPath: other + "/notes.txt"))
    }
}

extension TraceFileTests {
    @Test("a finding's fingerprint ignores sequence numbers, counts, lengths and severity; it follows what and where")
    func fingerprints() {
        let base = Finding(detector: "PRIVATE_TO_SHARED", severity: .high, vm: 0, asid: 1, actor: "vcpu0.0", sourceSeq: 10,
                           sinkSeq: 20, sinkLastSeq: 20, sourceSPA: 0x1000, sinkSPA: 0x1200000, sinkGPA: 0x200000, length: 16,
                           labels: "secret:key", preview: "00", summary: "vcpu0.0 wrote 16 bytes of secret key into shared memory at gpa 0x200000 (events #10 -> #20)")
        var shifted = base
        (shifted.sourceSeq, shifted.sinkSeq, shifted.sinkLastSeq, shifted.length, shifted.occurrences, shifted.severity) = (99, 120, 130, 32, 3, .medium)
        shifted.summary = "vcpu0.0 wrote 32 bytes of secret key into shared memory at gpa 0x200000 (events #99 -> #120)"
        #expect(base.fingerprint == shifted.fingerprint)
        #expect(base.fingerprint.count == 16 && base.fingerprint.allSatisfy(\.isHexDigit))
        for change in [{ (f: inout Finding) in f.detector = "PRIVATE_TO_DMA" }, { $0.labels = "secret:other" },
                       { $0.sinkGPA = 0x201000 }, { $0.vm = 1 }, { $0.actor = "hv" },
                       { $0.summary = "vcpu0.0 wrote 16 bytes of secret key into shared memory at gpa 0x200800" }] {
            var other = base
            change(&other)
            #expect(other.fingerprint != base.fingerprint, "\(other)")
        }
    }
}
