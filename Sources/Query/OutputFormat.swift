import Foundation
import TraceFormat

/// How query results are printed.
public enum OutputFormat: String, CaseIterable, Sendable {
    /// Aligned columns with a header rule.
    case table
    /// CSV as RFC 4180 quotes it, with a header row and LF line ends (what DuckDB, pandas and the sqlite3
    /// shell write); results of several statements are separated by an empty line.
    case csv
    /// One JSON document: for SQL of one statement, an array of objects, one per row; for several, an
    /// array holding such an array for each statement that returns rows (blobs as lowercase hex strings).
    case json
    /// JSON Lines: one object per row, a line each (what DuckDB, pandas and Spark read in parallel).
    case jsonl

    /// Renders one result whole (the command line streams through ``writer(_:)`` instead).
    public func render(_ r: QueryResult) -> String {
        var out = ""
        let w = writer { out += $0 }
        w.begin(columns: r.columns, index: 0)
        for row in r.rows { w.row(row) }
        w.end()
        return out
    }

    /// A streaming writer of this format that hands its text to `emit` piece by piece; `statements` is
    /// how many statements the SQL holds (``QueryEngine/statementCount(_:)``), which decides the JSON shape.
    public func writer(statements: Int = 1, _ emit: @escaping (String) -> Void) -> QueryOutput {
        switch self {
        case .table: TableWriter(emit)
        case .csv: CSVWriter(emit)
        case .json: JSONWriter(nested: statements > 1, emit)
        case .jsonl: JSONLinesWriter(emit)
        }
    }

    static func text(_ v: SQLiteValue) -> String {
        switch v {
        case .null: ""
        case .integer(let i): String(i)
        case .real(let d): String(d)
        case .text(let s): s
        case .blob(let b): b.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        }
    }

}

/// Aligned columns. Widths come from the first ``sampleRows`` rows, which are held back until then;
/// later rows print at once with those widths (a longer value just pushes its line wider).
final class TableWriter: QueryOutput {
    static let sampleRows = 500
    private let emit: (String) -> Void
    private var columns: [String] = []
    private var sample: [[SQLiteValue]] = []
    private var widths: [Int]?
    private var numeric: [Bool] = []
    private var count = 0

    init(_ emit: @escaping (String) -> Void) { self.emit = emit }

    func begin(columns: [String], index: Int) {
        if index > 0 { emit("\n") }
        self.columns = columns
        sample = []
        widths = nil
        count = 0
    }

    func row(_ values: [SQLiteValue]) {
        count += 1
        if widths != nil {
            emit(line(values.map(Self.cell), numeric: numeric) + "\n")
            return
        }
        sample.append(values)
        if sample.count == Self.sampleRows { flushSample() }
    }

    func end() {
        if widths == nil { flushSample() }
        emit("(\(count) row\(count == 1 ? "" : "s"))\n")
    }

    /// A value as the terminal shows it: text from a trace may hold control characters (escaped), and NULL
    /// is shown as `NULL`, so it is not mistaken for an empty string.
    static func cell(_ v: SQLiteValue) -> String { v == .null ? "NULL" : printable(OutputFormat.text(v)) }

    private func flushSample() {
        let cells = sample.map { $0.map(Self.cell) }
        var w = columns.map(\.count)
        for row in cells { for (i, c) in row.enumerated() where i < w.count { w[i] = max(w[i], c.count) } }
        widths = w
        numeric = columns.indices.map { i in
            !sample.isEmpty && sample.allSatisfy { row in
                if case .integer = row[i] { true } else if case .real = row[i] { true } else { row[i] == .null }
            }
        }
        emit(line(columns, numeric: numeric.map { _ in false }) + "\n")
        emit(w.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n")
        for row in cells { emit(line(row, numeric: numeric) + "\n") }
        sample = []
    }

    private func line(_ values: [String], numeric: [Bool]) -> String {
        let widths = self.widths ?? []
        var out = values.enumerated().map { i, v in
            let pad = String(repeating: " ", count: max(0, (i < widths.count ? widths[i] : 0) - v.count))
            return i < numeric.count && numeric[i] ? pad + v : v + pad
        }.joined(separator: "  ")
        while out.last == " " { out.removeLast() }
        return out
    }
}

/// CSV with a header row and LF line ends.
final class CSVWriter: QueryOutput {
    private let out: FormattedText

    init(_ emit: @escaping (String) -> Void) { out = FormattedText(emit) }

    func begin(columns: [String], index: Int) {
        out.write { line in
            if index > 0 { line.byte(0x0A) }
            for (i, c) in columns.enumerated() {
                if i > 0 { line.byte(0x2C) }
                TextLine.cell(.text(c)) { line.csv($0) }
            }
            line.byte(0x0A)
        }
    }

    func row(_ row: StatementRow) { self.row(cells: row) }

    /// One row, its cells formatted where they lie.
    @inline(__always)
    func row<R: RowCells>(cells row: R) {
        out.write { line in
            for i in 0..<row.count {
                if i > 0 { line.byte(0x2C) }
                row.cell(i) { line.csv($0) }
            }
            line.byte(0x0A)
        }
    }

    func row(_ values: [SQLiteValue]) {
        out.write { line in
            for (i, v) in values.enumerated() {
                if i > 0 { line.byte(0x2C) }
                TextLine.cell(v) { line.csv($0) }
            }
            line.byte(0x0A)
        }
    }

    func end() { out.flush() }
}

/// A JSON array of objects, one per row (blobs as lowercase hex strings).
final class JSONWriter: QueryOutput {
    private let out: FormattedText
    /// Several statements: each result is an element of one outer array.
    private let nested: Bool
    private var columns: [String] = []
    private var count = 0
    private var results = 0

    init(nested: Bool = false, _ emit: @escaping (String) -> Void) {
        self.nested = nested
        out = FormattedText(emit)
    }

    static func string(_ s: String) -> String { MarkupText.json(s) }

    func begin(columns: [String], index: Int) {
        self.columns = columns.map(Self.string)
        count = 0
        if nested { out.ascii(results == 0 ? "[\n" : ",\n") }
        results += 1
    }

    private func row(_ cell: (Int, inout TextLine) -> Void) {
        let first = count == 0
        out.write { line in
            line.ascii(first ? "[\n  " : ",\n  ")
            line.jsonObject(columns, cell)
        }
        count += 1
    }

    func row(_ row: StatementRow) { self.row(cells: row) }

    /// One row, its cells formatted where they lie.
    @inline(__always)
    func row<R: RowCells>(cells row: R) { self.row { i, line in row.cell(i) { line.json($0) } } }

    func row(_ values: [SQLiteValue]) {
        row { i, line in
            guard i < values.count else { return line.ascii("null") }
            TextLine.cell(values[i]) { line.json($0) }
        }
    }

    func end() {
        out.ascii((count == 0 ? "[]" : "\n]") + (nested ? "" : "\n"))
        out.flush()
    }

    func finish() {
        guard nested else { return }
        out.ascii(results == 0 ? "[]\n" : "\n]\n")
        out.flush()
    }
}

/// JSON Lines: each row one object on a line of its own (blobs as lowercase hex strings).
final class JSONLinesWriter: QueryOutput {
    private let out: FormattedText
    private var columns: [String] = []

    init(_ emit: @escaping (String) -> Void) { out = FormattedText(emit) }

    func begin(columns: [String], index: Int) { self.columns = columns.map(JSONWriter.string) }

    private func row(_ cell: (Int, inout TextLine) -> Void) {
        out.write { line in
            line.jsonObject(columns, cell)
            line.byte(0x0A)
        }
    }

    func row(_ row: StatementRow) { self.row(cells: row) }

    /// One row, its cells formatted where they lie.
    @inline(__always)
    func row<R: RowCells>(cells row: R) { self.row { i, line in row.cell(i) { line.json($0) } } }

    func row(_ values: [SQLiteValue]) {
        row { i, line in
            guard i < values.count else { return line.ascii("null") }
            TextLine.cell(values[i]) { line.json($0) }
        }
    }

    func end() { out.flush() }
}
