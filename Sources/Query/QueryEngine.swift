import CSQLite
import Foundation
import TraceFormat

/// SQL over a trace: a read-only connection to the bundle's index, with the trace's events reachable
/// through the `events` virtual table.
public final class QueryEngine {
    public let bundle: TraceBundle
    let index: TraceIndex

    /// Opens the bundle's index read-only.
    public init(bundle: TraceBundle) throws {
        self.bundle = bundle
        index = try bundle.index()
        try EventsTable.register(on: index.database, bundle: bundle)
    }

    /// Runs every statement of `sql` in order and returns the results of those that return columns.
    ///
    /// - Parameter file: the name used in error positions.
    /// - Throws: ``QueryError`` naming the line and column in `sql` where SQLite found the problem.
    public func run(_ sql: String, file: String = "<sql>") throws(QueryError) -> [QueryResult] {
        var results: [QueryResult] = []
        let db = index.database.handle
        let utf8 = Array(sql.utf8) + [0]
        var failure: QueryError?
        utf8.withUnsafeBufferPointer { buf in
            let base = UnsafeRawPointer(buf.baseAddress!).assumingMemoryBound(to: CChar.self)
            var offset = 0
            while offset < utf8.count - 1 {
                var stmt: OpaquePointer?
                var tail: UnsafePointer<CChar>?
                let rc = sqlite3_prepare_v2(db, base + offset, -1, &stmt, &tail)
                if rc != SQLITE_OK {
                    let message = String(cString: sqlite3_errmsg(db))
                    let at = Int(sqlite3_error_offset(db))
                    let position = at >= 0 ? offset + at : locate(message, in: utf8, from: offset)
                    failure = error(sql, file: file, at: position, message: message)
                    return
                }
                let next = tail.map { $0 - base } ?? utf8.count - 1
                defer { offset = next }
                guard let stmt else { continue }  // only whitespace or comments
                defer { sqlite3_finalize(stmt) }
                let columns = (0..<sqlite3_column_count(stmt)).map { String(cString: sqlite3_column_name(stmt, $0)) }
                var rows: [[SQLiteValue]] = []
                while true {
                    let s = sqlite3_step(stmt)
                    if s == SQLITE_DONE { break }
                    guard s == SQLITE_ROW else {
                        failure = error(sql, file: file, at: offset + leadingSpace(utf8, from: offset),
                                        message: String(cString: sqlite3_errmsg(db)))
                        return
                    }
                    rows.append((0..<Int32(columns.count)).map { Self.value(stmt, $0) })
                }
                if !columns.isEmpty { results.append(QueryResult(columns: columns, rows: rows)) }
            }
        }
        if let failure { throw failure }
        return results
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

    static func value(_ stmt: OpaquePointer, _ i: Int32) -> SQLiteValue {
        switch sqlite3_column_type(stmt, i) {
        case SQLITE_INTEGER: .integer(sqlite3_column_int64(stmt, i))
        case SQLITE_FLOAT: .real(sqlite3_column_double(stmt, i))
        case SQLITE_TEXT: .text(String(cString: sqlite3_column_text(stmt, i)))
        case SQLITE_BLOB:
            .blob(Array(UnsafeRawBufferPointer(start: sqlite3_column_blob(stmt, i), count: Int(sqlite3_column_bytes(stmt, i)))))
        default: .null
        }
    }
}
