import CSQLite

/// The authorizer of a read-only connection to an untrusted index: reads, functions and the schema
/// pragmas that only report are allowed; every write, ATTACH, DETACH and every pragma that sets
/// something (`query_only`, `journal_mode`, `writable_schema`, …) is denied before the statement runs.
public enum ReadOnlyAuthorizer {
    /// Pragmas whose argument names what to report on (a table or an index).
    static let describingPragmas: Set<String> = [
        "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo", "foreign_key_list",
    ]
    /// Pragmas that report a setting, allowed only without a value (with one they would set it).
    static let reportingPragmas: Set<String> = [
        "function_list", "module_list", "pragma_list", "collation_list", "compile_options", "query_only",
        "schema_version", "user_version", "application_id", "page_size", "page_count", "encoding", "freelist_count",
    ]

    /// The callback's user data when the connection may write its TEMP schema.
    static var temporaryAllowed: UnsafeMutableRawPointer? { UnsafeMutableRawPointer(bitPattern: 1) }

    /// The actions that make or change TEMP tables, views and indexes.
    static let temporaryActions: Set<Int32> = [
        SQLITE_CREATE_TEMP_TABLE, SQLITE_CREATE_TEMP_VIEW, SQLITE_CREATE_TEMP_INDEX, SQLITE_DROP_TEMP_TABLE,
        SQLITE_DROP_TEMP_VIEW, SQLITE_DROP_TEMP_INDEX, SQLITE_INSERT, SQLITE_UPDATE, SQLITE_DELETE,
    ]

    /// The `sqlite3_set_authorizer` callback.
    static let callback: @convention(c) (UnsafeMutableRawPointer?, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?,
                                         UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Int32 = { allow, action, arg1, arg2, database, _ in
        switch action {
        case SQLITE_SELECT, SQLITE_READ, SQLITE_FUNCTION, SQLITE_RECURSIVE, SQLITE_TRANSACTION, SQLITE_SAVEPOINT:
            return SQLITE_OK
        case SQLITE_PRAGMA:
            guard let arg1 else { return SQLITE_DENY }
            let name = String(cString: arg1).lowercased()
            if ReadOnlyAuthorizer.describingPragmas.contains(name) { return SQLITE_OK }
            return arg2 == nil && ReadOnlyAuthorizer.reportingPragmas.contains(name) ? SQLITE_OK : SQLITE_DENY
        case SQLITE_UPDATE where arg1.map { String(cString: $0) } == "sqlite_master":
            // SQLite asks this while a virtual table declares its columns (`sqlite3_declare_vtab`); a
            // statement of the user's that would write the schema is still refused: the connection is
            // read-only and immutable, in defensive mode, and every statement must be read-only.
            return SQLITE_OK
        case _ where allow != nil && ReadOnlyAuthorizer.temporaryActions.contains(action):
            // Only in the TEMP schema (CREATE TEMP names it as the database; writes name their table's).
            return database.map { String(cString: $0) } == "temp" ? SQLITE_OK : SQLITE_DENY
        default:
            return SQLITE_DENY
        }
    }
}
