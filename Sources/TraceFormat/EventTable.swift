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

    /// The table of the events a declaration's kind holds, those `only` keeps when it is given. (Inlined
    /// where each table is made, so that its closures work on the concrete payload rather than through
    /// generic value witnesses.)
    @inline(__always)
    init<P: Sendable>(_ declaration: EventDeclaration<P>, _ name: String, kind: Int, primaryKey: String? = nil, replacing: Bool = false,
                      only keep: (@Sendable (P) -> Bool)? = nil) {
        self.name = name
        self.kind = kind
        self.primaryKey = primaryKey
        self.replacing = replacing
        let all = declaration.extract
        let extract: @Sendable (EventBody) -> P?
        if let keep {
            extract = { body in
                guard let p = all(body), keep(p) else { return nil }
                return p
            }
        } else {
            extract = all
        }
        let fields = declaration.columns
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
