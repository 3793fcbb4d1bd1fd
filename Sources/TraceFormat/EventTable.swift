/// One table of one kind of event, as ``EventSchema`` declares it: its name, its columns, and how an
/// event of that kind fills a row.
public struct EventTable: Sendable {
    /// A column's SQL type.
    public enum SQLType: String, Sendable {
        case integer = "INTEGER", text = "TEXT", blob = "BLOB"
    }

    /// One column.
    public struct Column: Sendable {
        public let name: String
        public let type: SQLType
        /// Whether the column may be NULL.
        public let nullable: Bool
        /// The column's value for an event, nil when the table has no row for it.
        public let value: @Sendable (TraceEvent) -> SQLiteValue?
    }

    /// A column as declared, over the event and its payload `P`.
    public struct Field<P: Sendable>: Sendable {
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

        let name: String
        let type: SQLType
        let nullable: Bool
        let getter: Getter

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

        /// The event's sequence number.
        public static var seq: Field { Field(name: "seq", type: .integer, nullable: false, getter: .seq) }
        /// The event's cycle.
        public static var cycle: Field { Field(name: "cycle", type: .integer, nullable: false, getter: .cycle) }

        /// An integer (stored as SQLite's signed 64 bits, so addresses keep their bits).
        public static func int(_ name: String, _ get: @escaping @Sendable (TraceEvent, P) -> UInt64) -> Field {
            Field(name: name, type: .integer, nullable: false, getter: .int(get))
        }

        /// A signed integer.
        public static func signed(_ name: String, _ get: @escaping @Sendable (TraceEvent, P) -> Int64) -> Field {
            Field(name: name, type: .integer, nullable: false, getter: .signed(get))
        }

        /// An integer, NULL where `get` gives nil.
        public static func optionalInt(_ name: String, _ get: @escaping @Sendable (TraceEvent, P) -> UInt64?) -> Field {
            Field(name: name, type: .integer, nullable: true, getter: .optionalInt(get))
        }

        /// 1 or 0.
        public static func bool(_ name: String, _ get: @escaping @Sendable (TraceEvent, P) -> Bool) -> Field {
            Field(name: name, type: .integer, nullable: false, getter: .bool(get))
        }

        public static func text(_ name: String, _ get: @escaping @Sendable (TraceEvent, P) -> String) -> Field {
            Field(name: name, type: .text, nullable: false, getter: .text(get))
        }

        /// Text, NULL where `get` gives nil.
        public static func optionalText(_ name: String, _ get: @escaping @Sendable (TraceEvent, P) -> String?) -> Field {
            Field(name: name, type: .text, nullable: true, getter: .optionalText(get))
        }

        public static func blob(_ name: String, _ get: @escaping @Sendable (TraceEvent, P) -> [UInt8]) -> Field {
            Field(name: name, type: .blob, nullable: false, getter: .blob(get))
        }

        /// Bytes, NULL where `get` gives nil.
        public static func optionalBlob(_ name: String, _ get: @escaping @Sendable (TraceEvent, P) -> [UInt8]?) -> Field {
            Field(name: name, type: .blob, nullable: true, getter: .optionalBlob(get))
        }
    }

    public let name: String
    /// The ``EventSchema/ordinal(_:)`` of the events the table holds.
    public let kind: Int
    /// The column SQLite keys rows by, for a stored table.
    public let primaryKey: String?
    /// Whether a later event replaces the row of an earlier one with the same key (a VM's or a
    /// platform's one row).
    public let replacing: Bool
    public let columns: [Column]
    /// Replaces the contents of `row` with the row an event makes (keeping its storage), or returns false
    /// when the table has none for it.
    public let fill: @Sendable (TraceEvent, inout [SQLiteValue]) -> Bool

    /// The row an event makes, nil when the table has none for it.
    public func row(_ e: TraceEvent) -> [SQLiteValue]? {
        var row: [SQLiteValue] = []
        return fill(e, &row) ? row : nil
    }

    /// A table of the events `extract` takes a payload `P` from. (Inlined where each table is declared,
    /// so that its closures work on the concrete payload rather than through generic value witnesses.)
    @inline(__always)
    init<P: Sendable>(_: P.Type, _ name: String, kind: Int, primaryKey: String? = nil, replacing: Bool = false,
                      columns fields: [Field<P>], extract: @escaping @Sendable (EventBody) -> P?) {
        self.name = name
        self.kind = kind
        self.primaryKey = primaryKey
        self.replacing = replacing
        columns = fields.map { field in
            Column(name: field.name, type: field.type, nullable: field.nullable) { e in extract(e.body).map { field.value(e, $0) } }
        }
        let getters = ContiguousArray(fields)
        fill = { e, row in
            guard let payload = extract(e.body) else { return false }
            row.removeAll(keepingCapacity: true)
            for field in getters { row.append(field.value(e, payload)) }
            return true
        }
    }

    /// The column called `name`, by index.
    public func index(of name: String) -> Int? { columns.firstIndex { $0.name == name } }

    /// `CREATE TABLE` for the table (no statement terminator).
    public var ddl: String {
        let definitions = columns.map { c in
            "\(c.name) \(c.type.rawValue)" + (c.name == primaryKey ? " PRIMARY KEY" : c.nullable ? "" : " NOT NULL")
        }
        return "CREATE TABLE \(name)(\(definitions.joined(separator: ", ")))"
    }

    /// `INSERT` of one row, its values bound as `?1`…
    public var insert: String {
        "INSERT \(replacing ? "OR REPLACE " : "")INTO \(name) VALUES (\((1...columns.count).map { "?\($0)" }.joined(separator: ", ")))"
    }
}
