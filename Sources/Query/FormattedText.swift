import TraceFormat

/// The text a streaming writer makes, as UTF-8 bytes: cells are formatted straight from what SQLite
/// (or the trace) holds, and the bytes are handed on as strings of about 64 KiB, always whole rows, so
/// a row costs no string of its own.
final class FormattedText {
    static let pieceBytes = 1 << 16
    private var line = TextLine(capacity: FormattedText.pieceBytes + 4096)
    private let emit: (String) -> Void

    init(_ emit: @escaping (String) -> Void) { self.emit = emit }

    /// Writes one row (or a header, or punctuation), then hands the text on when a piece is full. The
    /// row is written through one access to the buffer, not one per byte.
    @inline(__always)
    func write(_ body: (inout TextLine) -> Void) {
        body(&line)
        if line.bytes.count >= Self.pieceBytes { flush() }
    }

    func ascii(_ s: String) { write { $0.ascii(s) } }

    /// Hands on everything made so far.
    func flush() {
        guard !line.bytes.isEmpty else { return }
        emit(line.string)
        line.removeAll()
    }
}

/// A value of a query's result as an output format writes it.
extension TextLine {
    /// Formats a value as a cell (text and bytes from their storage).
    static func cell(_ v: SQLiteValue, _ body: (StatementRow.Cell) -> Void) {
        switch v {
        case .null: body(.null)
        case .integer(let n): body(.integer(n))
        case .real(let d): body(.real(d))
        case .text(var s): s.withUTF8 { body(.text(UnsafeRawBufferPointer($0))) }
        case .blob(let b): b.withUnsafeBytes { body(.blob($0)) }
        }
    }

    /// A CSV cell: nothing for NULL, numbers as Swift writes them, bytes in hex, text as it is or, when
    /// it holds a comma, a quote or a line end, quoted with its quotes doubled (RFC 4180).
    mutating func csv(_ c: StatementRow.Cell) {
        switch c {
        case .null: break
        case .integer(let n): signed(n)
        case .real(let d): ascii(String(d))
        case .blob(let b): hexPairs(b)
        case .text(let t): csvText(t)
        }
    }

    /// CSV text, quoted when it must be.
    mutating func csvText(_ t: UnsafeRawBufferPointer) {
        guard t.contains(where: { $0 == 0x2C || $0 == 0x22 || $0 == 0x0A || $0 == 0x0D }) else { return raw(t) }
        byte(0x22)
        for b in t {
            if b == 0x22 { byte(0x22) }
            byte(b)
        }
        byte(0x22)
    }

    /// A JSON value: `null`, a number (`null` for an infinite or NaN real), or a string (bytes as their
    /// hex digits).
    mutating func json(_ c: StatementRow.Cell) {
        switch c {
        case .null: ascii("null")
        case .integer(let n): signed(n)
        case .real(let d): ascii(d.isFinite ? String(d) : "null")
        case .blob(let b):
            byte(0x22)
            hexPairs(b)
            byte(0x22)
        case .text(let t): jsonString(t)
        }
    }

    /// A JSON object of the columns (names already JSON strings) and their cells.
    mutating func jsonObject(_ names: [String], _ cell: (Int, inout TextLine) -> Void) {
        byte(UInt8(ascii: "{"))
        for (i, name) in names.enumerated() {
            if i > 0 { ascii(", ") }
            ascii(name)
            ascii(": ")
            cell(i, &self)
        }
        byte(UInt8(ascii: "}"))
    }
}
