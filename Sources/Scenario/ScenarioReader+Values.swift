import SEVMachine
import TraceFormat

/// The values statements share: byte strings, lengths, expected outcomes and bytes, versions.
extension ScenarioReader {
    static func apiVersion(_ w: String) -> (UInt8, UInt8)? {
        let parts = w.split(separator: ".")
        guard parts.count == 2, let a = UInt8(parts[0]), let b = UInt8(parts[1]) else { return nil }
        return (a, b)
    }


    /// `expect=OUTCOME`: `ok`, `REFUSED`, a firmware status (`POLICY_FAILURE`), or an errno by name
    /// (`EINVAL`) or number (`errno22`, `"errno 22"`).
    static func expectation(_ o: TokenCursor.Options, _ c: TokenCursor) throws(ScenarioError) -> String? {
        guard let t = o.values["expect"] else { return nil }
        let what = "ok, REFUSED, a firmware status such as POLICY_FAILURE, or an errno such as EINVAL or errno22"
        let w: String
        switch t.kind {
        case .word(let word): w = word
        case .string(let text): w = text
        default: throw c.error(at: t, "expect takes \(what)")
        }
        guard Outcome.isKnown(w) else { throw c.error(at: t, "unknown outcome '\(w)'; expected \(what)") }
        return w
    }

    /// `expect-hex="…"`: the bytes a command must give back.
    func expectedBytes(_ o: TokenCursor.Options, _ c: TokenCursor) throws(ScenarioError) -> [UInt8]? {
        guard let h = try o.string("expect-hex", c) else { return nil }
        guard let bytes = Self.hexBytes(h), !bytes.isEmpty, bytes.count <= limits.maxStatementBytes else {
            throw c.error(at: o.values["expect-hex"]!, "expect-hex needs an even, non-zero number of hex digits")
        }
        return bytes
    }

    static func hexBytes(_ h: String) -> [UInt8]? {
        let digits = Array(h.filter { !$0.isWhitespace })
        guard digits.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let b = UInt8(String(digits[i...i + 1]), radix: 16) else { return nil }
            out.append(b)
        }
        return out
    }

    /// A length in bytes, 1 to the statement limit.
    func length(_ c: inout TokenCursor) throws(ScenarioError) -> Int {
        let t = c.peek
        let n = try c.number("a length in bytes")
        guard n >= 1, n <= limits.maxStatementBytes else {
            throw c.error(at: t!, "a length must be 1 to \(limits.maxStatementBytes) bytes (raise the limit with --max-statement-bytes)")
        }
        return Int(n)
    }

    /// The byte options: `hex="00 11 …"`, `text="…"`, or `fill=BYTE len=N` (plus `extra` options the
    /// statement reads itself).
    func bytes(_ c: inout TokenCursor, extra: [String] = []) throws(ScenarioError) -> [UInt8] {
        let maxBytes = limits.maxStatementBytes
        let start = c.location
        let o = try c.options(allowed: ["hex", "text", "fill", "len"] + extra)
        let given = ["hex", "text", "fill"].filter { o.values[$0] != nil }
        guard given.count == 1 else { throw ScenarioError(start, "give exactly one of hex=\"…\", text=\"…\" or fill=BYTE len=N") }
        if let h = try o.string("hex", c) {
            let digits = h.filter { !$0.isWhitespace }
            guard digits.count % 2 == 0, !digits.isEmpty else {
                throw c.error(at: o.values["hex"]!, "hex needs an even, non-zero number of digits")
            }
            var out: [UInt8] = []
            var i = digits.startIndex
            while i < digits.endIndex {
                let j = digits.index(i, offsetBy: 2)
                guard let b = UInt8(digits[i..<j], radix: 16) else { throw c.error(at: o.values["hex"]!, "'\(digits[i..<j])' is not a hex byte") }
                out.append(b)
                i = j
            }
            return out
        }
        if let t = try o.string("text", c) {
            guard !t.isEmpty else { throw c.error(at: o.values["text"]!, "text is empty") }
            return t.unicodeScalars.map { $0.value < 256 ? UInt8($0.value) : UInt8(ascii: "?") }
        }
        let fill = try o.number("fill", default: 0, c)
        guard fill < 256 else { throw c.error(at: o.values["fill"]!, "fill is one byte") }
        guard o.values["len"] != nil else { throw ScenarioError(start, "fill needs len=N") }
        let len = try o.number("len", default: 0, c)
        guard len > 0, len <= maxBytes else {
            throw c.error(at: o.values["len"]!, "len must be 1 to \(maxBytes) (raise the limit with --max-statement-bytes)")
        }
        return [UInt8](repeating: UInt8(fill), count: Int(len))
    }
}
