import CSQLite
import Foundation
import TraceFormat

/// What the loadable SQLite extension does when the sqlite3 shell or Python's `sqlite3` module loads it
/// into a connection to a bundle's `index.sqlite`: it registers the `events` table over that bundle's
/// `events.zst`, so the same SQL runs there as in `sev-trace query`.
public enum SQLiteExtension {
    /// Registers the trace's tables on `db`; a message for the user when it cannot.
    ///
    /// The connection must be read-only (`sqlite3 -readonly`, or `mode=ro` in a URI): a reader never
    /// changes a trace.
    public static func load(into db: OpaquePointer) -> String? {
        guard let name = sqlite3_db_filename(db, "main"), name.pointee != 0 else {
            return "sevtrace: open a trace's index.sqlite (TRACE/index.sqlite), not an in-memory database"
        }
        guard sqlite3_db_readonly(db, "main") == 1 else {
            return "sevtrace: open the trace read-only (sqlite3 -readonly TRACE/index.sqlite): a reader never changes a trace"
        }
        let file = String(cString: name)
        let directory = (file as NSString).deletingLastPathComponent
        do {
            let bundle = try TraceBundle(existing: directory)
            try EventsTable.register(handle: db, bundle: bundle)
            return nil
        } catch {
            return "sevtrace: \(error)"
        }
    }
}
