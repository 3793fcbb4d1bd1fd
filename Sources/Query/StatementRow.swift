import CSQLite
import TraceFormat

/// One row of a running statement, read where SQLite holds it: a writer that formats bytes takes each
/// column as it is, without a ``SQLiteValue`` (and a Swift string) made per cell. Valid only during the
/// ``QueryOutput/row(_:)-(StatementRow)`` call it is given to.
public struct StatementRow {
    let statement: OpaquePointer
    /// How many columns the row has.
    public let count: Int

    /// One column as SQLite holds it; the buffers are valid until the statement moves on.
    enum Cell {
        case null
        case integer(Int64)
        case real(Double)
        case text(UnsafeRawBufferPointer)
        case blob(UnsafeRawBufferPointer)
    }

    @inline(__always)
    func cell(_ i: Int) -> Cell {
        let c = Int32(i)
        switch sqlite3_column_type(statement, c) {
        case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, c))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(statement, c))
        case SQLITE_TEXT:
            let text = sqlite3_column_text(statement, c)
            return .text(UnsafeRawBufferPointer(start: text, count: Int(sqlite3_column_bytes(statement, c))))
        case SQLITE_BLOB:
            let blob = sqlite3_column_blob(statement, c)
            return .blob(UnsafeRawBufferPointer(start: blob, count: Int(sqlite3_column_bytes(statement, c))))
        default: return .null
        }
    }

    /// Column `i` as a value.
    public func value(_ i: Int) -> SQLiteValue { Self.value(of: cell(i)) }

    /// A cell as a value (text and bytes copied).
    static func value(of cell: Cell) -> SQLiteValue {
        switch cell {
        case .null: .null
        case .integer(let n): .integer(n)
        case .real(let d): .real(d)
        case .text(let b): .text(String(decoding: b, as: UTF8.self))
        case .blob(let b): .blob(Array(b))
        }
    }

    /// Every column, as values.
    public var values: [SQLiteValue] { (0..<count).map(value) }
}
