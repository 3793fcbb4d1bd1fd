/// A row a writer reads one cell at a time, each handed over where it lies: a statement's row as SQLite
/// holds it, or an event of the `events` table (``EventsRow``) written straight from the trace. The
/// output formats write both with the same code.
protocol RowCells {
    /// How many columns the row has.
    var count: Int { get }
    /// Hands column `i` to `body` (its text and bytes live only for the call).
    func cell(_ i: Int, _ body: (StatementRow.Cell) -> Void)
}

extension StatementRow: RowCells {
    @inline(__always)
    func cell(_ i: Int, _ body: (StatementRow.Cell) -> Void) { body(cell(i)) }
}
