/// Reads and writes one field of a payload the fastest way it can: a field of a trivial type stored in
/// the payload (a number, a flag, a fieldless enumeration) through its byte offset, found once from the
/// key path; any other field through the key path itself, which costs a call into the runtime and a
/// retain of the key path each time.
struct FieldAccess<P, V>: @unchecked Sendable {
    let key: WritableKeyPath<P, V>
    /// The field's byte offset in `P`, when it is stored there and of a trivial type.
    let offset: Int?

    init(_ key: WritableKeyPath<P, V>) {
        self.key = key
        offset = _isPOD(V.self) ? MemoryLayout<P>.offset(of: key) : nil
    }

    @inline(__always)
    func get(_ p: P) -> V {
        guard let offset else { return p[keyPath: key] }
        return withUnsafeBytes(of: p) { $0.load(fromByteOffset: offset, as: V.self) }
    }

    /// The field of a payload read where it lies (no copy of the payload, which could retain its arrays).
    @inline(__always)
    func get(in p: inout P) -> V {
        guard let offset else { return p[keyPath: key] }
        return withUnsafeBytes(of: &p) { $0.load(fromByteOffset: offset, as: V.self) }
    }

    @inline(__always)
    func set(_ p: inout P, _ v: V) {
        guard let offset else { return p[keyPath: key] = v }
        withUnsafeMutableBytes(of: &p) { $0.storeBytes(of: v, toByteOffset: offset, as: V.self) }
    }
}
