/// An append-only byte buffer with the little-endian and LEB128 primitives the trace format uses.
///
/// It writes into storage sized ahead and keeps its own length, so appending a byte is a store and an
/// increment rather than a trip through `Array.append`'s growth checks: encoding is most of what
/// recording costs.
public struct ByteWriter: Sendable {
    private var storage: [UInt8]
    /// The number of bytes written so far.
    public private(set) var count = 0

    /// Creates an empty writer with room for `capacity` bytes.
    public init(capacity: Int = 0) {
        storage = [UInt8](repeating: 0, count: max(capacity, 64))
    }

    /// The bytes written so far (a copy).
    public var bytes: [UInt8] { Array(storage[..<count]) }

    /// Forgets the bytes written so far, keeping the storage.
    public mutating func removeAll() { count = 0 }

    /// Makes room for `n` more bytes.
    @inline(__always) private mutating func reserve(_ n: Int) {
        if count + n > storage.count { storage += [UInt8](repeating: 0, count: max(storage.count, n)) }
    }

    @inline(__always) public mutating func u8(_ v: UInt8) {
        reserve(1)
        storage[count] = v
        count += 1
    }

    public mutating func u16(_ v: UInt16) { u8(UInt8(truncatingIfNeeded: v)); u8(UInt8(truncatingIfNeeded: v >> 8)) }

    public mutating func u32(_ v: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { u8(UInt8(truncatingIfNeeded: v >> UInt32(shift))) }
    }

    public mutating func u64(_ v: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { u8(UInt8(truncatingIfNeeded: v >> UInt64(shift))) }
    }

    /// Appends an unsigned LEB128 varint.
    @inline(__always) public mutating func varint(_ value: UInt64) {
        append(atMost: 10) { $0.varint(value) }
    }

    /// Appends a signed value as a zig-zag varint.
    @inline(__always) public mutating func zigzag(_ value: Int64) {
        varint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    /// Lets `body` append at most `maxBytes` bytes through a ``ByteCursor`` straight into the storage:
    /// one capacity check and one uniqueness check for a whole event rather than one per byte.
    /// `maxBytes` must bound what `body` writes (checked once `body` returns, too late to be a guard: the
    /// bound comes from the layout, never from input).
    @inline(__always) mutating func append(atMost maxBytes: Int, _ body: (inout ByteCursor) -> Void) {
        reserve(maxBytes)
        let start = count
        count = storage.withUnsafeMutableBufferPointer { buffer in
            var cursor = ByteCursor(buffer.baseAddress! + start)
            body(&cursor)
            return start + cursor.written
        }
        precondition(count - start <= maxBytes, "an event was encoded longer than its layout allows")
    }

    /// Appends a length-prefixed byte string.
    public mutating func blob(_ data: [UInt8]) {
        varint(UInt64(data.count))
        raw(data)
    }

    /// Appends a length-prefixed UTF-8 string.
    public mutating func string(_ s: String) { blob(Array(s.utf8)) }

    /// Appends raw bytes.
    public mutating func raw<C: Collection>(_ data: C) where C.Element == UInt8 {
        reserve(data.count)
        var n = count
        for b in data {
            storage[n] = b
            n += 1
        }
        count = n
    }
}

/// Appends to storage a ``ByteWriter`` reserved (``ByteWriter/append(atMost:_:)``), without checks.
struct ByteCursor {
    private let base: UnsafeMutablePointer<UInt8>
    /// Bytes written so far.
    private(set) var written = 0

    init(_ base: UnsafeMutablePointer<UInt8>) { self.base = base }

    @inline(__always) mutating func u8(_ v: UInt8) {
        base[written] = v
        written += 1
    }

    /// Eight little-endian bytes.
    @inline(__always) mutating func u64(_ v: UInt64) {
        UnsafeMutableRawPointer(base + written).storeBytes(of: v.littleEndian, as: UInt64.self)
        written += 8
    }

    /// An unsigned LEB128 varint (at most 10 bytes).
    @inline(__always) mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            base[written] = UInt8(truncatingIfNeeded: v) | 0x80
            v >>= 7
            written += 1
        }
        base[written] = UInt8(v)
        written += 1
    }

    /// A signed value as a zig-zag varint.
    @inline(__always) mutating func zigzag(_ value: Int64) {
        varint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }
}
