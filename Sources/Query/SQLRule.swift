import Analyzer
import Foundation
import TraceFormat

/// A detector written in SQL: a file of statements run read-only over a trace's index and its `events`
/// table, whose last result set lists one finding per row.
///
/// The file starts with `--` header lines naming the rule (`-- rule: ID`), its default severity
/// (`-- severity: medium`) and what it looks for (`-- summary: …`); `-- positive:` and `-- negative:`
/// may name scenario files (relative to the rule) on which it must and must not report. Result columns
/// are matched by name: `sink_seq` and `summary` are required; `source_seq`, `sink_last_seq`, `vm`,
/// `asid`, `actor`, `sink_spa`, `sink_gpa`, `length`, `labels`, `severity` and `occurrences` are
/// optional. Queries/README.md documents the shape.
public struct SQLRule: TraceRule {
    public let id: String
    public let severity: Severity
    public let summary: String
    /// The rule's file, for errors.
    public let file: String
    /// Scenario files the rule must report on, and stay silent on (absolute paths).
    public let positive: String?
    public let negative: String?
    let sql: String

    /// The largest rule file read.
    public static let maxBytes = 1 << 20
    /// The most rows (findings) one rule may return on one trace.
    public static let maxRows = 100_000

    /// A problem with a rule file or its result, naming the file.
    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    /// Parses the rule in `text`; `file` names it in errors and anchors its scenario paths.
    public init(text: String, file: String) throws {
        var fields: [String: String] = [:]
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let t = line.trimmingCharacters(in: .whitespaces)
            guard t.hasPrefix("--") else { if t.isEmpty { continue } else { break } }
            let body = t.dropFirst(2).trimmingCharacters(in: .whitespaces)
            guard let colon = body.firstIndex(of: ":") else { continue }
            let key = body[..<colon].lowercased(), value = body[body.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            guard ["rule", "severity", "summary", "positive", "negative"].contains(key) else { continue }
            guard fields[key] == nil else { throw Problem(description: "\(file):\(n + 1): '\(key)' given twice") }
            fields[key] = value
        }
        guard let id = fields["rule"], id.count >= 3, id.count <= 64, id.first!.isUppercase,
              id.allSatisfy({ ($0.isUppercase && $0.isASCII) || $0.isNumber || $0 == "_" }) else {
            throw Problem(description: "\(file): a rule starts with '-- rule: ID' (A-Z, 0-9 and _, 3 to 64 characters)")
        }
        guard Detector(rawValue: id) == nil else { throw Problem(description: "\(file): \(id) is a built-in detector's id") }
        guard let name = fields["severity"], let severity = Severity(name: name) else {
            throw Problem(description: "\(file): a rule needs '-- severity: LEVEL' (info, low, medium, high or critical)")
        }
        let folder = URL(fileURLWithPath: file).deletingLastPathComponent()
        let resolve = { (p: String?) in p.map { folder.appendingPathComponent($0).standardizedFileURL.path } }
        (self.id, self.severity, self.summary, self.file, self.sql) = (id, severity, fields["summary"] ?? "", file, text)
        (positive, negative) = (resolve(fields["positive"]), resolve(fields["negative"]))
    }

    /// Reads the rule file at `path`.
    public static func load(_ path: String) throws -> SQLRule {
        let text = try InputFile.text(path, what: "rule", limit: maxBytes)
        return try SQLRule(text: text, file: path)
    }

    /// Every `*.sql` rule in `directory`, in file-name order; two rules may not share an id.
    public static func loadDirectory(_ directory: String) throws -> [SQLRule] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            throw Problem(description: "\(directory): cannot list the rules directory")
        }
        var rules: [SQLRule] = []
        for name in names.filter({ $0.hasSuffix(".sql") }).sorted() {
            let rule = try load((directory as NSString).appendingPathComponent(name))
            if let other = rules.first(where: { $0.id == rule.id }) {
                throw Problem(description: "\(rule.file): rule \(rule.id) is also defined in \(other.file)")
            }
            rules.append(rule)
        }
        return rules
    }

    /// Runs the rule read-only over `bundle` (within `limits`) and turns its last result set into findings.
    public func findings(in bundle: TraceBundle) throws -> [Finding] { try findings(in: bundle, limits: QueryLimits()) }

    public func findings(in bundle: TraceBundle, limits: QueryLimits) throws -> [Finding] {
        let rows = RuleRows(limit: Self.maxRows)
        try QueryEngine(bundle: bundle).run(sql, file: file, into: rows, limits: limits)
        guard !rows.overflow else { throw Problem(description: "\(file): rule \(id) returned more than \(Self.maxRows) rows") }
        guard let columns = rows.columns else { return [] }
        let at = { (name: String) in columns.firstIndex(of: name) }
        guard let sinkColumn = at("sink_seq"), let summaryColumn = at("summary") else {
            throw Problem(description: "\(file): rule \(id) must return columns sink_seq and summary")
        }
        func int(_ row: [SQLiteValue], _ name: String) -> UInt64? {
            guard let i = at(name), case .integer(let v) = row[i] else { return nil }
            return UInt64(bitPattern: v)
        }
        func text(_ row: [SQLiteValue], _ name: String) -> String? {
            guard let i = at(name) else { return nil }
            switch row[i] {
            case .text(let s): return s
            case .integer(let v): return String(v)
            default: return nil
            }
        }
        return try rows.rows.enumerated().map { n, row in
            guard case .integer(let sink) = row[sinkColumn], case .text(let summary) = row[summaryColumn] else {
                throw Problem(description: "\(file): row \(n + 1) of rule \(id) needs an integer sink_seq and a text summary")
            }
            let sinkSeq = UInt64(bitPattern: sink)
            let source = int(row, "source_seq") ?? sinkSeq
            var f = Finding(
                detector: id, severity: text(row, "severity").flatMap(Severity.init(name:)) ?? severity,
                vm: int(row, "vm").flatMap { UInt16(exactly: $0) } ?? MemoryAccess.noVM,
                asid: int(row, "asid").flatMap { UInt16(exactly: $0) } ?? 0, actor: text(row, "actor") ?? "rule",
                sourceSeq: source, sinkSeq: sinkSeq, sinkLastSeq: int(row, "sink_last_seq") ?? sinkSeq, sourceSPA: 0,
                sinkSPA: int(row, "sink_spa") ?? 0, sinkGPA: int(row, "sink_gpa") ?? 0, length: int(row, "length") ?? 0,
                labels: text(row, "labels") ?? "", preview: "", summary: summary,
                flow: source == sinkSeq ? [FlowStep(seq: sinkSeq, role: .sink)]
                    : [FlowStep(seq: source, role: .source), FlowStep(seq: sinkSeq, role: .sink)])
            f.occurrences = max(1, int(row, "occurrences") ?? 1)
            return f
        }
    }

    /// Keeps the last result set, up to a row limit.
    private final class RuleRows: QueryOutput {
        let limit: Int
        var columns: [String]?
        var rows: [[SQLiteValue]] = []
        var overflow = false

        init(limit: Int) { self.limit = limit }

        func begin(columns: [String], index: Int) {
            self.columns = columns
            rows = []
        }

        func row(_ values: [SQLiteValue]) {
            guard rows.count < limit else {
                overflow = true
                return
            }
            rows.append(values)
        }

        func end() {}
    }
}
