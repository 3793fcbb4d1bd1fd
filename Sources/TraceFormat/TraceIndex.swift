/// `index.sqlite`: data derived from `events.zst`, for seeking and for SQL. The tables are documented
/// in Queries/README.md; ``schema`` is the authority.
public final class TraceIndex {
    /// The statements that create an empty index (the tables of one kind of event come from ``EventSchema``).
    public static let schema = EventSchema.storedDDL + "\n" + fixedSchema

    /// The tables and views not made of one kind of event.
    static let fixedSchema = """
        CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE chunks(chunk INTEGER PRIMARY KEY, offset INTEGER NOT NULL, first_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL, event_count INTEGER NOT NULL, raw_bytes INTEGER NOT NULL,
            compressed_bytes INTEGER NOT NULL, first_cycle INTEGER NOT NULL, last_cycle INTEGER NOT NULL,
            checksum INTEGER NOT NULL);
        CREATE TABLE page_chunks(spa_page INTEGER NOT NULL, chunk INTEGER NOT NULL, vm INTEGER, gpa_page INTEGER,
            reads INTEGER NOT NULL, writes INTEGER NOT NULL);
        CREATE INDEX page_chunks_by_spa ON page_chunks(spa_page, chunk);
        CREATE INDEX page_chunks_by_gpa ON page_chunks(vm, gpa_page, chunk);
        CREATE TABLE event_counts(chunk INTEGER NOT NULL, type TEXT NOT NULL, actor TEXT, access TEXT, vm INTEGER,
            asid INTEGER, cbit INTEGER, events INTEGER NOT NULL);
        CREATE INDEX event_counts_by_type ON event_counts(type, chunk);
        CREATE VIEW asid_bindings AS
            SELECT seq, cycle, platform, handle, asid, CASE command WHEN 33 THEN 'bind' ELSE 'unbind' END AS op
            FROM psp_commands WHERE command IN (33, 34) AND status = 0;
        CREATE TABLE findings(id INTEGER PRIMARY KEY, detector TEXT NOT NULL, severity TEXT NOT NULL,
            severity_rank INTEGER NOT NULL, vm INTEGER, asid INTEGER NOT NULL, actor TEXT NOT NULL,
            source_seq INTEGER NOT NULL, sink_seq INTEGER NOT NULL, sink_last_seq INTEGER NOT NULL,
            source_spa INTEGER NOT NULL, sink_spa INTEGER NOT NULL, sink_gpa INTEGER NOT NULL, length INTEGER NOT NULL,
            labels TEXT NOT NULL, preview TEXT NOT NULL, summary TEXT NOT NULL, occurrences INTEGER NOT NULL,
            fingerprint TEXT NOT NULL);
        CREATE TABLE flows(finding INTEGER NOT NULL, step INTEGER NOT NULL, seq INTEGER NOT NULL, role TEXT NOT NULL,
            PRIMARY KEY(finding, step));
        """

    /// The tables derived from events alone (`findings` comes from the analyzer).
    public static let eventTables = ["chunks", "page_chunks", "event_counts"] + EventSchema.stored.map(\.name)

    public let database: SQLiteDatabase

    /// Opens an existing index, after checking that its schema is exactly ``schema``: a table, view,
    /// index or trigger that is not ours (one that would shadow `events`, rewrite findings or run away)
    /// makes the index unusable until `sev-trace reindex` rebuilds it.
    /// - Parameter temporary: a read-only index that may hold TEMP tables and views of its own, in memory.
    public init(path: String, writable: Bool = false, temporary: Bool = false) throws(TraceError) {
        // SQLite would block opening a FIFO and follow no symlink only for the last component.
        let kind = FileDescriptor.kind(of: path)
        guard kind.exists, kind.regular else {
            throw TraceError.badIndex(path: path, reason: kind.exists ? "not a sev-trace index: not a regular file" : "missing")
        }
        do {
            database = try SQLiteDatabase(path: path, mode: writable ? .readWrite : temporary ? .readOnlyWithTemporary : .readOnly)
        } catch {
            throw TraceError.badIndex(path: path, reason: "not a sev-trace index: \(error.message)")
        }
        let problem: String?
        do { problem = try Self.schemaProblem(database) } catch {
            throw TraceError.badIndex(path: path, reason: "not a sev-trace index: \(error.message)")
        }
        if let problem {
            throw TraceError.badIndex(path: path, reason: "\(problem) (rebuild the index with `sev-trace reindex`)")
        }
    }

    /// The rows of `sqlite_schema` an index made from ``schema`` holds, sorted.
    private static let expectedSchema: [[String]] = {
        guard let db = try? SQLiteDatabase(path: ":memory:", mode: .create), (try? db.execute(schema)) != nil,
              let rows = try? schemaRows(db, limit: 1000) else { return [] }
        return rows
    }()

    private static func schemaRows(_ db: SQLiteDatabase, limit: Int) throws(SQLiteError) -> [[String]] {
        let stmt = try db.prepare("SELECT type, name, tbl_name, coalesce(sql, '') FROM main.sqlite_schema ORDER BY type, name")
        var rows: [[String]] = []
        while try stmt.step() {
            rows.append([stmt.text(0), stmt.text(1), stmt.text(2), normalized(stmt.text(3))])
            // A damaged or hostile file can hold any number of objects: a few past ours is enough to say so.
            if rows.count >= limit { break }
        }
        return rows
    }

    /// SQL with each run of white space one space: how a statement is laid out is not what it defines, and
    /// indexes written before the tables were declared in ``EventSchema`` laid theirs out by hand.
    static func normalized(_ sql: String) -> String {
        sql.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }).joined(separator: " ")
    }

    /// What differs between the index's schema and ``schema``, or nil when nothing does.
    static func schemaProblem(_ db: SQLiteDatabase) throws(SQLiteError) -> String? {
        let have = try schemaRows(db, limit: expectedSchema.count + 1)
        let expected = expectedSchema
        if let extra = have.first(where: { !expected.contains($0) }) {
            let known = expected.contains { $0[0] == extra[0] && $0[1] == extra[1] }
            return known ? "\(extra[0]) \(extra[1]) is not defined as this tool defines it"
                         : "unexpected \(extra[0]) \(extra[1]) in the index"
        }
        if let missing = expected.first(where: { !have.contains($0) }) { return "\(missing[0]) \(missing[1]) is missing from the index" }
        let version = try db.prepare("SELECT value FROM meta WHERE key = 'format_version'")
        guard try version.step(), version.text(0) == String(TraceHeader.formatVersion) else {
            return "the index is not of trace format version \(TraceHeader.formatVersion)"
        }
        return nil
    }

    /// The `meta` table as pairs, sorted by key.
    public func meta() throws(SQLiteError) -> [(String, String)] {
        let stmt = try database.prepare("SELECT key, value FROM meta ORDER BY key")
        var out: [(String, String)] = []
        while try stmt.step() { out.append((stmt.text(0), stmt.text(1))) }
        return out
    }

    /// One `meta` value.
    public func meta(_ key: String) throws(SQLiteError) -> String? {
        let stmt = try database.prepare("SELECT value FROM meta WHERE key = ?1")
        try stmt.bind([.text(key)])
        return try stmt.step() ? stmt.text(0) : nil
    }

    /// What ``replaceFindings(_:detectors:)`` stores for `findings` of `detectors`: with the findings of
    /// detectors that did not run this time kept (when a complete analysis stored them), in the order the
    /// analyzer reports, and the analysis record; and whether the index holds exactly that already.
    private func analysis(_ findings: [Finding], detectors: [String]) throws(SQLiteError)
        -> (findings: [Finding], record: [(key: String, value: String)], held: Bool) {
        var findings = findings
        var ran = Set(detectors)
        let stored = try analysisProblem() == nil ? try self.findings() : nil
        if let stored, let previous = try meta("analysis_detectors") {
            let others = Set(previous.split(separator: ",").map(String.init)).subtracting(ran)
            if !others.isEmpty {
                let kept = stored.filter { others.contains($0.detector) }
                // One list in the order the analyzer reports: by first sink event, stable.
                findings = (kept + findings).enumerated().sorted { ($0.element.sinkSeq, $0.offset) < ($1.element.sinkSeq, $1.offset) }
                    .map(\.element)
                ran.formUnion(others)
            }
        }
        let record = [("analysis", "complete"), ("analysis_detectors", ran.sorted().joined(separator: ",")),
                      ("analysis_tool_version", ToolVersion.current), ("analysis_findings", String(findings.count))]
        var held = stored == findings
        for (key, value) in record where held { held = try meta(key) == value }
        return (findings, record, held)
    }

    /// Whether the index already holds exactly what ``replaceFindings(_:detectors:)`` would store: then
    /// a writer need not rewrite it (a committed trace analyzed again keeps its bytes).
    public func holds(_ findings: [Finding], detectors: [String]) throws(SQLiteError) -> Bool {
        try analysis(findings, detectors: detectors).held
    }

    /// Replaces the findings of `detectors` with `findings` (the findings table is the only one a reader
    /// of a finished trace may rewrite), and records in `meta`, in the same transaction, that an analysis
    /// ran to the end. The findings of detectors that did not run this time stay, when a complete analysis
    /// had stored them, and the recorded detector set is then the union of both.
    public func replaceFindings(_ findings: [Finding], detectors: [String]) throws(SQLiteError) {
        let (findings, record, _) = try analysis(findings, detectors: detectors)
        try database.execute("BEGIN IMMEDIATE")
        do {
            try database.execute("DELETE FROM findings; DELETE FROM flows;")
            let meta = try database.prepare("INSERT OR REPLACE INTO meta VALUES (?1, ?2)")
            for (key, value) in record { try meta.run([.text(key), .text(value)]) }
            let flow = try database.prepare("INSERT INTO flows VALUES (?1, ?2, ?3, ?4)")
            let insert = try database.prepare("""
                INSERT INTO findings(id, detector, severity, severity_rank, vm, asid, actor, source_seq, sink_seq,
                    sink_last_seq, source_spa, sink_spa, sink_gpa, length, labels, preview, summary, occurrences, fingerprint)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
                """)
            for (i, f) in findings.enumerated() {
                try insert.run([
                    .integer(Int64(i + 1)), .text(f.detector), .text(f.severity.description),
                    .integer(Int64(f.severity.rawValue)),
                    f.vm == MemoryAccess.noVM ? .null : .integer(Int64(f.vm)), .integer(Int64(f.asid)),
                    .text(f.actor), .integer(Int64(bitPattern: f.sourceSeq)), .integer(Int64(bitPattern: f.sinkSeq)),
                    .integer(Int64(bitPattern: f.sinkLastSeq)), .integer(Int64(bitPattern: f.sourceSPA)),
                    .integer(Int64(bitPattern: f.sinkSPA)), .integer(Int64(bitPattern: f.sinkGPA)),
                    .integer(Int64(bitPattern: f.length)), .text(f.labels), .text(f.preview), .text(f.summary),
                    .integer(Int64(bitPattern: f.occurrences)), .text(f.fingerprint),
                ])
                for (step, s) in f.flow.enumerated() {
                    try flow.run([.integer(Int64(i + 1)), .integer(Int64(step)), .integer(Int64(bitPattern: s.seq)), .text(s.role.rawValue)])
                }
            }
            try database.execute("COMMIT")
        } catch {
            try? database.execute("ROLLBACK")
            throw error
        }
    }

    /// Whether the findings come from an analysis that ran to the end: nil when they do, else why not.
    public func analysisProblem() throws(SQLiteError) -> String? {
        guard try meta("analysis") == "complete" else {
            return "the trace was not analyzed, or its analysis did not finish: its findings are not to be trusted (run `sev-trace analyze`)"
        }
        let stored = try meta("analysis_findings")
        let count = try database.prepare("SELECT count(*) FROM findings")
        _ = try count.step()
        guard stored == String(count.int(0)) else {
            return "the index holds \(count.int(0)) findings but its analysis recorded \(stored ?? "none")"
        }
        return nil
    }

    /// The findings, in id order, with their flows.
    public func findings() throws(SQLiteError) -> [Finding] {
        let steps = try database.prepare("SELECT finding, seq, role FROM flows ORDER BY finding, step")
        var flows: [Int64: [FlowStep]] = [:]
        while try steps.step() { flows[steps.int(0), default: []].append(FlowStep(seq: UInt64(bitPattern: steps.int(1)), role: FlowRole(rawValue: steps.text(2)) ?? .sink)) }
        let stmt = try database.prepare("""
            SELECT detector, severity_rank, vm, asid, actor, source_seq, sink_seq, sink_last_seq, source_spa, sink_spa,
                   sink_gpa, length, labels, preview, summary, id, occurrences FROM findings ORDER BY id
            """)
        var out: [Finding] = []
        while try stmt.step() {
            let vm = stmt.column(2) == .null ? MemoryAccess.noVM : UInt16(truncatingIfNeeded: stmt.int(2))
            out.append(Finding(
                detector: stmt.text(0), severity: Severity(rawValue: Int(stmt.int(1))) ?? .info, vm: vm,
                asid: UInt16(truncatingIfNeeded: stmt.int(3)), actor: stmt.text(4),
                sourceSeq: UInt64(bitPattern: stmt.int(5)), sinkSeq: UInt64(bitPattern: stmt.int(6)),
                sinkLastSeq: UInt64(bitPattern: stmt.int(7)), sourceSPA: UInt64(bitPattern: stmt.int(8)),
                sinkSPA: UInt64(bitPattern: stmt.int(9)), sinkGPA: UInt64(bitPattern: stmt.int(10)),
                length: UInt64(bitPattern: stmt.int(11)), labels: stmt.text(12), preview: stmt.text(13),
                summary: stmt.text(14)))
            out[out.count - 1].flow = flows[stmt.int(15)] ?? []
            out[out.count - 1].occurrences = UInt64(bitPattern: stmt.int(16))
        }
        return out
    }
}
