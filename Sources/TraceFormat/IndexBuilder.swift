/// Builds `index.sqlite` from the events as they are written (or read back), chunk by chunk, so its
/// memory stays bounded by one chunk's pages.
public final class IndexBuilder: TraceObserver {
    private let database: SQLiteDatabase
    private let insertChunk, insertPage, insertCount: SQLiteStatement
    /// By event ordinal, the stored tables (``EventSchema/stored``) of that kind with their inserts.
    private let storedTables: [[(table: EventTable, insert: SQLiteStatement)]]
    private var pages: [PageKey: (reads: Int64, writes: Int64)] = [:]
    /// The last few pages counted, with counts not yet added to `pages`: consecutive accesses mostly
    /// revisit them, and this spares a hash per access.
    private var recent: [(key: PageKey, reads: Int64, writes: Int64)] = []
    private var failure: SQLiteError?
    /// The current chunk's events counted by the columns of `event_counts`.
    private var counts: [CountKey: Int64] = [:]
    /// The keys met last, with counts not yet added to `counts`: a loop's few kinds of events alternate,
    /// and this spares a hash per event (as `recent` does for pages).
    private var recentCounts: [(key: CountKey, events: Int64)] = []
    /// The `events` table's name of each event type, by ``CountKey/type``.
    private let typeNames = EventSchema.typeNames

    /// An `event_counts` row's key: the `events` columns people group and filter by, as plain integers
    /// that also give the rows' order (compared and hashed as integers, without reference counting;
    /// names are made when the chunk's rows are written). An absent column is the largest value of its
    /// field, so it sorts after any.
    private struct CountKey: Hashable {
        /// The event's case (its place in ``EventBody``).
        var type: UInt8
        /// The actor: none 0, then vCPUs, the hypervisor, devices, the PSP (``order(of:)``).
        var actor: UInt64 = 0
        var access: UInt8 = .max
        var vm: UInt32 = .max
        var asid: UInt32 = .max
        var cbit: UInt8 = .max

        init(_ body: EventBody) {
            type = UInt8(EventSchema.ordinal(body))
            vm = EventFormatter.vm(body).map(UInt32.init) ?? .max
            if case .memoryAccess(let a) = body { self = CountKey(a) }
        }

        /// The key of a memory access.
        init(_ a: MemoryAccess) {
            type = UInt8(EventSchema.ordinal(.memoryAccess(a)))
            vm = a.vm == MemoryAccess.noVM ? .max : UInt32(a.vm)
            (actor, access, asid, cbit) = (Self.order(of: a.actor), a.kind.rawValue, UInt32(a.asid), a.cbit ? 1 : 0)
        }

        /// An actor as a number that orders vCPUs, the hypervisor, devices, the PSP (0 is none).
        static func order(of actor: Actor) -> UInt64 {
            switch actor {
            case .vcpu(let vm, let index): 1 << 32 | UInt64(vm) << 16 | UInt64(index)
            case .hypervisor: 2 << 32
            case .device(let id): 3 << 32 | UInt64(id) << 16
            case .psp: 4 << 32
            }
        }

        /// The actor ``order(of:)`` numbered.
        var actorValue: Actor? {
            switch actor >> 32 {
            case 1: .vcpu(vm: UInt16(truncatingIfNeeded: actor >> 16), index: UInt16(truncatingIfNeeded: actor))
            case 2: .hypervisor
            case 3: .device(UInt16(truncatingIfNeeded: actor >> 16))
            case 4: .psp
            default: nil
            }
        }

        /// The order of a chunk's rows: by type name, then actor, access, VM, ASID, C-bit.
        func order(_ names: [String]) -> (String, UInt64, UInt8, UInt32, UInt32, UInt8) {
            (names[Int(type)], actor, access, vm, asid, cbit)
        }

        /// The row's values, text as `events` shows it.
        func row(_ names: [String]) -> [SQLiteValue] {
            [.text(names[Int(type)]), actorValue.map { .text($0.description) } ?? .null,
             access == .max ? .null : AccessKind(rawValue: access).map { .text($0.description) } ?? .null,
             vm == .max ? .null : .integer(Int64(vm)), asid == .max ? .null : .integer(Int64(asid)),
             cbit == .max ? .null : .integer(Int64(cbit))]
        }
    }

    private struct PageKey: Hashable, Comparable {
        var spaPage: UInt64
        var vm: UInt16
        var gpaPage: UInt64

        static func < (a: PageKey, b: PageKey) -> Bool {
            (a.spaPage, a.vm, a.gpaPage) < (b.spaPage, b.vm, b.gpaPage)
        }
    }

    /// Creates a new, empty index at `path` (which must not exist).
    public init(path: String) throws(SQLiteError) {
        database = try SQLiteDatabase(path: path, mode: .create)
        // Small pages keep the many small indexes (golden traces) small; derived data needs no journal.
        try database.execute("PRAGMA page_size = 1024; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        try database.execute(TraceIndex.schema)
        try database.execute("BEGIN")
        insertChunk = try database.prepare("INSERT INTO chunks VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")
        insertPage = try database.prepare("INSERT INTO page_chunks VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        insertCount = try database.prepare("INSERT INTO event_counts VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
        var stored = [[(table: EventTable, insert: SQLiteStatement)]](repeating: [], count: EventSchema.typeNames.count)
        for table in EventSchema.stored { stored[table.kind].append((table, try database.prepare(table.insert))) }
        storedTables = stored
    }

    public func observe(seq: UInt64, chunk: Int, cycle: UInt64, _ body: EventBody) {
        if case .memoryAccess(let a) = body { return observe(seq: seq, chunk: chunk, cycle: cycle, access: a) }
        guard failure == nil else { return }
        let key = CountKey(body)
        count(key)
        let kind = Int(key.type)
        guard !storedTables[kind].isEmpty else { return }  // most events (register ops, exits) are not stored
        do throws(SQLiteError) {
            let e = TraceEvent(seq: seq, cycle: cycle, body: body)
            for (table, insert) in storedTables[kind] {
                if let row = table.row(e) { try insert.run(row) }
            }
        } catch {
            failure = error
        }
    }

    public func observe(seq: UInt64, chunk: Int, cycle: UInt64, access a: MemoryAccess) {
        guard failure == nil else { return }
        count(CountKey(a))
        let key = PageKey(spaPage: a.spa >> 12, vm: a.vm, gpaPage: a.gpa >> 12)
        let read: Int64 = a.kind.isRead ? 1 : 0
        var i = 0
        while i < recent.count && recent[i].key != key { i += 1 }
        if i < recent.count {
            recent[i].reads += read
            recent[i].writes += 1 - read
        } else {
            if recent.count == 4 { flushRecent(1) }
            recent.append((key, read, 1 - read))
        }
    }

    /// Counts one event under `key`.
    @inline(__always)
    private func count(_ key: CountKey) {
        var i = 0
        while i < recentCounts.count && recentCounts[i].key != key { i += 1 }
        if i < recentCounts.count {
            recentCounts[i].events += 1
        } else {
            if recentCounts.count == 8 { flushRecentCounts(1) }
            recentCounts.append((key, 1))
        }
    }

    /// Moves the oldest `count` recent keys into `counts`.
    private func flushRecentCounts(_ count: Int) {
        for r in recentCounts.prefix(count) { counts[r.key, default: 0] += r.events }
        recentCounts.removeFirst(min(count, recentCounts.count))
    }

    /// Moves the oldest `count` recent pages into `pages`.
    private func flushRecent(_ count: Int) {
        for r in recent.prefix(count) {
            var counts = pages[r.key, default: (0, 0)]
            counts.reads += r.reads
            counts.writes += r.writes
            pages[r.key] = counts
        }
        recent.removeFirst(min(count, recent.count))
    }

    public func chunkWritten(_ info: ChunkInfo) {
        guard failure == nil else { return }
        flushRecent(recent.count)
        do {
            try insertChunk.run([
                .integer(Int64(info.index)), .integer(Int64(bitPattern: info.offset)), .integer(Int64(bitPattern: info.firstSeq)),
                .integer(Int64(bitPattern: info.lastSeq)), .integer(Int64(info.eventCount)), .integer(Int64(info.rawLength)),
                .integer(Int64(info.compressedLength)), .integer(Int64(bitPattern: info.firstCycle)),
                .integer(Int64(bitPattern: info.lastCycle)), .integer(Int64(info.payloadChecksum)),
            ])
            for key in pages.keys.sorted() {
                let counts = pages[key]!
                let vm: SQLiteValue = key.vm == MemoryAccess.noVM ? .null : .integer(Int64(key.vm))
                // An access of no VM's has no guest address unless it names one (then its page is kept).
                let gpaPage: SQLiteValue = key.vm == MemoryAccess.noVM && key.gpaPage == 0 ? .null : .integer(Int64(bitPattern: key.gpaPage))
                try insertPage.run([.integer(Int64(bitPattern: key.spaPage)), .integer(Int64(info.index)), vm, gpaPage,
                                    .integer(counts.reads), .integer(counts.writes)])
            }
            pages.removeAll(keepingCapacity: true)
            flushRecentCounts(recentCounts.count)
            // Hash order differs per process: the rows go in sorted, so the index is the same bytes every time.
            for (key, events) in counts.sorted(by: { $0.key.order(typeNames) < $1.key.order(typeNames) }) {
                try insertCount.run([.integer(Int64(info.index))] + key.row(typeNames) + [.integer(events)])
            }
            counts.removeAll(keepingCapacity: true)
        } catch {
            failure = error
        }
    }

    /// Writes `meta` and commits.
    public func finish(header: TraceHeader, eventCount: UInt64, chunkCount: Int, eventsBytes: UInt64) throws(SQLiteError) {
        if let failure { throw failure }
        let insert = try database.prepare("INSERT INTO meta VALUES (?1, ?2)")
        let rows: [(String, String)] = [
            ("format_version", String(TraceHeader.formatVersion)), ("tool_version", header.toolVersion),
            ("seed", String(header.seed)), ("scenario_name", header.scenarioName),
            ("event_count", String(eventCount)), ("chunk_count", String(chunkCount)),
            ("events_bytes", String(eventsBytes)), ("chunk_bytes", String(header.chunkBytes)),
            ("compression_level", String(header.compressionLevel)), ("analysis", "none"),
        ]
        for (k, v) in rows { try insert.run([.text(k), .text(v)]) }
        try database.execute("COMMIT")
    }
}
