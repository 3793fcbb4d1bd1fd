import TraceFormat

/// The rows one statement returned.
public struct QueryResult: Equatable, Sendable {
    public var columns: [String]
    public var rows: [[SQLiteValue]]

    public init(columns: [String], rows: [[SQLiteValue]]) {
        self.columns = columns
        self.rows = rows
    }
}
