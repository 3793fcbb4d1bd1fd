/// One field of a kind of event, declared once in ``EventSchema``: the columns SQL shows for it, how a
/// line of text (`dump`, the `events` table's `detail`) shows it, and how `events.zst` codes it. A field
/// with no coding is computed from the others (a command's name from its number) or is coded by hand
/// (the predicted fields of memory accesses and register ops, ``EventCodec``).
///
/// Coding, in declaration order after the event's tag and Δcycle: an 8-bit integer or enumeration as one
/// byte, a wider integer as a varint (checked against its width when read), a signed one as the varint
/// of its 32-bit pattern, a flag as a byte 0 or 1, consecutive flags declared together as the bits of one
/// byte, text and bytes as a varint length and the bytes.
public struct EventField<P: Sendable>: Sendable {
    /// Writes the field after the event's tag and the fields before it. (The payload is only read: it is
    /// passed `inout` so that its fields are read where it lies, not from a copy of it.)
    typealias Encode = @Sendable (inout P, inout ByteWriter, inout EventCodec.State) -> Void
    /// Reads the field into the payload being rebuilt.
    typealias Decode = @Sendable (inout P, inout ByteReader, inout EventCodec.State) throws -> Void

    let columns: [EventColumn<P>]
    let encode: Encode?
    let decode: Decode?

    init(columns: [EventColumn<P>], encode: Encode? = nil, decode: Decode? = nil) {
        self.columns = columns
        self.encode = encode
        self.decode = decode
    }

    /// Whether `events.zst` codes the field through this declaration.
    var isCoded: Bool { encode != nil }

    // MARK: - Columns only

    /// The event's sequence number (its position: never coded).
    public static var seq: Self { Self(columns: [EventColumn(name: "seq", type: .integer, nullable: false, getter: .seq, text: .hidden)]) }
    /// The event's cycle (coded as a delta before every event's fields).
    public static var cycle: Self { Self(columns: [EventColumn(name: "cycle", type: .integer, nullable: false, getter: .cycle, text: .hidden)]) }

    /// A column computed from the payload's coded fields.
    public static func computed(_ column: EventColumn<P>) -> Self { Self(columns: [column]) }

    /// A field whose coding ``EventCodec`` writes by hand (predicted from earlier events).
    static func predicted(_ column: EventColumn<P>) -> Self { computed(column) }

    // MARK: - Coded

    /// An unsigned integer: one byte when it has 8 bits, a varint otherwise.
    public static func int<V: FixedWidthInteger & UnsignedInteger & Sendable>(
        _ name: String, _ key: WritableKeyPath<P, V> & Sendable, _ text: EventColumn<P>.TextForm = .decimal
    ) -> Self {
        let field = FieldAccess(key)
        let column = EventColumn<P>(name: name, type: .integer, nullable: false, getter: .int { UInt64(field.get($1)) }, text: text)
        if V.bitWidth == 8 {
            return Self(columns: [column], encode: { p, w, _ in w.u8(UInt8(field.get(in: &p))) },
                        decode: { p, r, _ in field.set(&p, V(try r.u8())) })
        }
        return Self(columns: [column], encode: { p, w, _ in w.varint(UInt64(field.get(in: &p))) },
                    decode: { p, r, _ in field.set(&p, try EventCodec.read(V.self, from: &r)) })
    }

    /// A signed 32-bit integer, coded as the varint of its bit pattern.
    public static func signed(_ name: String, _ key: WritableKeyPath<P, Int32> & Sendable) -> Self {
        let field = FieldAccess(key)
        return Self(columns: [EventColumn(name: name, type: .integer, nullable: false, getter: .signed { Int64(field.get($1)) }, text: .decimal)],
                    encode: { p, w, _ in w.varint(UInt64(UInt32(bitPattern: field.get(in: &p)))) },
                    decode: { p, r, _ in field.set(&p, Int32(bitPattern: try EventCodec.read(UInt32.self, from: &r))) })
    }

    /// One of an enumeration's cases, shown by its name and coded as its raw byte.
    public static func enumeration<V: RawRepresentable & CustomStringConvertible & Sendable>(
        _ name: String, _ key: WritableKeyPath<P, V> & Sendable
    ) -> Self where V.RawValue == UInt8 {
        let field = FieldAccess(key)
        return Self(columns: [EventColumn(name: name, type: .text, nullable: false, getter: .text { field.get($1).description }, text: .plain)],
                    encode: { p, w, _ in w.u8(field.get(in: &p).rawValue) },
                    decode: { p, r, _ in
                        let offset = r.offset
                        guard let v = V(rawValue: try r.u8()) else { throw EventDecodingError.invalidValue(offset: offset, what: name) }
                        field.set(&p, v)
                    })
    }

    /// A flag (1 or 0), coded as a byte that must be one of them.
    public static func flag(_ name: String, _ key: WritableKeyPath<P, Bool> & Sendable) -> Self {
        flags([(name, key)])
    }

    /// Flags coded together as the low bits of one byte, the first in bit 0; other bits set are refused.
    public static func flags(_ flags: [(String, WritableKeyPath<P, Bool> & Sendable)]) -> Self {
        let fields = ContiguousArray(flags.map { FieldAccess($0.1) })
        let what = flags.map(\.0).joined(separator: "/")
        return Self(columns: zip(flags, fields).map { flag, field in
            EventColumn(name: flag.0, type: .integer, nullable: false, getter: .bool { field.get($1) }, text: .decimal)
        }, encode: { p, w, _ in
            var byte: UInt8 = 0
            for (bit, field) in fields.enumerated() where field.get(in: &p) { byte |= 1 << UInt8(bit) }
            w.u8(byte)
        }, decode: { p, r, _ in
            let offset = r.offset
            let byte = try r.u8()
            guard byte >> UInt8(fields.count) == 0 else { throw EventDecodingError.invalidValue(offset: offset, what: what) }
            for (bit, field) in fields.enumerated() { field.set(&p, byte & 1 << UInt8(bit) != 0) }
        })
    }

    /// Text, coded as UTF-8 after its length.
    public static func text(_ name: String, _ key: WritableKeyPath<P, String> & Sendable) -> Self {
        let field = FieldAccess(key)
        return Self(columns: [EventColumn(name: name, type: .text, nullable: false, getter: .text { field.get($1) }, text: .plain)],
                    encode: { p, w, _ in w.string(field.get(in: &p)) },
                    decode: { p, r, _ in field.set(&p, try r.string()) })
    }

    /// Bytes, coded after their length; with `emptyIsNull` the column is NULL rather than an empty blob.
    public static func bytes(_ name: String, _ key: WritableKeyPath<P, [UInt8]> & Sendable, emptyIsNull: Bool = false) -> Self {
        let field = FieldAccess(key)
        let getter: EventColumn<P>.Getter = emptyIsNull ? .optionalBlob { let b = field.get($1); return b.isEmpty ? nil : b }
                                                        : .blob { field.get($1) }
        return Self(columns: [EventColumn(name: name, type: .blob, nullable: emptyIsNull, getter: getter, text: .hex)],
                    encode: { p, w, _ in w.blob(field.get(in: &p)) },
                    decode: { p, r, _ in field.set(&p, try r.blob()) })
    }

    /// A field with a coding of its own (a list, or values predicted from the codec's state), and the
    /// columns that show it.
    static func custom(_ columns: [EventColumn<P>], encode: @escaping Encode, decode: @escaping Decode) -> Self {
        Self(columns: columns, encode: encode, decode: decode)
    }

    /// The same field, left out of lines of text (a number whose name a computed column shows).
    public var unlisted: Self {
        Self(columns: columns.map { c in
            EventColumn(name: c.name, type: c.type, nullable: c.nullable, getter: c.getter, text: .hidden)
        }, encode: encode, decode: decode)
    }
}
