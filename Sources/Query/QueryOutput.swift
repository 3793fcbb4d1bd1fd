import TraceFormat

/// Receives a query's results as they come, one row at a time, so that no result is held whole.
public protocol QueryOutput: AnyObject {
    /// A statement that returns rows starts; `index` counts such statements from 0.
    func begin(columns: [String], index: Int)
    /// One row of the current statement.
    func row(_ values: [SQLiteValue])
    /// One row of the current statement, read in place (by default, made into values for
    /// ``row(_:)-([SQLiteValue])``).
    func row(_ row: StatementRow)
    /// The current statement has returned all its rows.
    func end()
    /// Every statement has run.
    func finish()
}

extension QueryOutput {
    public func finish() {}
    public func row(_ row: StatementRow) { self.row(row.values) }
}

/// Keeps every row in memory: for tests and small results only.
public final class CollectedResults: QueryOutput {
    public private(set) var results: [QueryResult] = []

    public init() {}

    public func begin(columns: [String], index: Int) { results.append(QueryResult(columns: columns, rows: [])) }
    public func row(_ values: [SQLiteValue]) { results[results.count - 1].rows.append(values) }
    public func end() {}
}
