import CSQLite
import TraceFormat

/// What makes one virtual table of events: its name and columns, the event type its rows are, which
/// columns take a pushdown, and how a row's column reaches SQLite. The `events` table is one shape;
/// the tables of ``DecodedTables`` are others, decoded from `events.zst` by the same
/// scan, so the index need not keep a row per world switch.
struct EventTableShape: Sendable {
    /// Puts column `index` of an event into SQLite's result.
    typealias Column = @Sendable (TraceEvent, Int, OpaquePointer) -> Void

    let name: String
    let columns: [String]
    /// The type (as the `events` table names it) every row is; nil for a table of every event.
    let type: String?
    /// The columns (by index) whose constraints the scan takes, and as what.
    let pushed: [Int32: EventsTable.Pushed]
    let column: Column
    /// A decoded table's whole row at once (its columns come from one payload): the cursor keeps the
    /// current event's row, so a row of many columns is made once, not once per column.
    var fill: (@Sendable (TraceEvent, inout [SQLiteValue]) -> Bool)? = nil
}

/// Setting a column's result: integers as SQLite's signed 64 bits, text copied.
enum ColumnResult {
    @inline(__always)
    static func int(_ ctx: OpaquePointer, _ v: UInt64) { sqlite3_result_int64(ctx, Int64(bitPattern: v)) }

    static func text(_ ctx: OpaquePointer, _ s: String) {
        sqlite3_result_text(ctx, s, -1, transient)
    }

    /// Any value, as SQLite holds it.
    static func value(_ ctx: OpaquePointer, _ v: SQLiteValue) {
        switch v {
        case .null: sqlite3_result_null(ctx)
        case .integer(let n): sqlite3_result_int64(ctx, n)
        case .real(let d): sqlite3_result_double(ctx, d)
        case .text(let s): text(ctx, s)
        case .blob(let b) where b.isEmpty: sqlite3_result_zeroblob(ctx, 0)  // a NULL pointer would make it NULL
        case .blob(let b): b.withUnsafeBytes { sqlite3_result_blob64(ctx, $0.baseAddress, UInt64($0.count), transient) }
        }
    }

    /// A cell as it is (text and bytes copied).
    @inline(__always)
    static func cell(_ ctx: OpaquePointer, _ c: StatementRow.Cell) {
        switch c {
        case .null: sqlite3_result_null(ctx)
        case .integer(let n): sqlite3_result_int64(ctx, n)
        case .real(let d): sqlite3_result_double(ctx, d)
        case .text(let b):
            // An empty buffer may have no address: SQLite takes NULL as a NULL result, so give it "".
            guard let base = b.baseAddress, !b.isEmpty else { return sqlite3_result_text(ctx, "", 0, transient) }
            sqlite3_result_text(ctx, base.assumingMemoryBound(to: CChar.self), Int32(b.count), transient)
        case .blob(let b):
            guard let base = b.baseAddress, !b.isEmpty else { return sqlite3_result_zeroblob(ctx, 0) }
            sqlite3_result_blob64(ctx, base, UInt64(b.count), transient)
        }
    }

    /// SQLite copies what it is given before the call returns.
    static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
}
