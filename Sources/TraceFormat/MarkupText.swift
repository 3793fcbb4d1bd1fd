/// Text made safe for the machine-readable formats the tool writes (JSON documents, XML reports).
public enum MarkupText {
    /// `s` as a JSON string literal, quotes included: `"`, `\` and control characters escaped.
    public static func json(_ s: String) -> String {
        var line = TextLine(capacity: s.utf8.count + 2)
        var s = s
        s.withUTF8 { line.jsonString(UnsafeRawBufferPointer($0)) }
        return line.string
    }

    /// `s` for XML character data or an attribute value: markup characters escaped, and characters
    /// XML 1.0 cannot hold at all (most C0 controls) shown as `\u{…}`.
    public static func xml(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t", "\n", "\r": out.unicodeScalars.append(u)
            default:
                if u.value < 0x20 || (0xFFFE...0xFFFF).contains(u.value) {
                    out += "\\u{" + String(u.value, radix: 16, uppercase: true) + "}"
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out
    }
}
