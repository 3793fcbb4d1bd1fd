import CSQLite

/// A failure reported by SQLite, with the statement and the byte offset in it where SQLite found the problem.
public struct SQLiteError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The SQLite result code.
    public let code: Int32
    /// SQLite's message.
    public let message: String
    /// The SQL text, when the failure belongs to one statement.
    public let sql: String?
    /// The byte offset in `sql` of the problem, when SQLite knows it (`sqlite3_error_offset`).
    public let offset: Int?

    public init(code: Int32, message: String, sql: String? = nil, offset: Int? = nil) {
        self.code = code
        self.message = message
        self.sql = sql
        self.offset = offset
    }

    public var description: String { message }
}
