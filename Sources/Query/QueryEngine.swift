import CSQLite
import Foundation
import TraceFormat

/// SQL over a trace: a read-only connection to the bundle's index, with the trace's events reachable
/// through the `events` virtual table.
public final class QueryEngine {
    public let bundle: TraceBundle
    let index: TraceIndex
    /// Whether statements may make and write TEMP tables and views.
    public let temporary: Bool

    /// The tables decoded from `events.zst` rather than stored in the index: `events`, `vm_runs`,
    /// `vm_exits`, `register_ops`, `cache_ops`, `handovers`.
    public static let decodedTables = ([EventsTable.shape] + DecodedTables.shapes).map(\.name)

    /// Opens the bundle's index read-only.
    /// - Parameter temporary: statements may make and fill TEMP tables, views and indexes (in memory; the
    ///   trace stays unwritable).
    public init(bundle: TraceBundle, temporary: Bool = false) throws {
        self.bundle = bundle
        self.temporary = temporary
        index = try bundle.index(temporary: temporary)
        try EventsTable.register(on: index.database, bundle: bundle)
    }

    /// Runs every statement of `sql` in order and returns the results of those that return columns,
    /// held in memory (for tests and small results; the command line streams with ``run(_:file:into:limits:)``).
    public func run(_ sql: String, file: String = "<sql>", limits: QueryLimits = QueryLimits(),
                    parameters: [String: SQLiteValue] = [:]) throws(QueryError) -> [QueryResult] {
        let collected = CollectedResults()
        try run(sql, file: file, into: collected, limits: limits, parameters: parameters)
        return collected.results
    }

    /// Runs every statement of `sql` in order, passing each row to `output` as SQLite returns it.
    ///
    /// A statement that would write (to the trace or anywhere else) is refused before it runs; a
    /// statement that runs past `limits.timeout`, or while ``QueryInterrupt`` is raised (Ctrl-C), is
    /// stopped through SQLite's progress handler.
    ///
    /// - Parameters:
    ///   - file: the name used in error positions.
    ///   - parameters: values bound to the named parameters (`:NAME`, `@NAME`, `$NAME`) of every statement,
    ///     by name without its prefix; a statement naming one not given is an error.
    /// - Throws: ``QueryError`` naming the line and column in `sql` where SQLite found the problem.
    public func run(_ sql: String, file: String, into output: QueryOutput, limits: QueryLimits,
                    parameters: [String: SQLiteValue] = [:]) throws(QueryError) {
        let db = index.database.handle
        let utf8 = Array(sql.utf8) + [0]
        var failure: QueryError?
        let watch = QueryWatch(timeout: limits.timeout)
        let context = Unmanaged.passRetained(watch)
        defer {
            sqlite3_progress_handler(db, 0, nil, nil)
            context.release()
        }
        sqlite3_progress_handler(db, 1000, { ctx in
            Unmanaged<QueryWatch>.fromOpaque(ctx!).takeUnretainedValue().shouldStop ? 1 : 0
        }, context.toOpaque())
        var resultIndex = 0
        utf8.withUnsafeBufferPointer { buf in
            let base = UnsafeRawPointer(buf.baseAddress!).assumingMemoryBound(to: CChar.self)
            var offset = 0
            while offset < utf8.count - 1 {
                var stmt: OpaquePointer?
                var tail: UnsafePointer<CChar>?
                let rc = sqlite3_prepare_v2(db, base + offset, -1, &stmt, &tail)
                if rc != SQLITE_OK {
                    let message = Self.explain(rc, String(cString: sqlite3_errmsg(db)), watch: watch)
                    let at = Int(sqlite3_error_offset(db))
                    let position = at >= 0 ? offset + at : locate(message, in: utf8, from: offset)
                    failure = error(sql, file: file, at: position, message: message)
                    return
                }
                let next = tail.map { $0 - base } ?? utf8.count - 1
                defer { offset = next }
                guard let stmt else { continue }  // only whitespace or comments
                defer { sqlite3_finalize(stmt) }
                let start = offset + leadingSpace(utf8, from: offset)
                for i in 0..<sqlite3_bind_parameter_count(stmt) {
                    let name = sqlite3_bind_parameter_name(stmt, i + 1).map { String(String(cString: $0).dropFirst()) }
                    guard let name, let value = parameters[name] else {
                        failure = error(sql, file: file, at: start, message: name.map {
                            "no value for the parameter :\($0) (give --param \($0)=VALUE)"
                        } ?? "numbered parameters (?) take no value here: name them (:NAME) and give --param NAME=VALUE")
                        return
                    }
                    Self.bind(value, to: stmt, at: i + 1)
                }
                // With TEMP allowed, the authorizer has let through only writes to the TEMP schema.
                guard sqlite3_stmt_readonly(stmt) != 0 || temporary else {
                    failure = error(sql, file: file, at: start,
                                    message: "this statement would write: queries are read-only (no writes, ATTACH, VACUUM or settings)")
                    return
                }
                let columnCount = sqlite3_column_count(stmt)
                if columnCount > 0 {
                    output.begin(columns: (0..<columnCount).map { String(cString: sqlite3_column_name(stmt, $0)) }, index: resultIndex)
                    resultIndex += 1
                }
                while true {
                    let s = sqlite3_step(stmt)
                    if s == SQLITE_DONE { break }
                    guard s == SQLITE_ROW else {
                        failure = error(sql, file: file, at: start, message: Self.explain(s, String(cString: sqlite3_errmsg(db)), watch: watch))
                        return
                    }
                    output.row(StatementRow(statement: stmt, count: Int(columnCount)))
                }
                if columnCount > 0 { output.end() }
            }
        }
        if let failure { throw failure }
        output.finish()
    }

    /// How many statements `sql` holds: `;`s outside strings, quoted names and comments, counting only
    /// pieces with something besides space and comments. One pass, linear in the text (a hostile query
    /// file of many `;` inside one string costs no more than its length). Triggers, whose bodies hold `;`,
    /// are refused by the authorizer anyway.
    public static func statementCount(_ sql: String) -> Int {
        let b = Array(sql.utf8)
        var count = 0, content = false, i = 0
        while i < b.count {
            let c = b[i]
            switch c {
            case UInt8(ascii: "'"), UInt8(ascii: "\""), UInt8(ascii: "`"), UInt8(ascii: "["):
                let close = c == UInt8(ascii: "[") ? UInt8(ascii: "]") : c
                content = true
                i += 1
                while i < b.count && b[i] != close { i += 1 }
            case UInt8(ascii: "-") where i + 1 < b.count && b[i + 1] == UInt8(ascii: "-"):
                while i < b.count && b[i] != 0x0A { i += 1 }
            case UInt8(ascii: "/") where i + 1 < b.count && b[i + 1] == UInt8(ascii: "*"):
                i += 2
                while i + 1 < b.count && !(b[i] == UInt8(ascii: "*") && b[i + 1] == UInt8(ascii: "/")) { i += 1 }
                i += 1
            case UInt8(ascii: ";"):
                if content { count += 1 }
                content = false
            case 0x20, 0x09, 0x0A, 0x0D:
                break
            default:
                content = true
            }
            i += 1
        }
        return count + (content ? 1 : 0)
    }

    private static func bind(_ value: SQLiteValue, to stmt: OpaquePointer, at index: Int32) {
        switch value {
        case .null: sqlite3_bind_null(stmt, index)
        case .integer(let i): sqlite3_bind_int64(stmt, index, i)
        case .real(let d): sqlite3_bind_double(stmt, index, d)
        case .text(let s): sqlite3_bind_text(stmt, index, s, -1, sevtrace_sqlite_transient())
        case .blob(let b): b.withUnsafeBytes { _ = sqlite3_bind_blob(stmt, index, $0.baseAddress, Int32($0.count), sevtrace_sqlite_transient()) }
        }
    }

    /// SQLite's message, said for people when the cause is one of ours.
    private static func explain(_ code: Int32, _ message: String, watch: QueryWatch) -> String {
        switch code & 0xFF {
        case SQLITE_AUTH: "not allowed: queries are read-only (no writes, ATTACH, VACUUM or settings)"
        case SQLITE_INTERRUPT where watch.timedOut: "the query ran longer than its \(watch.timeoutText) limit (raise it with --timeout)"
        case SQLITE_INTERRUPT: "interrupted"
        default: message
        }
    }

    /// Where a name-resolution error points when SQLite gives no offset: the first occurrence, in the
    /// failing statement, of the name the message ends with ("no such table: x"); else the statement's start.
    private func locate(_ message: String, in utf8: [UInt8], from offset: Int) -> Int {
        let start = offset + leadingSpace(utf8, from: offset)
        guard let colon = message.lastIndex(of: ":") else { return start }
        let name = Array(message[message.index(after: colon)...].trimmingCharacters(in: .whitespaces).lowercased().utf8)
        guard !name.isEmpty, utf8.count > name.count else { return start }
        let lower = utf8.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
        var i = start
        while i + name.count <= lower.count - 1 {
            if Array(lower[i..<i + name.count]) == name { return i }
            if lower[i] == 0x3B { break }  // the end of the statement
            i += 1
        }
        return start
    }

    private func leadingSpace(_ utf8: [UInt8], from offset: Int) -> Int {
        var i = offset
        while i < utf8.count, utf8[i] == 0x20 || utf8[i] == 0x0A || utf8[i] == 0x09 || utf8[i] == 0x0D { i += 1 }
        return i - offset
    }

    private func error(_ sql: String, file: String, at byteOffset: Int, message: String) -> QueryError {
        var line = 1, column = 1
        for (i, b) in sql.utf8.enumerated() {
            if i >= byteOffset { break }
            if b == 0x0A {
                line += 1
                column = 1
            } else if b & 0xC0 != 0x80 {
                column += 1
            }
        }
        return QueryError(file: file, line: line, column: column, message: message)
    }

}
