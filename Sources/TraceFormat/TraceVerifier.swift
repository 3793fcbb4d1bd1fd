import Foundation

/// Checks a bundle: that it holds only its own regular files, every chunk's header and payload
/// checksum, that every event decodes and sequence numbers run on without a gap, that the index has
/// exactly the expected schema and describes exactly these events, and that its findings come from an
/// analysis that ran to the end.
public enum TraceVerifier {
    /// What a successful verification saw.
    public struct Report: Sendable {
        public var chunks: Int
        public var events: UInt64
        public var findings: Int
    }

    /// A check that failed.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Verifies the bundle; throws ``TraceError`` for a damaged events file, ``Failure`` for anything
    /// else that is wrong (the index, the analysis, stray files).
    public static func verify(_ bundle: TraceBundle) throws -> Report {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: bundle.path)) ?? []
        if let stray = entries.sorted().first(where: { !TraceBundle.knownFiles.contains($0) }) {
            throw Failure(message: "\(bundle.path)/\(stray): not part of a trace bundle (a journal or file planted beside the index?)")
        }
        let reader = try bundle.reader()
        var chunk = 0
        var events: UInt64 = 0
        while let info = try reader.chunkInfo(chunk) {
            let decoded = try reader.events(of: info)
            if let last = decoded.last, last.cycle != info.lastCycle || decoded[0].cycle != info.firstCycle {
                throw TraceError.corruptChunk(chunk: info.index, offset: info.offset,
                                              reason: "cycles \(decoded[0].cycle)...\(last.cycle) differ from the header's \(info.firstCycle)...\(info.lastCycle)")
            }
            events += UInt64(decoded.count)
            chunk += 1
        }
        do {
            return try verifyIndex(bundle, chunks: chunk, events: events)
        } catch let e as Failure {
            throw e
        } catch {
            throw Failure(message: "\(error)")
        }
    }

    private static func verifyIndex(_ bundle: TraceBundle, chunks: Int, events: UInt64) throws -> Report {
        let index = try bundle.index()
        let header = try FileDescriptor.openForReading(bundle.indexPath).read(count: 20, at: 0)
        if header.count == 20 && (header[18] != 1 || header[19] != 1) {
            throw Failure(message: "\(bundle.indexPath): the index is in WAL mode; indexes are written with a rollback journal")
        }
        // Rebuild the event-derived tables and compare them with the stored index, table by table.
        var template = Array((NSTemporaryDirectory() + "/sev-trace-verify-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw TraceError.io(path: NSTemporaryDirectory(), reason: "cannot make a temporary directory") }
        let dir = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let rebuiltPath = dir + "/index.sqlite"
        try bundle.buildIndex(at: rebuiltPath)
        let rebuilt = try SQLiteDatabase(path: rebuiltPath, mode: .readWrite)
        let uri = SQLiteDatabase.uri(bundle.indexPath) + "?mode=ro&immutable=1"
        try rebuilt.execute("ATTACH DATABASE '\(uri.replacingOccurrences(of: "'", with: "''"))' AS stored")
        for table in TraceIndex.eventTables {
            for (a, b) in [("main", "stored"), ("stored", "main")] {
                let stmt = try rebuilt.prepare("SELECT count(*) FROM (SELECT * FROM \(a).\(table) EXCEPT SELECT * FROM \(b).\(table))")
                _ = try stmt.step()
                let n = stmt.int(0)
                if n != 0 {
                    throw Failure(message: "index table \(table) differs from the events: \(n) row(s) \(a == "main" ? "missing from" : "not derived from events in") the stored index")
                }
            }
        }
        for key in ["event_count", "chunk_count", "format_version"] {
            let stmt = try rebuilt.prepare("SELECT value FROM main.meta WHERE key = ?1")
            try stmt.bind([.text(key)])
            let want = try stmt.step() ? stmt.text(0) : ""
            let have = try index.meta(key) ?? "(missing)"
            if want != have { throw Failure(message: "index meta \(key) is \(have), the events say \(want)") }
        }
        if let problem = try index.analysisProblem() { throw Failure(message: problem) }
        let findings = try index.findings()
        if let bad = findings.first(where: { $0.sinkSeq >= events || $0.sinkLastSeq >= events || $0.sourceSeq >= events }) {
            throw Failure(message: "finding \(bad.detector) refers to event \(max(bad.sinkLastSeq, bad.sourceSeq)) beyond the trace's \(events) events")
        }
        return Report(chunks: chunks, events: events, findings: findings.count)
    }
}
