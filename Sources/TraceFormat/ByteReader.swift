/// Reads the primitives of ``ByteWriter`` back, failing with ``ByteReader/Truncated`` rather than trapping.
public struct ByteReader: Sendable {
    /// Thrown when the input ends inside a value, or a varint is longer than ten bytes.
    public struct Truncated: Error, Sendable {
        /// The offset at which the value began.
        public let offset: Int
    }

    public let bytes: [UInt8]
    /// The offset of the next byte to read.
    public private(set) var offset: Int

    public init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    /// True when every byte has been read.
    public var isAtEnd: Bool { offset >= bytes.count }

    @inline(__always) public mutating func u8() throws(Truncated) -> UInt8 {
        guard offset < bytes.count else { throw Truncated(offset: offset) }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func u16() throws(Truncated) -> UInt16 {
        let lo = try u8(), hi = try u8()
        return UInt16(lo) | UInt16(hi) << 8
    }

    public mutating func u32() throws(Truncated) -> UInt32 {
        var v: UInt32 = 0
        for shift in stride(from: 0, to: 32, by: 8) { v |= UInt32(try u8()) << UInt32(shift) }
        return v
    }

    public mutating func u64() throws(Truncated) -> UInt64 {
        var v: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 8) { v |= UInt64(try u8()) << UInt64(shift) }
        return v
    }

    @inline(__always) public mutating func varint() throws(Truncated) -> UInt64 {
        let start = offset
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < bytes.count, shift < 64 else { throw Truncated(offset: start) }
            let b = bytes[offset]
            offset += 1
            result |= UInt64(b & 0x7f) << shift
            if b < 0x80 { return result }
            shift += 7
        }
    }

    @inline(__always) public mutating func zigzag() throws(Truncated) -> Int64 {
        let v = try varint()
        return Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1)
    }

    public mutating func blob() throws(Truncated) -> [UInt8] {
        let start = offset
        let n = try varint()
        guard n <= UInt64(bytes.count - offset) else { throw Truncated(offset: start) }
        defer { offset += Int(n) }
        return Array(bytes[offset..<offset + Int(n)])
    }

    public mutating func string() throws(Truncated) -> String { String(decoding: try blob(), as: UTF8.self) }

    public mutating func raw(_ n: Int) throws(Truncated) -> [UInt8] {
        guard n >= 0, n <= bytes.count - offset else { throw Truncated(offset: offset) }
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }
}
