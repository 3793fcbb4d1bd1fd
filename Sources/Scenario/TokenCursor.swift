/// Walks the tokens of one line, producing errors that point at the offending column.
struct TokenCursor {
    let tokens: [Token]
    let file: String
    let line: Int
    /// The column just past the line's text, for "expected … at end of line".
    let endColumn: Int
    private(set) var index = 0

    init(tokens: [Token], file: String, line: Int, endColumn: Int) {
        self.tokens = tokens
        self.file = file
        self.line = line
        self.endColumn = endColumn
    }

    var isAtEnd: Bool { index >= tokens.count }
    var peek: Token? { isAtEnd ? nil : tokens[index] }

    /// Where the next token is (or the end of the line).
    var location: SourceLocation { SourceLocation(file: file, line: line, column: peek?.column ?? endColumn) }

    func error(_ message: String) -> ScenarioError { ScenarioError(location, message) }

    func error(at token: Token, _ message: String) -> ScenarioError {
        ScenarioError(SourceLocation(file: file, line: line, column: token.column), message)
    }

    /// What the next token is, for messages.
    var found: String { peek.map { "'\($0.spelling)'" } ?? "end of line" }

    mutating func next() -> Token? {
        defer { index += 1 }
        return peek
    }

    mutating func word(_ what: String) throws(ScenarioError) -> String {
        guard let t = peek, let w = t.word else { throw error("expected \(what), found \(found)") }
        index += 1
        return w
    }

    mutating func number(_ what: String) throws(ScenarioError) -> UInt64 {
        guard let t = peek, let n = t.number else { throw error("expected \(what), found \(found)") }
        index += 1
        return n
    }

    mutating func punct(_ c: Character) throws(ScenarioError) {
        guard let t = peek, t.kind == .punct(c) else { throw error("expected '\(c)', found \(found)") }
        index += 1
    }

    mutating func accept(_ c: Character) -> Bool {
        guard let t = peek, t.kind == .punct(c) else { return false }
        index += 1
        return true
    }

    func expectEnd() throws(ScenarioError) {
        if let t = peek { throw error(at: t, "unexpected '\(t.spelling)' at end of statement") }
    }

    /// A `key=value` option list up to the end of the line. Values are numbers, strings or words.
    mutating func options(allowed: [String]) throws(ScenarioError) -> Options {
        var out = Options()
        while let t = peek {
            guard let key = t.word else { throw error("expected an option (\(allowed.joined(separator: ", "))=…), found \(found)") }
            guard allowed.contains(key) else {
                throw error(at: t, "unknown option '\(key)'; expected one of: \(allowed.joined(separator: ", "))")
            }
            guard out.values[key] == nil else { throw error(at: t, "option '\(key)' given twice") }
            index += 1
            try punct("=")
            guard let v = next() else { throw error("expected a value for '\(key)'") }
            if case .punct = v.kind { throw error(at: v, "expected a value for '\(key)', found '\(v.spelling)'") }
            out.values[key] = v
        }
        return out
    }

    /// Parsed `key=value` options.
    struct Options {
        var values: [String: Token] = [:]

        func number(_ key: String, default d: UInt64, _ c: TokenCursor) throws(ScenarioError) -> UInt64 {
            guard let t = values[key] else { return d }
            guard let n = t.number else { throw c.error(at: t, "option '\(key)' takes a number") }
            return n
        }

        /// A number option that must lie in `range`, as an `Int`.
        func int(_ key: String, default d: Int, in range: ClosedRange<Int>, _ c: TokenCursor) throws(ScenarioError) -> Int {
            guard let t = values[key] else { return d }
            guard let n = t.number, n <= UInt64(range.upperBound), range.contains(Int(n)) else {
                throw c.error(at: t, "option '\(key)' takes a number from \(range.lowerBound) to \(range.upperBound)")
            }
            return Int(n)
        }

        func string(_ key: String, _ c: TokenCursor) throws(ScenarioError) -> String? {
            guard let t = values[key] else { return nil }
            guard case .string(let s) = t.kind else { throw c.error(at: t, "option '\(key)' takes a quoted string") }
            return s
        }

        /// A `yes`/`no` option.
        func flag(_ key: String, default d: Bool, _ c: TokenCursor) throws(ScenarioError) -> Bool {
            guard let t = values[key] else { return d }
            guard let w = t.word, w == "yes" || w == "no" else { throw c.error(at: t, "\(key) takes yes or no") }
            return w == "yes"
        }

        func word(_ key: String, _ c: TokenCursor) throws(ScenarioError) -> String? {
            guard let t = values[key] else { return nil }
            guard let w = t.word else { throw c.error(at: t, "option '\(key)' takes a word") }
            return w
        }
    }
}
