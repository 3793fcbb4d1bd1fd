/// One column of a kind of event, over the event and its payload `P`: its name (in SQL and in lines of
/// text), its SQL type, how its value is taken and how a line of text shows it.
public struct EventColumn<P: Sendable>: Sendable {
    /// How the column's value is taken: one closure call at most (a row of many columns is made often).
    enum Getter: Sendable {
        case seq, cycle
        case int(@Sendable (TraceEvent, P) -> UInt64)
        case signed(@Sendable (TraceEvent, P) -> Int64)
        case optionalInt(@Sendable (TraceEvent, P) -> UInt64?)
        case bool(@Sendable (TraceEvent, P) -> Bool)
        case text(@Sendable (TraceEvent, P) -> String)
        case optionalText(@Sendable (TraceEvent, P) -> String?)
        case blob(@Sendable (TraceEvent, P) -> [UInt8])
        case optionalBlob(@Sendable (TraceEvent, P) -> [UInt8]?)
    }

    /// How a line of text shows the column, as `name=value` (NULL columns are left out).
    public enum TextForm: Sendable {
        /// Integers in decimal (signed ones with their sign), flags as 1 or 0.
        case decimal
        /// Integers as `0x…`, bytes as hex digits (`-` for none).
        case hex
        /// As `hex`, but left out when 0 (the registers of an exit dump).
        case hexUnlessZero
        /// Text as it is (made printable, and quoted when it holds a space, a quote or `=`).
        case plain
        /// Not shown.
        case hidden
    }

    let name: String
    let type: EventTable.SQLType
    let nullable: Bool
    let getter: Getter
    let text: TextForm

    /// The column's value for `e`, whose payload is `p`.
    @inline(__always)
    func value(_ e: TraceEvent, _ p: P) -> SQLiteValue {
        switch getter {
        case .seq: .integer(Int64(bitPattern: e.seq))
        case .cycle: .integer(Int64(bitPattern: e.cycle))
        case .int(let get): .integer(Int64(bitPattern: get(e, p)))
        case .signed(let get): .integer(get(e, p))
        case .optionalInt(let get): get(e, p).map { .integer(Int64(bitPattern: $0)) } ?? .null
        case .bool(let get): .integer(get(e, p) ? 1 : 0)
        case .text(let get): .text(get(e, p))
        case .optionalText(let get): get(e, p).map { .text($0) } ?? .null
        case .blob(let get): .blob(get(e, p))
        case .optionalBlob(let get): get(e, p).map { .blob($0) } ?? .null
        }
    }

    /// Writes ` name=value` (the space left out at the start of the line) as a line of text shows the
    /// column for `e`; nothing for a NULL or a hidden column.
    @inline(__always)
    func list(_ e: TraceEvent, _ p: P, into line: inout TextLine) {
        if case .hidden = text { return }
        func name() {
            if !line.bytes.isEmpty { line.byte(UInt8(ascii: " ")) }
            line.ascii(self.name)
            line.byte(UInt8(ascii: "="))
        }
        func integer(_ v: UInt64) {
            switch text {
            case .hexUnlessZero where v == 0: return
            case .hex, .hexUnlessZero:
                name()
                line.hex(v)
            default:
                name()
                line.decimal(v)
            }
        }
        func textValue(_ s: String?) {
            guard let s else { return }
            name()
            line.text(s)
        }
        func bytesValue(_ b: [UInt8]?) {
            guard let b else { return }
            name()
            line.hexBytes(b)
        }
        switch getter {
        case .seq: integer(e.seq)
        case .cycle: integer(e.cycle)
        case .int(let get): integer(get(e, p))
        case .signed(let get):
            name()
            line.signed(get(e, p))
        case .optionalInt(let get): if let v = get(e, p) { integer(v) }
        case .bool(let get):
            name()
            line.byte(get(e, p) ? UInt8(ascii: "1") : UInt8(ascii: "0"))
        case .text(let get): textValue(get(e, p))
        case .optionalText(let get): textValue(get(e, p))
        case .blob(let get): bytesValue(get(e, p))
        case .optionalBlob(let get): bytesValue(get(e, p))
        }
    }

    // MARK: - Computed columns

    /// An integer computed from the payload.
    public static func int(_ name: String, _ text: TextForm = .decimal, _ get: @escaping @Sendable (P) -> UInt64) -> Self {
        Self(name: name, type: .integer, nullable: false, getter: .int { get($1) }, text: text)
    }

    /// An integer, NULL where `get` gives nil.
    public static func optionalInt(_ name: String, _ text: TextForm = .decimal, _ get: @escaping @Sendable (P) -> UInt64?) -> Self {
        Self(name: name, type: .integer, nullable: true, getter: .optionalInt { get($1) }, text: text)
    }

    /// 1 or 0.
    public static func bool(_ name: String, _ get: @escaping @Sendable (P) -> Bool) -> Self {
        Self(name: name, type: .integer, nullable: false, getter: .bool { get($1) }, text: .decimal)
    }

    /// Text computed from the payload.
    public static func text(_ name: String, _ get: @escaping @Sendable (P) -> String) -> Self {
        Self(name: name, type: .text, nullable: false, getter: .text { get($1) }, text: .plain)
    }

    /// Text, NULL where `get` gives nil.
    public static func optionalText(_ name: String, _ get: @escaping @Sendable (P) -> String?) -> Self {
        Self(name: name, type: .text, nullable: true, getter: .optionalText { get($1) }, text: .plain)
    }
}
