/// A line of text written as UTF-8 bytes, for the one-line renderings of events: numbers are written as
/// digits straight into the bytes, so a line costs one buffer rather than a string per field.
public struct TextLine: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 128) { bytes.reserveCapacity(capacity) }

    /// Empties the line, keeping its storage.
    public mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }

    public var string: String { String(decoding: bytes, as: UTF8.self) }

    @inline(__always)
    public mutating func byte(_ b: UInt8) { bytes.append(b) }

    /// Text as its UTF-8 bytes, unchanged (a column's name, a fixed word).
    public mutating func ascii(_ s: String) { bytes.append(contentsOf: s.utf8) }

    /// Bytes, unchanged.
    public mutating func raw(_ b: UnsafeRawBufferPointer) { bytes.append(contentsOf: b) }

    /// Text from a bundle: as it is when it is printable ASCII without a space, quote or `=`; otherwise
    /// made printable (``printable(_:)``) and quoted, so that it cannot pass for another field.
    public mutating func text(_ s: String) {
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

    /// "00"…"99", for writing decimal digits two at a time.
    private static let pairs: [UInt8] = (0..<100).flatMap { [UInt8(ascii: "0") + UInt8($0 / 10), UInt8(ascii: "0") + UInt8($0 % 10)] }

    /// `v` in decimal.
    public mutating func decimal(_ v: UInt64) {
        if v < 10 { return bytes.append(UInt8(ascii: "0") + UInt8(v)) }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            Self.pairs.withUnsafeBufferPointer { pairs in
                var i = 20, v = v
                while v >= 100 {
                    let pair = Int(v % 100) * 2
                    v /= 100
                    i -= 2
                    digits[i] = pairs[pair]
                    digits[i + 1] = pairs[pair + 1]
                }
                if v >= 10 {
                    i -= 2
                    digits[i] = pairs[Int(v) * 2]
                    digits[i + 1] = pairs[Int(v) * 2 + 1]
                } else {
                    i -= 1
                    digits[i] = UInt8(ascii: "0") + UInt8(v)
                }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: digits[i...]))
            }
        }
    }

    /// `v` in decimal, with its sign.
    public mutating func signed(_ v: Int64) {
        if v < 0 { byte(UInt8(ascii: "-")) }
        decimal(v.magnitude)
    }

    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    /// `v` as `0x` and lowercase hex digits.
    public mutating func hex(_ v: UInt64) {
        bytes.append(UInt8(ascii: "0"))
        bytes.append(UInt8(ascii: "x"))
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { digits in
            var i = 16, v = v
            repeat {
                i -= 1
                digits[i] = Self.digits[Int(v & 15)]
                v >>= 4
            } while v != 0
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: digits[i...]))
        }
    }

    /// Bytes as pairs of hex digits, `-` for none.
    mutating func hexBytes(_ b: [UInt8]) {
        guard !b.isEmpty else { return byte(UInt8(ascii: "-")) }
        b.withUnsafeBytes { hexPairs($0) }
    }

    /// Bytes as pairs of lowercase hex digits (nothing for none).
    public mutating func hexPairs(_ b: UnsafeRawBufferPointer) {
        for x in b {
            bytes.append(Self.digits[Int(x >> 4)])
            bytes.append(Self.digits[Int(x & 15)])
        }
    }

    /// A JSON string: quotes, backslashes and control characters escaped, everything else as it is.
    public mutating func jsonString(_ t: UnsafeRawBufferPointer) {
        byte(0x22)
        for b in t {
            switch b {
            case 0x22: ascii("\\\"")
            case 0x5C: ascii("\\\\")
            case 0x0A: ascii("\\n")
            case 0x0D: ascii("\\r")
            case 0x09: ascii("\\t")
            case 0..<0x20:
                ascii(b < 0x10 ? "\\u000" : "\\u00")
                ascii(String(b, radix: 16))
            default: byte(b)
            }
        }
        byte(0x22)
    }
}
