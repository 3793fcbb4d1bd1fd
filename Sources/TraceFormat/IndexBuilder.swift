/// Builds `index.sqlite` from the events as they are written (or read back), chunk by chunk, so its
/// memory stays bounded by one chunk's pages.
public final class IndexBuilder: TraceObserver {
    private let database: SQLiteDatabase
    private let insertChunk, insertPage, insertCount, insertVM, insertPSP, insertCbit, insertNPT, insertSecret,
                insertFlush, insertPlatform, insertIoctl: SQLiteStatement
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
    /// The `events` table's name of each event type met, by ``CountKey/type`` (taken from
    /// ``EventFormatter/typeName(_:)`` the first time a type is met).
    private var typeNames = [String](repeating: "", count: CountKey.typeCount)

    /// An `event_counts` row's key: the `events` columns people group and filter by, all plain values
    /// (compared and hashed without reference counting; names are made when the chunk's rows are written).
    private struct CountKey: Hashable {
        /// The event's case (its place in ``EventBody``).
        var type: UInt8
        var actor: Actor?
        var access: AccessKind?
        var vm: UInt16?
        var asid: UInt16?
        var cbit: Bool?

        static let typeCount = 16

        init(_ body: EventBody) {
            type = switch body {
            case .memoryAccess: 0
            case .registerOp: 1
            case .cbitChange: 2
            case .nptChange: 3
            case .pspCommand: 4
            case .vmCreated: 5
            case .taintSource: 6
            case .vcpuMode: 7
            case .vcpuHalt: 8
            case .vmRun: 9
            case .vmExit: 10
            case .handover: 11
            case .ownerCheck: 12
            case .kvmIoctl: 13
            case .cacheOp: 14
            case .platformInfo: 15
            }
            vm = EventFormatter.vm(body)
            if case .memoryAccess(let a) = body { (actor, access, asid, cbit) = (a.actor, a.kind, a.asid, a.cbit) }
        }

        /// The order of a chunk's rows: by type name, then actor (vCPUs, the hypervisor, devices, the PSP),
        /// access, VM, ASID, C-bit, none after any.
        func order(_ names: [String]) -> (String, UInt64, UInt8, UInt32, UInt32, UInt8) {
            let actorOrder: UInt64 = switch actor {
            case nil: 0
            case .vcpu(let vm, let index)?: 1 << 32 | UInt64(vm) << 16 | UInt64(index)
            case .hypervisor?: 2 << 32
            case .device(let id)?: 3 << 32 | UInt64(id) << 16
            case .psp?: 4 << 32
            }
            return (names[Int(type)], actorOrder, access?.rawValue ?? 255, vm.map(UInt32.init) ?? .max, asid.map(UInt32.init) ?? .max,
                    cbit.map { $0 ? 1 : 0 } ?? 2)
        }

        /// The row's values, text as `events` shows it.
        func row(_ names: [String]) -> [SQLiteValue] {
            [.text(names[Int(type)]), actor.map { .text($0.description) } ?? .null, access.map { .text($0.description) } ?? .null,
             vm.map { .integer(Int64($0)) } ?? .null, asid.map { .integer(Int64($0)) } ?? .null,
             cbit.map { .integer($0 ? 1 : 0) } ?? .null]
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
        insertVM = try database.prepare("INSERT OR REPLACE INTO vms VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")
        insertPSP = try database.prepare("INSERT INTO psp_commands VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)")
        insertCbit = try database.prepare("INSERT INTO cbit_changes VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")
        insertNPT = try database.prepare("INSERT INTO npt_changes VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
        insertSecret = try database.prepare("INSERT INTO secrets VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        insertCount = try database.prepare("INSERT INTO event_counts VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
        insertFlush = try database.prepare("INSERT INTO cache_flushes VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
        insertPlatform = try database.prepare("INSERT OR REPLACE INTO platforms VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")
        insertIoctl = try database.prepare("INSERT INTO kvm_ioctls VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")
    }

    public func observe(seq: UInt64, chunk: Int, cycle: UInt64, _ body: EventBody) {
        guard failure == nil else { return }
        let s = Int64(bitPattern: seq), c = Int64(bitPattern: cycle)
        let key = CountKey(body)
        if typeNames[Int(key.type)].isEmpty { typeNames[Int(key.type)] = EventFormatter.typeName(body) }
        if let i = recentCounts.firstIndex(where: { $0.key == key }) {
            recentCounts[i].events += 1
        } else {
            if recentCounts.count == 8 { flushRecentCounts(1) }
            recentCounts.append((key, 1))
        }
        do {
            switch body {
            case .memoryAccess(let a):
                let key = PageKey(spaPage: a.spa >> 12, vm: a.vm, gpaPage: a.gpa >> 12)
                let read: Int64 = a.kind.isRead ? 1 : 0
                if let i = recent.firstIndex(where: { $0.key == key }) {
                    recent[i].reads += read
                    recent[i].writes += 1 - read
                } else {
                    if recent.count == 4 { flushRecent(1) }
                    recent.append((key, read, 1 - read))
                }
            case .cacheOp(let f) where f.op == .clflush || f.op == .wbinvd || f.op == .pageFlush:
                try insertFlush.run([.integer(s), .integer(c), .integer(Int64(f.spa >> 40)), .text(f.op.description),
                                     .integer(Int64(bitPattern: f.spa)), .integer(Int64(f.asid)),
                                     .integer(Int64(bitPattern: f.lines)), .integer(Int64(f.core))])
            case .platformInfo(let p):
                try insertPlatform.run([.integer(Int64(p.platform)), .integer(s), .integer(Int64(p.cbitPosition)),
                                        .integer(Int64(p.physAddrBits)), .integer(Int64(p.physAddrReduction)),
                                        .integer(Int64(p.minSEVASID)), .integer(Int64(p.maxSEVASID)), .integer(Int64(p.cores)),
                                        .integer(Int64(bitPattern: p.cacheBytes)), .integer(p.memoryEncryption ? 1 : 0),
                                        .integer(p.sme ? 1 : 0)])
            case .kvmIoctl(let k):
                try insertIoctl.run([.integer(s), .integer(c), .integer(Int64(k.vm)), .integer(Int64(k.command)),
                                     .text(KVMSevCommand.name(of: k.command)), .integer(Int64(k.fd)), .integer(Int64(k.errno)),
                                     .text(Errno.name(of: k.errno)), .integer(Int64(k.firmwareError)),
                                     k.firmwareError == 0 ? .null : .text(SEVStatus.name(of: UInt16(truncatingIfNeeded: k.firmwareError)))])
            case .registerOp, .vcpuMode, .vcpuHalt, .handover, .cacheOp, .ownerCheck, .vmRun, .vmExit:
                // World switches are many (one per exit): the query layer decodes them from events.zst.
                break
            case .vmCreated(let v):
                try insertVM.run([.integer(Int64(v.vm)), .integer(Int64(v.platform)), .text(v.name), .integer(Int64(v.asid)), .integer(Int64(v.policy)),
                                  .integer(Int64(bitPattern: v.memoryBytes)), .integer(Int64(v.vcpus)), .integer(s), .integer(v.sev ? 1 : 0)])
            case .pspCommand(let p):
                try insertPSP.run([
                    .integer(s), .integer(c), .integer(Int64(p.platform)), .integer(Int64(p.command)), .text(SEVCommand.name(of: p.command)),
                    .integer(Int64(p.handle)), .integer(Int64(p.asid)), .integer(Int64(p.status)),
                    .text(SEVStatus.name(of: p.status)), .text(PlatformState.name(of: p.platformBefore)),
                    .text(PlatformState.name(of: p.platformAfter)), .text(GuestState.name(of: p.guestBefore)),
                    .text(GuestState.name(of: p.guestAfter)), .blob(p.buffer), p.result.isEmpty ? .null : .blob(p.result),
                ])
            case .cbitChange(let x):
                try insertCbit.run([.integer(s), .integer(c), .integer(Int64(x.vm)), .integer(Int64(x.vcpu)),
                                    .integer(Int64(bitPattern: x.gva)), .integer(Int64(bitPattern: x.gpa)), .integer(Int64(bitPattern: x.spa)),
                                    .integer(Int64(bitPattern: x.pteSPA)), .integer(x.old ? 1 : 0), .integer(x.new ? 1 : 0)])
            case .nptChange(let n):
                try insertNPT.run([.integer(s), .integer(c), .integer(Int64(n.vm)), .text(n.op.description),
                                   .integer(Int64(bitPattern: n.gpa)), .integer(Int64(bitPattern: n.spa)), .integer(Int64(bitPattern: n.pages))])
            case .taintSource(let t):
                try insertSecret.run([.integer(s), .integer(Int64(t.vm)), .text(t.name), .integer(Int64(bitPattern: t.gpa)),
                                      .integer(Int64(bitPattern: t.spa)), .integer(Int64(bitPattern: t.length))])
            }
        } catch {
            failure = error
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
