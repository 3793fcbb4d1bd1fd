import Foundation

/// Checks a bundle: every chunk's header and payload checksum, that every event decodes and sequence
/// numbers run on without a gap, and that the index describes exactly these events.
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

    /// Verifies the bundle; throws ``TraceError`` for a damaged events file, ``Failure`` for an index that
    /// does not match it.
    public static func verify(_ bundle: TraceBundle) throws -> Report {
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
        let index = try bundle.index()
        // Rebuild the event-derived tables and compare them with the stored index, table by table.
        var template = Array((NSTemporaryDirectory() + "/sev-trace-verify-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw TraceError.io(path: NSTemporaryDirectory(), reason: "cannot make a temporary directory") }
        let dir = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let rebuiltPath = try bundle.rebuildIndex(at: dir + "/index.sqlite")
        let rebuilt = try SQLiteDatabase(path: rebuiltPath, mode: .readWrite)
        let uri = "file:" + bundle.indexPath.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed)! + "?mode=ro"
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
            let want = try String(rebuilt.prepare("SELECT value FROM main.meta WHERE key = '\(key)'").rows().first?.first.map { v in
                if case .text(let s) = v { s } else { "" }
            } ?? "")
            let have = try index.meta(key) ?? "(missing)"
            if want != have { throw Failure(message: "index meta \(key) is \(have), the events say \(want)") }
        }
        let findings = try index.findings()
        if let bad = findings.first(where: { $0.sinkSeq >= events || $0.sinkLastSeq >= events || $0.sourceSeq >= events }) {
            throw Failure(message: "finding \(bad.detector) refers to event \(max(bad.sinkLastSeq, bad.sourceSeq)) beyond the trace's \(events) events")
        }
        return Report(chunks: chunk, events: events, findings: findings.count)
    }
}
