import CSQLite
import TraceFormat

/// The `events` virtual table: every event of the trace as a row, decoded from `events.zst` one chunk at
/// a time. Constraints on `seq` (=, <, <=, >, >=) use the chunk index to decode only the chunks that can
/// match, so `WHERE seq BETWEEN a AND b` is cheap at any depth of a long trace.
///
/// Columns: `seq, cycle, type, actor, vm, asid, access, gva, gpa, spa, size, cbit, reason, register, value,
/// detail` (`detail` describes the events that are not memory accesses).
enum EventsTable {
    static let columns = ["seq", "cycle", "type", "actor", "vm", "asid", "access", "gva", "gpa", "spa", "size", "cbit",
                          "reason", "register", "value", "detail"]

    /// The bundle a connection's table reads.
    final class Source {
        let bundle: TraceBundle
        init(bundle: TraceBundle) { self.bundle = bundle }
    }

    /// One scan's position.
    final class Cursor {
        let reader: TraceReader
        var events: [TraceEvent] = []
        var position = 0
        var chunk: ChunkInfo?
        var lower: UInt64 = 0
        var upper: UInt64 = .max
        var done = false

        init(reader: TraceReader) { self.reader = reader }

        var current: TraceEvent { events[position] }

        /// Positions on the first event >= lower.
        func start() throws {
            chunk = try reader.chunk(containing: lower)
            try load()
            while !done && current.seq < lower { try advance() }
            if !done && current.seq > upper { done = true }
        }

        private func load() throws {
            guard let c = chunk, c.firstSeq <= upper else {
                done = true
                return
            }
            events = try reader.events(of: c)
            position = 0
        }

        func advance() throws {
            position += 1
            if position >= events.count {
                guard let c = chunk else {
                    done = true
                    return
                }
                chunk = try reader.chunkInfo(c.index + 1)
                try load()
            }
            if !done && current.seq > upper { done = true }
        }
    }

    private nonisolated(unsafe) static let module: UnsafeMutablePointer<sqlite3_module> = {
        let m = UnsafeMutablePointer<sqlite3_module>.allocate(capacity: 1)
        m.initialize(to: sqlite3_module())
        m.pointee.xCreate = nil  // eponymous-only: no CREATE VIRTUAL TABLE needed
        m.pointee.xConnect = { db, aux, _, _, ppVtab, _ in
            let sql = "CREATE TABLE x(" + EventsTable.columns.joined(separator: ", ") + ")"
            let rc = sqlite3_declare_vtab(db, sql)
            guard rc == SQLITE_OK else { return rc }
            let vt = UnsafeMutablePointer<sevtrace_vtab>.allocate(capacity: 1)
            vt.initialize(to: sevtrace_vtab())
            vt.pointee.owner = aux
            ppVtab!.pointee = UnsafeMutableRawPointer(vt).assumingMemoryBound(to: sqlite3_vtab.self)
            return SQLITE_OK
        }
        m.pointee.xDisconnect = { vtab in
            UnsafeMutableRawPointer(vtab!).assumingMemoryBound(to: sevtrace_vtab.self).deallocate()
            return SQLITE_OK
        }
        m.pointee.xBestIndex = { _, info in
            let info = info!
            var argv: Int32 = 0
            var plan: Int32 = 0
            var cost = 1e9
            for i in 0..<Int(info.pointee.nConstraint) {
                let c = info.pointee.aConstraint[i]
                guard c.usable != 0, c.iColumn == 0 else { continue }
                let bit: Int32
                switch Int32(c.op) {
                case SQLITE_INDEX_CONSTRAINT_EQ: bit = 1
                case SQLITE_INDEX_CONSTRAINT_GT, SQLITE_INDEX_CONSTRAINT_GE: bit = 2
                case SQLITE_INDEX_CONSTRAINT_LT, SQLITE_INDEX_CONSTRAINT_LE: bit = 4
                default: continue
                }
                guard plan & bit == 0 else { continue }
                plan |= bit
                argv += 1
                info.pointee.aConstraintUsage[i].argvIndex = argv
                info.pointee.aConstraintUsage[i].omit = 0  // SQLite re-checks: strictness of < vs <= stays exact
                // Record which argument carries which bound, in argument order, two bits each.
                info.pointee.idxNum |= bit << (3 * (argv - 1))
                cost /= 100
            }
            info.pointee.estimatedCost = cost
            if info.pointee.nOrderBy == 1 && info.pointee.aOrderBy[0].iColumn == 0 && info.pointee.aOrderBy[0].desc == 0 {
                info.pointee.orderByConsumed = 1
            }
            return SQLITE_OK
        }
        m.pointee.xOpen = { vtab, ppCursor in
            let vt = UnsafeMutableRawPointer(vtab!).assumingMemoryBound(to: sevtrace_vtab.self)
            let source = Unmanaged<Source>.fromOpaque(vt.pointee.owner!).takeUnretainedValue()
            let reader: TraceReader
            do { reader = try source.bundle.reader() } catch {
                EventsTable.setError(vtab!, "\(error)")
                return SQLITE_ERROR
            }
            let cur = UnsafeMutablePointer<sevtrace_vtab_cursor>.allocate(capacity: 1)
            cur.initialize(to: sevtrace_vtab_cursor())
            cur.pointee.state = Unmanaged.passRetained(Cursor(reader: reader)).toOpaque()
            ppCursor!.pointee = UnsafeMutableRawPointer(cur).assumingMemoryBound(to: sqlite3_vtab_cursor.self)
            return SQLITE_OK
        }
        m.pointee.xClose = { cursor in
            let cur = UnsafeMutableRawPointer(cursor!).assumingMemoryBound(to: sevtrace_vtab_cursor.self)
            Unmanaged<Cursor>.fromOpaque(cur.pointee.state!).release()
            cur.deallocate()
            return SQLITE_OK
        }
        m.pointee.xFilter = { cursor, idxNum, _, argc, argv in
            let c = EventsTable.cursor(cursor!)
            c.lower = 0
            c.upper = .max
            c.done = false
            for i in 0..<Int(argc) {
                let bit = (idxNum >> (3 * Int32(i))) & 7
                let v = sqlite3_value_int64(argv![i])
                let u = v < 0 ? 0 : UInt64(v)
                switch bit {
                case 1:
                    c.lower = max(c.lower, u)
                    c.upper = v < 0 ? 0 : min(c.upper, u)
                    if v < 0 { c.done = true }
                case 2: c.lower = max(c.lower, u)
                case 4:
                    if v < 0 { c.done = true } else { c.upper = min(c.upper, u) }
                default: break
                }
            }
            if c.done { return SQLITE_OK }
            do { try c.start() } catch {
                EventsTable.setError(cursor!.pointee.pVtab, "\(error)")
                return SQLITE_ERROR
            }
            return SQLITE_OK
        }
        m.pointee.xNext = { cursor in
            let c = EventsTable.cursor(cursor!)
            do { try c.advance() } catch {
                EventsTable.setError(cursor!.pointee.pVtab, "\(error)")
                return SQLITE_ERROR
            }
            return SQLITE_OK
        }
        m.pointee.xEof = { cursor in EventsTable.cursor(cursor!).done ? 1 : 0 }
        m.pointee.xRowid = { cursor, rowid in
            rowid!.pointee = Int64(bitPattern: EventsTable.cursor(cursor!).current.seq)
            return SQLITE_OK
        }
        m.pointee.xColumn = { cursor, ctx, column in
            EventsTable.column(EventsTable.cursor(cursor!).current, Int(column), ctx!)
            return SQLITE_OK
        }
        return m
    }()

    static func cursor(_ p: UnsafeMutablePointer<sqlite3_vtab_cursor>) -> Cursor {
        let cur = UnsafeMutableRawPointer(p).assumingMemoryBound(to: sevtrace_vtab_cursor.self)
        return Unmanaged<Cursor>.fromOpaque(cur.pointee.state!).takeUnretainedValue()
    }

    static func setError(_ vtab: UnsafeMutablePointer<sqlite3_vtab>, _ message: String) {
        sqlite3_free(vtab.pointee.zErrMsg)
        let bytes = Array(message.utf8)
        let p = sqlite3_malloc(Int32(bytes.count + 1))!.assumingMemoryBound(to: CChar.self)
        for (i, b) in bytes.enumerated() { p[i] = CChar(bitPattern: b) }
        p[bytes.count] = 0
        vtab.pointee.zErrMsg = p
    }

    /// Registers the table on a connection.
    static func register(on db: SQLiteDatabase, bundle: TraceBundle) throws {
        try register(handle: db.handle, bundle: bundle)
    }

    /// Registers the table on a connection SQLite handed over (a loadable extension's).
    static func register(handle: OpaquePointer, bundle: TraceBundle) throws {
        let aux = Unmanaged.passRetained(Source(bundle: bundle)).toOpaque()
        let rc = sqlite3_create_module_v2(handle, "events", module, aux) { p in
            Unmanaged<Source>.fromOpaque(p!).release()
        }
        guard rc == SQLITE_OK else { throw SQLiteError(code: rc, message: "cannot register the events table") }
    }

    private static func column(_ e: TraceEvent, _ i: Int, _ ctx: OpaquePointer) {
        func int(_ v: UInt64) { sqlite3_result_int64(ctx, Int64(bitPattern: v)) }
        func text(_ s: String) { sqlite3_result_text(ctx, s, -1, unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)) }
        func null() { sqlite3_result_null(ctx) }
        let name = EventFormatter.typeName(e.body)
        switch i {
        case 0: int(e.seq)
        case 1: int(e.cycle)
        case 2: text(name)
        default:
            guard case .memoryAccess(let a) = e.body else {
                if i == 15 { text(EventFormatter.detail(e.body)) } else if i == 4, let vm = EventFormatter.vm(e.body) { int(UInt64(vm)) } else { null() }
                return
            }
            switch i {
            case 3: text(a.actor.description)
            case 4: a.vm == MemoryAccess.noVM ? null() : int(UInt64(a.vm))
            case 5: int(UInt64(a.asid))
            case 6: text(a.kind.description)
            case 7: int(a.gva)
            case 8: int(a.gpa)
            case 9: int(a.spa)
            case 10: int(UInt64(a.size))
            case 11: int(a.cbit ? 1 : 0)
            case 12: text(a.reason.description)
            case 13: a.register == MemoryAccess.noRegister ? null() : text(EventFormatter.registerName(a.register))
            case 14: int(a.value)
            default: null()
            }
        }
    }
}
