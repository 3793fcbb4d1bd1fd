import CSQLite
import TraceFormat

/// The `events` virtual table: every event of the trace as a row, decoded from `events.zst` one chunk at
/// a time. Constraints are pushed down to decode only the chunks that can match: on `seq` (=, <, <=, >,
/// >=) through the chunk headers, so `WHERE seq BETWEEN a AND b` is cheap at any depth of a long trace;
/// on `spa` and on `gpa` (with `vm`) through the index's `page_chunks`, so `WHERE spa BETWEEN a AND b`
/// decodes only the chunks that touched those pages. Constraints on `type`, `actor`, `access` (`=`),
/// `vm`, `asid` and `cbit` filter rows inside the scan, so SQLite never sees (nor builds the text of)
/// rows that cannot match. SQLite checks every constraint again on the rows, so a pushdown only ever
/// skips rows that cannot match.
///
/// Columns: `seq, cycle, type, actor, vm, asid, access, gva, gpa, spa, size, cbit, reason, register, value,
/// detail` (`detail` describes the events that are not memory accesses).
enum EventsTable {
    /// `seq`, `cycle`, `type`, then the columns ``EventSchema/memoryAccess`` declares, then `detail`.
    static let columns = ["seq", "cycle", "type"] + EventSchema.memoryAccess.columnNames.filter { $0 != "seq" && $0 != "cycle" } + ["detail"]
    static let columnCount = columns.count

    /// The bundle a connection's table reads, the connection (whose `page_chunks` and `event_counts` it
    /// consults), and which table of events it is.
    final class Source {
        let bundle: TraceBundle
        let db: OpaquePointer
        let shape: EventTableShape
        init(bundle: TraceBundle, db: OpaquePointer, shape: EventTableShape = EventsTable.shape) {
            self.bundle = bundle
            self.db = db
            self.shape = shape
        }
    }

    /// The `events` table's shape: every event, every column.
    static let shape = EventTableShape(name: "events", columns: columns, type: nil, pushed: [
        0: .seq, 9: .spa, 8: .gpa, 4: .vm, 5: .asid, 2: .type, 3: .actor, 6: .access, 11: .cbit,
    ], column: EventsTable.column)

    /// The columns a constraint can be pushed down on, and how `idxNum` names them: six bits per
    /// argument (at most ``maxArguments``), the operator in the low two (1 `=`, 2 lower bound, 3 upper
    /// bound), the column in the high four; bit 30 marks a scan that decodes nothing.
    enum Pushed: Int32 {
        case seq = 0, spa, gpa, vm, asid, type, actor, access, cbit

        /// Text columns are pushed down for `=` only, and only under BINARY collation.
        var isText: Bool { self == .type || self == .actor || self == .access }
        /// Whether the chunk headers or `page_chunks` narrow the chunks to read by this column (taken
        /// first when there are more constraints than arguments; the others narrow them through
        /// `event_counts` and filter rows).
        var narrowsChunks: Bool { self == .seq || self == .spa || self == .gpa || self == .vm }
    }

    /// The most constraints one scan takes (6 bits each in `idxNum`).
    static let maxArguments = 5
    /// The `idxNum` bit of a scan that reads no column but `seq`.
    static let seqOnlyBit: Int32 = 1 << 30

    /// What a row must be to match the pushed-down constraints; nil fields do not filter.
    struct RowFilter {
        var spa, gpa, vm, asid, cbit: Bounds?
        var type, actor, access: String?
        var isEmpty: Bool {
            spa == nil && gpa == nil && vm == nil && asid == nil && cbit == nil && type == nil && actor == nil && access == nil
        }
        /// Whether it asks for a column only memory accesses have (the others hold NULL there).
        var needsAccess: Bool { spa != nil || gpa != nil || asid != nil || cbit != nil || actor != nil || access != nil }
    }

    /// An inclusive range of a column's values, as SQLite compares them (signed 64-bit).
    struct Bounds {
        var lower = Int64.min
        var upper = Int64.max
        var isEmpty: Bool { lower > upper }
        func contains(_ v: Int64) -> Bool { v >= lower && v <= upper }

        mutating func apply(op: Int32, _ v: Int64) {
            switch op {
            case 1: (lower, upper) = (max(lower, v), min(upper, v))
            case 2: lower = max(lower, v)
            default: upper = min(upper, v)
            }
        }

        /// The 4 KiB pages the range covers, as `page_chunks` numbers them (the address read unsigned,
        /// shifted): one range, or two when it spans negative values (addresses of 2^63 and up) and
        /// non-negative ones. Nil when it is empty.
        var pages: [(UInt64, UInt64)]? {
            guard !isEmpty else { return nil }
            let lo = UInt64(bitPattern: lower) >> 12, hi = UInt64(bitPattern: upper) >> 12
            if lower >= 0 || upper < 0 { return [(lo, hi)] }
            return [(0, hi), (lo, UInt64.max >> 12)]
        }
    }

    /// The most chunks a pushdown lists; past it (only a hostile index has so many rows) the scan reads
    /// every chunk instead.
    static let maxListedChunks = 1 << 22

    /// One scan's position.
    final class Cursor {
        let reader: TraceReader
        /// The current chunk's events (those the filter keeps), in storage the cursor owns (so reading a
        /// column of one retains no array), and the position in them.
        private(set) var events = UnsafeMutableBufferPointer<TraceEvent>(start: nil, count: 0)
        var position = 0
        var chunk: ChunkInfo?
        var lower: UInt64 = 0
        var upper: UInt64 = .max
        var done = false
        /// The only chunks that can hold a matching row, ascending (nil: every chunk); `listed` is the
        /// next one to read.
        var chunks: [Int]?
        var listed = 0
        /// The statement reads no column but `seq`: chunks are counted from their headers, not decoded.
        var seqOnly = false
        /// The rows of the current chunk.
        var count = 0
        /// Puts a column of a row into SQLite's result (the table's shape says how).
        var column: EventTableShape.Column = EventsTable.column
        /// The cursor scans the `events` table (whose columns ``EventsRow`` sets).
        var isEvents = true
        /// The current row of the `events` table, taken from its event at the row's first column.
        private var row: EventsRow?
        private var rowPosition = -1
        var fill: (@Sendable (TraceEvent, inout [SQLiteValue]) -> Bool)?
        /// The row of the event with sequence number `rowSeq`, when the shape makes whole rows: made at the
        /// fifth column asked of one row (a query of a few columns takes them one by one, which costs less).
        var cachedRow: [SQLiteValue] = []
        var rowSeq = UInt64.max
        var columnsAsked = 0
        var rowMade = false
        /// Decodes the chunks after the scan's first on the other core (started at the second chunk, so
        /// a scan of one chunk starts no thread), keeping only the events the filter lets through; it
        /// holds the reader until stopped.
        private var prefetcher: ChunkPrefetcher?

        init(reader: TraceReader) { self.reader = reader }

        deinit { keep([]) }

        /// Makes `decoded` the current chunk's events.
        private func keep(_ decoded: [TraceEvent]) {
            if let base = events.baseAddress {
                base.deinitialize(count: events.count)
                base.deallocate()
            }
            events = decoded.isEmpty ? UnsafeMutableBufferPointer(start: nil, count: 0) : .allocate(capacity: decoded.count)
            _ = events.initialize(from: decoded)
            count = decoded.count
            rowPosition = -1
        }

        /// Puts column `column` of the current row into SQLite's result. The `events` table's columns
        /// are set by ``EventsRow`` directly (no closure to load and retain per call).
        @inline(__always)
        func result(_ column: Int, _ ctx: OpaquePointer) {
            if seqOnly {
                // Only seq was asked for (SQLite promised as much in colUsed).
                if column == 0 { sqlite3_result_int64(ctx, Int64(bitPattern: currentSeq)) } else { sqlite3_result_null(ctx) }
                return
            }
            guard position < count, let base = events.baseAddress else { return sqlite3_result_null(ctx) }  // past the end: never asked
            if isEvents {
                let e = base + position
                if rowPosition != position {
                    row = EventsRow(e)
                    rowPosition = position
                }
                return row!.cell(column) { ColumnResult.cell(ctx, $0) }
            }
            guard let fill else { return self.column(events[position], column, ctx) }
            let e = events[position]
            if rowSeq != e.seq { (rowSeq, columnsAsked, rowMade) = (e.seq, 0, false) }
            columnsAsked += 1
            if !rowMade {
                guard columnsAsked > 4 else { return self.column(e, column, ctx) }
                if !fill(e, &cachedRow) { cachedRow.removeAll() }
                rowMade = true
            }
            ColumnResult.value(ctx, column < cachedRow.count ? cachedRow[column] : .null)
        }

        /// Lets go of the chunks decoded ahead (before the reader is used again, or on close).
        func stopPrefetching() {
            prefetcher?.stop()
            prefetcher = nil
        }

        var currentSeq: UInt64 { seqOnly ? chunk!.firstSeq + UInt64(position) : events[position].seq }

        /// Positions on the first event >= lower that can match.
        func start() throws {
            stopPrefetching()
            if chunks != nil {
                try nextListed()
            } else {
                chunk = try reader.chunk(containing: lower)
                try load()
            }
            if seqOnly, !done, let c = chunk, lower > c.firstSeq, lower <= c.lastSeq { position = Int(lower - c.firstSeq) }
            while !done && currentSeq < lower { try step() }
            if !done && currentSeq > upper { done = true }
        }

        /// Reads `chunk` here (the scan's first), or ends the scan past `upper`; a chunk without a row
        /// that can match moves on to the next.
        private func load() throws {
            guard let c = chunk, c.firstSeq <= upper else {
                done = true
                return
            }
            if seqOnly {
                count = Int(c.eventCount)
            } else {
                keep(try reader.events(of: c, keep: matcher))
            }
            position = 0
            if count == 0 { try nextChunk() }
        }

        /// Moves to the next chunk the scan reads.
        private func nextChunk() throws {
            if !seqOnly {
                try nextPrefetched()
            } else if chunks != nil {
                try nextListed()
            } else if let c = chunk {
                chunk = try reader.chunkInfo(c.index + 1)
                try load()
            } else {
                done = true
            }
        }

        /// Moves to the next chunk with a row the filter keeps, decoded ahead on the other core.
        private func nextPrefetched() throws {
            if prefetcher == nil {
                // A thread only when there is another chunk to read (most scans of a small trace have none).
                guard let c = chunk, try chunks.map({ listed < $0.count }) ?? (reader.chunkInfo(c.index + 1) != nil) else {
                    done = true
                    return
                }
                let rest: ChunkPrefetcher.Chunks = chunks.map { .listed(Array($0[listed...])) } ?? .following(c.index + 1)
                // A filtered scan hands SQLite few rows: both cores decode for it, each with its own matcher.
                let filter = self.filter
                prefetcher = ChunkPrefetcher(reader: reader, chunks: rest, lower: lower, upper: upper,
                                             keep: filter.isEmpty ? nil : { RowMatcher(filter) }, decoders: filter.isEmpty ? 1 : 2)
            }
            repeat {
                guard let (info, decoded) = try prefetcher!.next() else {
                    done = true
                    return
                }
                keep(decoded)
                (chunk, position) = (info, 0)
            } while count == 0
        }

        /// Loads the next listed chunk that reaches `lower`.
        private func nextListed() throws {
            while let list = chunks, listed < list.count {
                let i = list[listed]
                listed += 1
                guard let info = try reader.chunkInfo(i) else { break }
                if info.lastSeq < lower { continue }
                chunk = info
                try load()
                return
            }
            done = true
        }

        /// What every row must meet: a row that does not cannot match, so SQLite need not see it.
        var filter = RowFilter() { didSet { matcher = filter.isEmpty ? nil : RowMatcher(filter) } }
        /// Applies `filter` to the chunks read on this thread (those decoded ahead have their own).
        private var matcher: RowMatcher?

        /// The next row that can match (the chunks hold only such rows).
        func advance() throws { try step() }

        private func step() throws {
            position += 1
            if position >= count { try nextChunk() }
            if !done && currentSeq > upper { done = true }
        }
    }

    /// Applies a ``RowFilter`` to events, where chunks are decoded.
    final class RowMatcher: EventFilter, @unchecked Sendable {
        let filter: RowFilter
        /// The last actor looked at, and whether its name matched `filter.actor` (a run of accesses
        /// mostly shares one actor: its name is built once).
        private var lastActor: Actor?
        private var lastActorMatched = false

        /// The ordinal (``EventSchema/ordinal(_:)``) of `filter.type`: -1 for a type no event has.
        private let typeOrdinal: Int?

        init(_ filter: RowFilter) {
            self.filter = filter
            typeOrdinal = filter.type.map { EventSchema.typeNames.firstIndex(of: $0) ?? -1 }
        }

        override func accepts(_ body: EventBody) -> Bool {
            if let t = typeOrdinal, EventSchema.ordinal(body) != t { return false }
            guard case .memoryAccess(let a) = body else {
                guard !filter.needsAccess else { return false }
                if let b = filter.vm {
                    guard let vm = EventFormatter.vm(body), b.contains(Int64(vm)) else { return false }
                }
                return true
            }
            if let b = filter.spa, !b.contains(Int64(bitPattern: a.spa)) { return false }
            if let b = filter.gpa, !b.contains(Int64(bitPattern: a.gpa)) { return false }
            if let b = filter.vm, a.vm == MemoryAccess.noVM || !b.contains(Int64(a.vm)) { return false }
            if let b = filter.asid, !b.contains(Int64(a.asid)) { return false }
            if let b = filter.cbit, !b.contains(a.cbit ? 1 : 0) { return false }
            if let k = filter.access, a.kind.description != k { return false }
            if let name = filter.actor {
                if a.actor != lastActor {
                    lastActor = a.actor
                    lastActorMatched = a.actor.description == name
                }
                if !lastActorMatched { return false }
            }
            return true
        }
    }

    private nonisolated(unsafe) static let module: UnsafeMutablePointer<sqlite3_module> = {
        let m = UnsafeMutablePointer<sqlite3_module>.allocate(capacity: 1)
        m.initialize(to: sqlite3_module())
        m.pointee.xCreate = nil  // eponymous-only: no CREATE VIRTUAL TABLE needed
        m.pointee.xConnect = { db, aux, _, _, ppVtab, _ in
            VirtualTable.connect(db, columns: Unmanaged<Source>.fromOpaque(aux!).takeUnretainedValue().shape.columns, aux: aux, ppVtab)
        }
        m.pointee.xDisconnect = { vtab in VirtualTable.disconnect(vtab) }
        m.pointee.xBestIndex = { vtab, info in
            let info = info!
            let shape = VirtualTable.owner(vtab!, as: Source.self).shape
            var argv: Int32 = 0
            var plan = Set<Int32>()
            var cost = 1e9
            var rows = 1e9
            // Constraints that narrow the chunks first, then those that filter rows, up to maxArguments.
            for narrowing in [true, false] {
                for i in 0..<Int(info.pointee.nConstraint) where argv < Int32(EventsTable.maxArguments) {
                    let c = info.pointee.aConstraint[i]
                    guard c.usable != 0, let column = shape.pushed[c.iColumn], column.narrowsChunks == narrowing else { continue }
                    let op: Int32
                    switch Int32(c.op) {
                    case SQLITE_INDEX_CONSTRAINT_EQ: op = 1
                    case SQLITE_INDEX_CONSTRAINT_GT, SQLITE_INDEX_CONSTRAINT_GE: op = 2
                    case SQLITE_INDEX_CONSTRAINT_LT, SQLITE_INDEX_CONSTRAINT_LE: op = 3
                    default: continue
                    }
                    if column.isText {
                        // Text compares as bytes only under BINARY: `type = 'MEM' COLLATE NOCASE` stays SQLite's.
                        guard op == 1, let collation = sqlite3_vtab_collation(info, Int32(i)),
                              String(cString: collation).uppercased() == "BINARY" else { continue }
                    }
                    let code = column.rawValue << 2 | op
                    guard !plan.contains(code) else { continue }
                    plan.insert(code)
                    argv += 1
                    info.pointee.aConstraintUsage[i].argvIndex = argv
                    info.pointee.aConstraintUsage[i].omit = 0  // SQLite re-checks: strictness of < vs <= stays exact
                    info.pointee.idxNum |= code << (6 * (argv - 1))
                    // Fewer chunks to decode: a bound on seq keeps a share of them, a page or a page range
                    // few; a row filter decodes as much but hands SQLite fewer rows.
                    switch (column, op) {
                    case (.seq, _): cost /= 100
                    case (.spa, 1), (.gpa, 1): cost /= 10_000
                    case (.spa, _), (.gpa, _): cost /= 30
                    case (.vm, _): cost /= 2
                    default: cost *= 0.7
                    }
                    rows /= column == .seq ? 100 : column.isText || op == 1 ? 4 : 2
                }
            }
            // No column but seq is read, so no chunk needs decoding (in a table of every event).
            if shape.type == nil && info.pointee.colUsed & ~1 == 0 {
                info.pointee.idxNum |= EventsTable.seqOnlyBit
                cost /= 20
            }
            info.pointee.estimatedCost = cost
            info.pointee.estimatedRows = Int64(max(rows, 1))
            if info.pointee.nOrderBy == 1 && info.pointee.aOrderBy[0].iColumn == 0 && info.pointee.aOrderBy[0].desc == 0 {
                info.pointee.orderByConsumed = 1
            }
            return SQLITE_OK
        }
        m.pointee.xOpen = { vtab, ppCursor in
            let source = VirtualTable.owner(vtab!, as: Source.self)
            let reader: TraceReader
            do { reader = try source.bundle.reader() } catch {
                VirtualTable.setError(vtab!, "\(error)")
                return SQLITE_ERROR
            }
            return VirtualTable.open(Cursor(reader: reader), ppCursor)
        }
        m.pointee.xClose = { cursor in VirtualTable.close(cursor, as: Cursor.self) }
        m.pointee.xFilter = { cursor, idxNum, _, argc, argv in
            let c = EventsTable.cursor(cursor!)
            c.lower = 0
            c.upper = .max
            c.done = false
            c.chunks = nil
            c.listed = 0
            c.seqOnly = idxNum & EventsTable.seqOnlyBit != 0
            var bounds: [Pushed: Bounds] = [:]
            var texts: [Pushed: String] = [:]
            for i in 0..<min(Int(argc), EventsTable.maxArguments) {
                let code = (idxNum >> (6 * Int32(i))) & 63
                guard let column = Pushed(rawValue: code >> 2) else { continue }
                if column.isText {
                    // Only text equals text; two different values for one column match nothing.
                    guard sqlite3_value_type(argv![i]) == SQLITE_TEXT, let p = sqlite3_value_text(argv![i]) else { continue }
                    let value = String(cString: p)
                    if let other = texts[column], other != value { c.done = true }
                    texts[column] = value
                    continue
                }
                // Only an integer bounds the scan: SQLite orders other values apart from every integer.
                guard sqlite3_value_type(argv![i]) == SQLITE_INTEGER else { continue }
                bounds[column, default: Bounds()].apply(op: code & 3, sqlite3_value_int64(argv![i]))
            }
            if let seq = bounds[.seq] {
                // seq is never negative: a range of negative values only is empty.
                if seq.isEmpty || seq.upper < 0 { c.done = true }
                c.lower = UInt64(max(seq.lower, 0))
                c.upper = seq.upper < 0 ? 0 : UInt64(seq.upper)
            }
            if bounds.values.contains(where: \.isEmpty) { c.done = true }
            if c.done { return SQLITE_OK }
            let source = VirtualTable.owner(cursor!.pointee.pVtab!, as: Source.self)
            if let type = source.shape.type {
                // A table of one event type: its rows are that type's events.
                if let asked = texts[.type], asked != type { c.done = true }
                texts[.type] = type
            }
            if c.done { return SQLITE_OK }
            let filter = c.seqOnly ? RowFilter() : RowFilter(
                spa: bounds[.spa], gpa: bounds[.gpa], vm: bounds[.vm], asid: bounds[.asid], cbit: bounds[.cbit],
                type: texts[.type], actor: texts[.actor], access: texts[.access])
            c.chunks = EventsTable.chunks(matching: bounds, filter: filter, in: source.db)
            c.filter = filter
            c.column = source.shape.column
            c.isEvents = source.shape.name == EventsTable.shape.name
            c.fill = source.shape.fill
            c.rowSeq = .max
            do { try c.start() } catch {
                VirtualTable.setError(cursor!.pointee.pVtab, "\(error)")
                return SQLITE_ERROR
            }
            return SQLITE_OK
        }
        m.pointee.xNext = { cursor in
            VirtualTable.withState(cursor!, as: Cursor.self) { c in
                do { try c.advance() } catch {
                    VirtualTable.setError(cursor!.pointee.pVtab, "\(error)")
                    return SQLITE_ERROR
                }
                return SQLITE_OK
            }
        }
        m.pointee.xEof = { cursor in VirtualTable.withState(cursor!, as: Cursor.self) { $0.done ? 1 : 0 } }
        m.pointee.xRowid = { cursor, rowid in
            rowid!.pointee = VirtualTable.withState(cursor!, as: Cursor.self) { Int64(bitPattern: $0.currentSeq) }
            return SQLITE_OK
        }
        m.pointee.xColumn = { cursor, ctx, column in
            VirtualTable.withState(cursor!, as: Cursor.self) { $0.result(Int(column), ctx!) }
            return SQLITE_OK
        }
        return m
    }()

    /// The chunks that can hold a row within `bounds` on `spa` and `gpa` (with `vm`), by `page_chunks`,
    /// and of the type, actor, access, VM, ASID and C-bit `filter` asks for, by `event_counts`; ascending;
    /// nil when nothing narrows the scan (or the index cannot answer: then every chunk is read).
    static func chunks(matching bounds: [Pushed: Bounds], filter: RowFilter, in db: OpaquePointer) -> [Int]? {
        var lists: [[Int]] = []
        if let list = countedChunks(filter, db) { lists.append(list) }
        /// `column BETWEEN` each range of `pages`, as SQL and its arguments from `?first`.
        func ranges(_ column: String, _ pages: [(UInt64, UInt64)], first: Int) -> (String, [Int64]) {
            let sql = pages.indices.map { "\(column) BETWEEN ?\(first + 2 * $0) AND ?\(first + 2 * $0 + 1)" }.joined(separator: " OR ")
            return ("(" + sql + ")", pages.flatMap { [Int64($0.0), Int64($0.1)] })
        }
        if let pages = bounds[.spa]?.pages {
            let (condition, arguments) = ranges("spa_page", pages, first: 1)
            guard let list = query("SELECT DISTINCT chunk FROM page_chunks WHERE \(condition) ORDER BY chunk", arguments, db) else {
                return nil
            }
            lists.append(list)
        }
        if let pages = bounds[.gpa]?.pages {
            let (condition, arguments) = ranges("gpa_page", pages, first: 2)
            let list: [Int]?
            if let vm = bounds[.vm], vm.lower == vm.upper {
                list = query("SELECT DISTINCT chunk FROM page_chunks WHERE vm = ?1 AND \(condition) ORDER BY chunk",
                             [vm.lower] + arguments, db)
            } else {
                // Accesses of no VM's are indexed without a guest page when their address is 0.
                let zero = pages.contains { $0.0 == 0 } ? 1 : 0
                list = query("SELECT DISTINCT chunk FROM page_chunks WHERE \(condition) OR (?1 = 1 AND gpa_page IS NULL) ORDER BY chunk",
                             [Int64(zero)] + arguments, db)
            }
            guard let list else { return nil }
            lists.append(list)
        }
        guard var result = lists.first else { return nil }
        for other in lists.dropFirst() {
            let keep = Set(other)
            result = result.filter { keep.contains($0) }
        }
        return result
    }

    /// The chunks `event_counts` says hold an event `filter` lets through, or nil when it filters nothing
    /// the table counts (or the index cannot answer).
    private static func countedChunks(_ filter: RowFilter, _ db: OpaquePointer) -> [Int]? {
        var conditions: [String] = []
        var texts: [String] = []
        var integers: [Int64] = []
        for (column, value) in [("type", filter.type), ("actor", filter.actor), ("access", filter.access)] {
            guard let value else { continue }
            texts.append(value)
            conditions.append("\(column) = ?\(texts.count)")
        }
        for (column, bounds) in [("vm", filter.vm), ("asid", filter.asid), ("cbit", filter.cbit)] {
            guard let bounds else { continue }
            integers += [bounds.lower, bounds.upper]
            conditions.append("\(column) BETWEEN ?\(100 + integers.count - 2) AND ?\(100 + integers.count - 1)")
        }
        guard !conditions.isEmpty else { return nil }
        return query("SELECT DISTINCT chunk FROM event_counts WHERE \(conditions.joined(separator: " AND ")) ORDER BY chunk",
                     integers, db, firstIndex: 100, texts: texts)
    }

    /// The integers a query of `page_chunks` returns, or nil on an error or past ``maxListedChunks``.
    private static func query(_ sql: String, _ arguments: [Int64], _ db: OpaquePointer, firstIndex: Int32 = 1,
                              texts: [String] = []) -> [Int]? {
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK, let stmt else { return nil }
        defer { sqlite3_finalize(stmt) }
        for (i, v) in arguments.enumerated() { sqlite3_bind_int64(stmt, firstIndex + Int32(i), v) }
        for (i, t) in texts.enumerated() {
            sqlite3_bind_text(stmt, Int32(i + 1), t, -1, unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self))
        }
        var out: [Int] = []
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { return out }
            guard rc == SQLITE_ROW, out.count < maxListedChunks else { return nil }
            let chunk = sqlite3_column_int64(stmt, 0)
            if chunk >= 0 && chunk <= Int64(Int32.max) { out.append(Int(chunk)) }
        }
    }

    static func cursor(_ p: UnsafeMutablePointer<sqlite3_vtab_cursor>) -> Cursor { VirtualTable.state(p, as: Cursor.self) }

    /// Registers the table on a connection.
    static func register(on db: SQLiteDatabase, bundle: TraceBundle) throws {
        try register(handle: db.handle, bundle: bundle)
    }

    /// Registers the table on a connection SQLite handed over (a loadable extension's).
    static func register(handle: OpaquePointer, bundle: TraceBundle) throws {
        try MemoryAtTable.register(handle: handle, source: Source(bundle: bundle, db: handle))
        for shape in [EventsTable.shape] + DecodedTables.shapes {
            let aux = Unmanaged.passRetained(Source(bundle: bundle, db: handle, shape: shape)).toOpaque()
            let rc = sqlite3_create_module_v2(handle, shape.name, module, aux) { p in
                Unmanaged<Source>.fromOpaque(p!).release()
            }
            guard rc == SQLITE_OK else { throw SQLiteError(code: rc, message: "cannot register the \(shape.name) table") }
        }
    }

    /// Column `i` of event `e` into SQLite's result (a closure's view of ``EventsRow``, for callers
    /// that have the event rather than a row).
    static func column(_ e: TraceEvent, _ i: Int, _ ctx: OpaquePointer) {
        withUnsafePointer(to: e) { EventsRow($0).cell(i) { ColumnResult.cell(ctx, $0) } }
    }
}
