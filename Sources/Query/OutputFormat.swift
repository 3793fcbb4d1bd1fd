import Foundation
import TraceFormat

/// How query results are printed.
public enum OutputFormat: String, CaseIterable, Sendable {
    /// Aligned columns with a header rule.
    case table
    /// RFC 4180 CSV with a header row.
    case csv
    /// A JSON array of objects, one per row (blobs as lowercase hex strings).
    case json

    /// Renders one result.
    public func render(_ r: QueryResult) -> String {
        switch self {
        case .table: renderTable(r)
        case .csv: renderCSV(r)
        case .json: renderJSON(r)
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

    private func renderTable(_ r: QueryResult) -> String {
        let cells = r.rows.map { $0.map(Self.text) }
        var widths = r.columns.map(\.count)
        for row in cells { for (i, c) in row.enumerated() { widths[i] = max(widths[i], c.count) } }
        func line(_ values: [String], numeric: [Bool]) -> String {
            values.enumerated().map { i, v in
                let pad = String(repeating: " ", count: widths[i] - v.count)
                return numeric[i] ? pad + v : v + pad
            }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        let numeric = r.columns.indices.map { i in
            !r.rows.isEmpty && r.rows.allSatisfy { row in
                if case .integer = row[i] { true } else if case .real = row[i] { true } else { row[i] == .null }
            }
        }
        var out = line(r.columns, numeric: numeric.map { _ in false }) + "\n"
        out += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n"
        for row in cells { out += line(row, numeric: numeric) + "\n" }
        out += "(\(r.rows.count) row\(r.rows.count == 1 ? "" : "s"))\n"
        return out
    }

    private func renderCSV(_ r: QueryResult) -> String {
        func field(_ s: String) -> String {
            s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        var out = r.columns.map(field).joined(separator: ",") + "\r\n"
        for row in r.rows { out += row.map { field(Self.text($0)) }.joined(separator: ",") + "\r\n" }
        return out
    }

    private func renderJSON(_ r: QueryResult) -> String {
        func string(_ s: String) -> String {
            var out = "\""
            for u in s.unicodeScalars {
                switch u {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                default:
                    if u.value < 0x20 {
                        let h = String(u.value, radix: 16)
                        out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                    } else {
                        out.unicodeScalars.append(u)
                    }
                }
            }
            return out + "\""
        }
        func value(_ v: SQLiteValue) -> String {
            switch v {
            case .null: "null"
            case .integer(let i): String(i)
            case .real(let d): d.isFinite ? String(d) : "null"
            case .text(let s): string(s)
            case .blob: string(Self.text(v))
            }
        }
        let rows = r.rows.map { row in
            "  {" + zip(r.columns, row).map { "\(string($0)): \(value($1))" }.joined(separator: ", ") + "}"
        }
        return rows.isEmpty ? "[]\n" : "[\n" + rows.joined(separator: ",\n") + "\n]\n"
    }
}
