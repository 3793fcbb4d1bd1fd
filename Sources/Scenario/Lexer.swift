import Foundation

/// One token of a scenario line.
struct Token: Equatable {
    enum Kind: Equatable {
        /// A word: keyword, name, register, mnemonic (letters, digits, `_`, `.`, and `-` before a letter).
        case word(String)
        /// A number (decimal, `0x` hex, `0b` binary, with an optional K/M/G size suffix).
        case number(UInt64)
        /// A double-quoted string with `\n`, `\r`, `\t`, `\\`, `\"` and `\xHH` escapes.
        case string(String)
        /// One of `, [ ] + - = :`.
        case punct(Character)
    }

    var kind: Kind
    /// 1-based column.
    var column: Int

    var word: String? { if case .word(let w) = kind { w } else { nil } }
    var number: UInt64? { if case .number(let n) = kind { n } else { nil } }

    var spelling: String {
        switch kind {
        case .word(let w): w
        case .number(let n): String(n)
        case .string(let s): "\"\(s)\""
        case .punct(let c): String(c)
        }
    }
}

/// Splits scenario lines into tokens; `#` starts a comment that runs to the end of the line.
struct Lexer {
    let file: String

    func tokenize(_ line: Substring, lineNumber: Int) throws(ScenarioError) -> [Token] {
        let chars = Array(line)
        var tokens: [Token] = []
        var i = 0
        func location(_ col: Int) -> SourceLocation { SourceLocation(file: file, line: lineNumber, column: col + 1) }
        while i < chars.count {
            let c = chars[i]
            if c == "#" { break }
            if c == " " || c == "\t" || c == "\r" {
                i += 1
                continue
            }
            let start = i
            if c.isLetter || c == "_" {
                // `-` joins words (`disk-key`) but not a register and a number (`r1-8`).
                while i < chars.count, chars[i].isLetter || chars[i].isNumber || "_.".contains(chars[i])
                    || (chars[i] == "-" && i + 1 < chars.count && chars[i + 1].isLetter) { i += 1 }
                tokens.append(Token(kind: .word(String(chars[start..<i])), column: start + 1))
            } else if c.isNumber {
                while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "_" || chars[i] == "." { i += 1 }
                let text = String(chars[start..<i])
                if text.contains(".") {
                    // A dotted version such as 0.17: a word, read by the statements that take one.
                    tokens.append(Token(kind: .word(text), column: start + 1))
                    continue
                }
                guard let n = Self.parseNumber(text) else {
                    throw ScenarioError(location(start), "invalid number '\(text)'")
                }
                tokens.append(Token(kind: .number(n), column: start + 1))
            } else if c == "\"" {
                i += 1
                var s = ""
                var closed = false
                while i < chars.count {
                    let ch = chars[i]
                    if ch == "\"" {
                        closed = true
                        i += 1
                        break
                    }
                    if ch == "\\" {
                        guard i + 1 < chars.count else { break }
                        let e = chars[i + 1]
                        switch e {
                        case "n": s.append("\n")
                        case "r": s.append("\r")
                        case "t": s.append("\t")
                        case "\\": s.append("\\")
                        case "\"": s.append("\"")
                        case "x":
                            guard i + 3 < chars.count, let v = UInt8(String(chars[i + 2...i + 3]), radix: 16) else {
                                throw ScenarioError(location(i), "expected two hex digits after \\x")
                            }
                            s.unicodeScalars.append(Unicode.Scalar(v))
                            i += 2
                        default: throw ScenarioError(location(i), "unknown escape '\\\(e)'")
                        }
                        i += 2
                        continue
                    }
                    s.append(ch)
                    i += 1
                }
                guard closed else { throw ScenarioError(location(start), "unterminated string") }
                tokens.append(Token(kind: .string(s), column: start + 1))
            } else if ",[]+-=:".contains(c) {
                tokens.append(Token(kind: .punct(c), column: start + 1))
                i += 1
            } else {
                throw ScenarioError(location(start), "unexpected character '\(c)'")
            }
        }
        return tokens
    }

    /// Replaces words that name constants with their values, then folds sums and differences of numbers
    /// (`BASE+0x10`, `END - 16`) into one number wherever a number goes, wrapping as `let` does.
    static func substitute(_ tokens: [Token], _ constants: [String: UInt64]) -> [Token] {
        let named = constants.isEmpty ? tokens : tokens.map { t in
            if let w = t.word, let v = constants[w] { Token(kind: .number(v), column: t.column) } else { t }
        }
        var out: [Token] = []
        out.reserveCapacity(named.count)
        var i = 0
        while i < named.count {
            guard var value = named[i].number else {
                out.append(named[i])
                i += 1
                continue
            }
            let column = named[i].column
            i += 1
            while i + 1 < named.count, named[i].kind == .punct("+") || named[i].kind == .punct("-"), let operand = named[i + 1].number {
                value = named[i].kind == .punct("+") ? value &+ operand : value &- operand
                i += 2
            }
            out.append(Token(kind: .number(value), column: column))
        }
        return out
    }

    /// Parses `123`, `0x1f`, `0b101`, `4K`, `2M`, `1G`, with `_` separators.
    static func parseNumber(_ text: String) -> UInt64? {
        var t = text.replacingOccurrences(of: "_", with: "")
        var scale: UInt64 = 1
        let lower = t.lowercased()
        if !lower.hasPrefix("0x"), let last = lower.last, "kmg".contains(last) {
            scale = last == "k" ? 1 << 10 : last == "m" ? 1 << 20 : 1 << 30
            t.removeLast()
        }
        let value: UInt64?
        if lower.hasPrefix("0x") {
            value = UInt64(t.dropFirst(2), radix: 16)
        } else if lower.hasPrefix("0b") {
            value = UInt64(t.dropFirst(2), radix: 2)
        } else {
            value = UInt64(t, radix: 10)
        }
        guard let v = value else { return nil }
        let (r, overflow) = v.multipliedReportingOverflow(by: scale)
        return overflow ? nil : r
    }
}
