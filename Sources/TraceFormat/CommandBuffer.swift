/// A SEV API command buffer: packed, little-endian fields at the offsets the specification gives.
/// Reads past the end give zero and writes past the end are dropped, so a short buffer from a caller
/// can never crash the firmware; the firmware checks lengths itself.
public struct CommandBuffer: Equatable, Sendable {
    public var bytes: [UInt8]

    public init(size: Int) { bytes = [UInt8](repeating: 0, count: size) }
    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// An empty buffer of the size `command` takes.
    public init(for command: SEVCommand) { self.init(size: Self.size(of: command)) }

    public func u8(_ offset: Int) -> UInt8 { offset < bytes.count ? bytes[offset] : 0 }

    public func u32(_ offset: Int) -> UInt32 {
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(u8(offset + i)) << UInt32(8 * i) }
        return v
    }

    public func u64(_ offset: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(u8(offset + i)) << UInt64(8 * i) }
        return v
    }

    public func slice(_ offset: Int, _ count: Int) -> [UInt8] { (0..<count).map { u8(offset + $0) } }

    public mutating func setU8(_ offset: Int, _ v: UInt8) { if offset < bytes.count { bytes[offset] = v } }

    public mutating func setU32(_ offset: Int, _ v: UInt32) {
        for i in 0..<4 { setU8(offset + i, UInt8(truncatingIfNeeded: v >> UInt32(8 * i))) }
    }

    public mutating func setU64(_ offset: Int, _ v: UInt64) {
        for i in 0..<8 { setU8(offset + i, UInt8(truncatingIfNeeded: v >> UInt64(8 * i))) }
    }

    public mutating func set(_ offset: Int, _ data: [UInt8]) {
        for (i, b) in data.enumerated() { setU8(offset + i, b) }
    }

    /// The size of `command`'s buffer (``SEVData``); 0 for a command without one.
    public static func size(of command: SEVCommand) -> Int { SEVData.layout(of: command)?.size ?? 0 }
}
