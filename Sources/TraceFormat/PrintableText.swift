/// Text from a scenario or a bundle made safe for a terminal: control characters (C0, DEL, C1) and
/// invisible format characters (bidirectional overrides and the like) are shown as `\u{…}` escapes,
/// so a hostile name or message cannot move the cursor, recolour the screen or reorder what is shown.
public func printable(_ s: String) -> String {
    guard s.unicodeScalars.contains(where: needsEscape) else { return s }
    var out = ""
    for u in s.unicodeScalars {
        if needsEscape(u) {
            out += "\\u{" + String(u.value, radix: 16, uppercase: true) + "}"
        } else {
            out.unicodeScalars.append(u)
        }
    }
    return out
}

private func needsEscape(_ u: Unicode.Scalar) -> Bool {
    u.value < 0x20 || (0x7F...0x9F).contains(u.value) || u.properties.generalCategory == .format
}
