/// One field of a packed little-endian structure: its byte offset and the property that holds it.
public enum BufferField<Layout> {
    case u8(Int, WritableKeyPath<Layout, UInt8>)
    case u32(Int, WritableKeyPath<Layout, UInt32>)
    case u64(Int, WritableKeyPath<Layout, UInt64>)
    /// A fixed-size byte array (a nonce); shorter values are padded with zeros, longer ones cut.
    case bytes(Int, count: Int, WritableKeyPath<Layout, [UInt8]>)

    /// Where the field starts.
    public var offset: Int {
        switch self {
        case .u8(let o, _), .u32(let o, _), .u64(let o, _), .bytes(let o, _, _): o
        }
    }

    /// How many bytes the field takes.
    public var width: Int {
        switch self {
        case .u8: 1
        case .u32: 4
        case .u64: 8
        case .bytes(_, let count, _): count
        }
    }
}

/// A structure laid out at fixed byte offsets, as a C header declares it: a SEV API command buffer
/// (Linux `struct sev_data_*`) or a KVM user structure (`struct kvm_sev_*`). The offsets are written once,
/// in ``fields``; decoding, encoding and the structure's size all come from there, so the firmware, KVM,
/// the VMM, the analyzer and the tests cannot disagree on where a field lives. Reserved bytes are not
/// fields: ``store(into:)`` leaves them as they are.
public protocol BufferLayout: Equatable, Sendable {
    /// A structure with every field zero.
    init()
    /// The structure's size in bytes (`sizeof`, including trailing padding).
    static var size: Int { get }
    /// The fields, each at its offset.
    static var fields: [BufferField<Self>] { get }
}

extension BufferLayout {
    /// The fields as `buffer` holds them (bytes past its end read as zero).
    public init(_ buffer: CommandBuffer) {
        self.init()
        for field in Self.fields {
            switch field {
            case .u8(let o, let k): self[keyPath: k] = buffer.u8(o)
            case .u32(let o, let k): self[keyPath: k] = buffer.u32(o)
            case .u64(let o, let k): self[keyPath: k] = buffer.u64(o)
            case .bytes(let o, let n, let k): self[keyPath: k] = buffer.slice(o, n)
            }
        }
    }

    /// Writes the fields into `buffer`, leaving its other bytes alone (writes past its end are dropped).
    public func store(into buffer: inout CommandBuffer) {
        for field in Self.fields {
            switch field {
            case .u8(let o, let k): buffer.setU8(o, self[keyPath: k])
            case .u32(let o, let k): buffer.setU32(o, self[keyPath: k])
            case .u64(let o, let k): buffer.setU64(o, self[keyPath: k])
            case .bytes(let o, let n, let k):
                let v = self[keyPath: k]
                buffer.set(o, (0..<n).map { $0 < v.count ? v[$0] : 0 })
            }
        }
    }

    /// The structure as `size` bytes, reserved bytes zero.
    public var buffer: CommandBuffer {
        var b = CommandBuffer(size: Self.size)
        store(into: &b)
        return b
    }
}
