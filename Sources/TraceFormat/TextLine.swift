/// A line of text written as UTF-8 bytes, for the one-line renderings of events: numbers are written as
/// digits straight into the bytes, so a line costs one buffer rather than a string per field.
public struct TextLine: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 128) { bytes.reserveCapacity(capacity) }

    /// Empties the line, keeping its storage.
    public mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }

    public var string: String { String(decoding: bytes, as: UTF8.self) }

    @inline(__always)
    mutating func byte(_ b: UInt8) { bytes.append(b) }

    /// Text known to be plain ASCII (a column's name, a fixed word).
    mutating func ascii(_ s: String) { bytes.append(contentsOf: s.utf8) }

    /// Text from a bundle: as it is when it is printable ASCII without a space, quote or `=`; otherwise
    /// made printable (``printable(_:)``) and quoted, so that it cannot pass for another field.
    mutating func text(_ s: String) {
        var plain = !s.isEmpty
        for b in s.utf8 where b <= 0x20 || b >= 0x7F || b == UInt8(ascii: "\"") || b == UInt8(ascii: "=") || b == UInt8(ascii: "\\") {
            plain = false
            break
        }
        if plain { return ascii(s) }
        // Backslashes and quotes first, so that the `\u{…}` escapes `printable` adds stay single.
        let escaped = printable(s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))
        byte(UInt8(ascii: "\""))
        bytes.append(contentsOf: escaped.utf8)
        byte(UInt8(ascii: "\""))
    }

    /// `v` in decimal.
    mutating func decimal(_ v: UInt64) {
        let start = bytes.count
        var v = v
        repeat {
            bytes.append(UInt8(ascii: "0") + UInt8(v % 10))
            v /= 10
        } while v != 0
        bytes[start...].reverse()
    }

    /// `v` in decimal, with its sign.
    mutating func signed(_ v: Int64) {
        if v < 0 { byte(UInt8(ascii: "-")) }
        decimal(v.magnitude)
    }

    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    /// `v` as `0x` and lowercase hex digits.
    mutating func hex(_ v: UInt64) {
        bytes.append(UInt8(ascii: "0"))
        bytes.append(UInt8(ascii: "x"))
        let start = bytes.count
        var v = v
        repeat {
            bytes.append(Self.digits[Int(v & 15)])
            v >>= 4
        } while v != 0
        bytes[start...].reverse()
    }

    /// Bytes as pairs of hex digits, `-` for none.
    mutating func hexBytes(_ b: [UInt8]) {
        guard !b.isEmpty else { return byte(UInt8(ascii: "-")) }
        for x in b {
            bytes.append(Self.digits[Int(x >> 4)])
            bytes.append(Self.digits[Int(x & 15)])
        }
    }
}
