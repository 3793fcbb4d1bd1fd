import CSQLite

/// An owning wrapper around a SQLite connection.
///
/// The connection closes when the last reference goes away; statements keep their database alive.
public final class SQLiteDatabase {
    /// The raw connection, for calls this wrapper does not cover.
    public let handle: OpaquePointer
    /// The file the connection opened.
    public let path: String

    /// How to open a database.
    public enum Mode: Sendable {
        /// Read-only for an untrusted file: opened immutable (no locks, journal or WAL is read or made, so
        /// nothing is ever created beside it), not through a symlink, in defensive mode with triggers
        /// off, no ATTACH, `query_only` on, and an authorizer that lets through only reads (see
        /// ``ReadOnlyAuthorizer``). The file must exist and is never modified.
        case readOnly
        /// As ``readOnly``, except that TEMP tables, views and indexes may be made and written: in memory
        /// (`temp_store = MEMORY`, never a file beside the trace), and only there (the authorizer lets
        /// writes through to the `temp` schema alone; the file itself is still opened read-only and immutable).
        case readOnlyWithTemporary
        /// Read-write; the file must exist.
        case readWrite
        /// Read-write, creating the file if needed.
        case create
    }

    /// Opens `path`; the corresponding C function is `sqlite3_open_v2`.
    ///
    /// - Throws: ``SQLiteError`` when SQLite cannot open the file.
    public init(path: String, mode: Mode) throws(SQLiteError) {
        var flags: Int32 = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI | SQLITE_OPEN_NOFOLLOW
        var name = Self.uri(path)
        switch mode {
        case .readOnly, .readOnlyWithTemporary:
            flags |= SQLITE_OPEN_READONLY
            name += "?immutable=1"
        case .readWrite: flags |= SQLITE_OPEN_READWRITE
        case .create: flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
        }
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(name, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            // sqlite.org: "Whether or not an error occurs when it is opened, resources associated with the
            // database connection handle should be released by passing it to sqlite3_close()".
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close_v2(db)
            throw SQLiteError(code: rc, message: "\(path): \(message)")
        }
        handle = db
        self.path = path
        sqlite3_extended_result_codes(db, 1)
        if mode == .readOnly || mode == .readOnlyWithTemporary { try lockDown(temporary: mode == .readOnlyWithTemporary) }
    }

    /// A `file:` URI for `path`, so that no character of a file name is read as a URI parameter.
    static func uri(_ path: String) -> String {
        var out = "file:"
        for b in path.utf8 {
            let c = Character(Unicode.Scalar(b))
            if b < 0x80 && (c.isLetter || c.isNumber || "/-_.~".contains(c)) {
                out.append(c)
            } else {
                out += "%" + (b < 16 ? "0" : "") + String(b, radix: 16, uppercase: true)
            }
        }
        return out
    }

    /// Makes a read-only connection unable to write (but to its in-memory TEMP schema when `temporary`),
    /// attach, run triggers or trust the file's schema.
    private func lockDown(temporary: Bool) throws(SQLiteError) {
        let options: [(Int32, Int32)] = [(SQLITE_DBCONFIG_DEFENSIVE, 1), (SQLITE_DBCONFIG_ENABLE_TRIGGER, 0),
                                         (SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0), (SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0)]
        for (option, value) in options {
            let rc = sevtrace_db_config_int(handle, option, value)
            guard rc == SQLITE_OK else { throw lastError(code: rc) }
        }
        sqlite3_limit(handle, SQLITE_LIMIT_ATTACHED, 0)
        if temporary {
            try execute("PRAGMA temp_store = MEMORY")
        } else {
            try execute("PRAGMA query_only = ON")
        }
        sqlite3_set_authorizer(handle, ReadOnlyAuthorizer.callback, temporary ? ReadOnlyAuthorizer.temporaryAllowed : nil)
    }

    deinit { sqlite3_close_v2(handle) }

    /// Runs one or more statements that return no rows; the corresponding C function is `sqlite3_exec`.
    public func execute(_ sql: String) throws(SQLiteError) {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let message = err.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            sqlite3_free(err)
            throw SQLiteError(code: rc, message: message, sql: sql)
        }
    }

    /// Prepares one statement.
    public func prepare(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        try SQLiteStatement(database: self, sql: sql)
    }

    /// Runs `body` inside a transaction, committing when it returns and rolling back when it throws.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// The error SQLite holds for this connection.
    func lastError(code: Int32, sql: String? = nil) -> SQLiteError {
        let offset = Int(sqlite3_error_offset(handle))
        return SQLiteError(code: code, message: String(cString: sqlite3_errmsg(handle)), sql: sql,
                           offset: offset >= 0 ? offset : nil)
    }
}
