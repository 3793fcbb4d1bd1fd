import SEVMachine
import TraceFormat

/// The shortcut to memory at a late event: the machine's keys, nested page tables and VMs change only at
/// control events (firmware commands, nested-page-table changes, VM creations, power-on), which the index
/// lists. After the last of them before the event asked for, DRAM changes only by the writes the trace
/// records (on a platform without caches, each write goes straight through the memory controller), and
/// each write's key follows from its C-bit and ASID. So the scenario is re-run only to just after that
/// control event, and the writes that can still matter are replayed through that machine's own memory
/// controller:
///
/// - walking the chunks that write the place's pages backwards from the event, a 16-byte block is settled
///   once writes under one key cover all its bytes (earlier writes cannot show through encryption of the
///   whole block); the others take every write since the control event, on top of DRAM there;
/// - a byte's data and last writer are the first write met walking back, as far back as it takes.
///
/// It does not apply, and the caller re-runs to the event, on a platform with caches (write-backs move
/// data the trace does not name), when the event lies inside an operation that ends in a control event
/// after it (state changes before the event that reports them), or when a write's key cannot be told.
extension MemoryTimeTravel {
    /// The index tables whose rows are the control events.
    static let controlTables = ["psp_commands", "npt_changes", "vms", "platforms"]

    /// The view by the shortcut, or nil where it does not apply.
    static func shortcut(_ bundle: TraceBundle, _ reader: TraceReader, at seq: UInt64, _ place: Place, length: Int,
                         limits: ScenarioLimits) throws -> View? {
        guard let index = try? bundle.index() else { return nil }
        let db = index.database
        func integer(_ sql: String, _ values: [SQLiteValue] = [.integer(Int64(bitPattern: seq))]) -> Int64? {
            guard let rows = try? db.prepare(sql).rows(values), case .integer(let v)? = rows.first?.first else { return nil }
            return v
        }
        guard integer("SELECT count(*) FROM platforms WHERE cache_bytes != 0", []) == 0 else { return nil }
        let control = controlTables.map { "SELECT seq FROM \($0)" }.joined(separator: " UNION ALL ")
        // The machine is taken at the first event after the last control event (the operation that
        // reported it may have gone on changing state after reporting it), which must come before `seq`.
        guard let last = integer("SELECT max(seq) FROM (\(control)) WHERE seq <= ?1"), last >= 0, UInt64(last) + 1 < seq else {
            return nil
        }
        let base = UInt64(last) + 1
        if let next = integer("SELECT min(seq) FROM (\(control)) WHERE seq > ?1"), try isInsideOperation(reader, after: seq, before: UInt64(next)) {
            return nil
        }
        return try simulate(reader, to: base, limits: limits) { machine -> View? in
            let location = try locate(machine, seq: seq, place, length: length)
            guard location.platform.config.cacheBytes == 0 else { return nil }
            let walk = WriteWalk(spa: location.locals.map { $0 + location.platform.traceBase }, seq: seq, base: base)
            try walk.run(reader, index)
            for w in walk.replay.sorted(by: { $0.seq < $1.seq }) {
                // The simulator writes 1 to 8 bytes at a time, near the place on its platform: a trace that says
                // otherwise was not recorded by it, and the re-run to the event tells what it holds.
                guard (1...8).contains(w.access.size), w.access.spa >= location.platform.traceBase,
                      let key = walk.key(of: w.access, in: machine) else { return nil }
                try location.platform.controller.writeValue(w.access.spa - location.platform.traceBase, size: Int(w.access.size),
                                                            value: w.access.value, key: key.key)
            }
            var view = try read(location, seq: seq, length: length)
            (view.data, view.lastWrite, view.cbit, view.writeASID) = (walk.data, walk.lastWrite, walk.cbit, walk.writeASID)
            return view
        }
    }

    /// Whether `seq` lies inside an operation whose control event `next` comes after it: no event of a
    /// guest's own (which no hypervisor or firmware operation contains) comes between them.
    static func isInsideOperation(_ reader: TraceReader, after seq: UInt64, before next: UInt64) throws -> Bool {
        var inside = true
        try reader.forEachEvent(from: seq + 1) { e in
            guard e.seq < next else { return false }
            switch e.body {
            case .memoryAccess(let a):
                if case .vcpu = a.actor { inside = false }
            case .registerOp, .vmRun, .vmExit, .vcpuMode, .vcpuHalt, .cbitChange, .handover:
                inside = false
            default:
                break
            }
            return inside
        }
        return inside
    }

    /// The trace's writes to a location walked backwards from an event: the view's data and last writers,
    /// and the writes to replay on the machine taken at `base`.
    final class WriteWalk {
        let seq: UInt64, base: UInt64
        /// Per byte of the view, as the trace numbers system physical addresses.
        let spa: [UInt64]
        var data: [UInt8], lastWrite: [UInt64?], cbit: [Bool], writeASID: [UInt16]
        var unresolved: Int
        /// The 16-byte blocks of the view (by traced address): which bytes writes under the key of the
        /// latest write cover, and whether that is settled (all 16) or cannot be (another key came first).
        var blocks: [UInt64: Block] = [:]
        var unsettled: Int
        /// Writes after `base` to blocks not settled when they were met.
        var replay: [(seq: UInt64, access: MemoryAccess)] = []

        struct Block {
            /// The key of the latest write met, and the bytes writes under it cover.
            var key: KeyRef?
            var covered: UInt16 = 0
            /// All 16 bytes covered: older writes no longer matter.
            var done = false
            /// An older write under another key came before that: every write back to `base` matters.
            var mixed = false
        }

        /// A key a write went through (nil for none).
        struct ResolvedKey {
            let key: EncryptionKey?
        }

        /// A key as a write used it: none, the one a VM's vCPU took for an ASID (a VM without SEV takes none,
        /// whatever ASID its VMCB names), or a guest's through the PSP. Equal references mean the same key;
        /// different ones may still be the same key (shared keys), which only costs the walk going further.
        enum KeyRef: Equatable {
            case plain
            case vcpu(vm: UInt16, asid: UInt16)
            case psp(UInt16)
        }

        init(spa: [UInt64], seq: UInt64, base: UInt64) {
            (self.spa, self.seq, self.base) = (spa, seq, base)
            let n = spa.count
            (data, lastWrite, cbit, writeASID) = ([UInt8](repeating: 0, count: n), Array(repeating: nil, count: n),
                                                  Array(repeating: false, count: n), Array(repeating: 0, count: n))
            unresolved = n
            for a in spa { blocks[a & ~15] = Block() }
            unsettled = blocks.count
        }

        /// The key reference of a write (nil: one the shortcut cannot name).
        static func keyRef(_ a: MemoryAccess) -> KeyRef? {
            guard a.cbit else { return .plain }
            switch a.actor {
            case .vcpu(let vm, _): return .vcpu(vm: vm, asid: a.asid)
            case .psp: return .psp(a.asid)
            case .hypervisor, .device: return nil
            }
        }

        /// The key a write went through, in the machine as it is (keys do not change after `base`); nil
        /// when it cannot be told.
        func key(of a: MemoryAccess, in machine: Machine) -> ResolvedKey? {
            switch Self.keyRef(a) {
            case .plain?: return ResolvedKey(key: nil)
            case .vcpu(let id, let asid)?:
                // As the vCPU takes it: a VM without SEV has no key, whatever its page tables say.
                guard let vm = machine.vms.first(where: { $0.id == id }) else { return nil }
                return ResolvedKey(key: vm.isSEV ? vm.platform.controller.key(forASID: asid) : nil)
            case .psp(let asid)?:
                let platform = Int(a.spa >> 40)
                guard platform < machine.platforms.count, let key = machine.platforms[platform].firmware.guestKey(forASID: asid) else { return nil }
                return ResolvedKey(key: key)
            case nil: return nil
            }
        }

        /// Walks the chunks the index says write the view's pages (or the page before: an access starts
        /// at most 7 bytes before what it touches), latest first, until every byte has its last writer and
        /// every block is settled or reaches back to `base`. Without an index (or one that cannot answer),
        /// every chunk up to `seq`'s.
        func run(_ reader: TraceReader, _ index: TraceIndex?) throws {
            guard let last = try reader.chunk(containing: seq) else { return }
            let pages = Set(spa.flatMap { [$0 >> 12, ($0 >> 12) &- 1] }).sorted()
            let list = pages.map(String.init).joined(separator: ",")
            let listed = try? index?.database.prepare(
                "SELECT DISTINCT chunk FROM page_chunks WHERE spa_page IN (\(list)) AND writes > 0 AND chunk <= ?1 ORDER BY chunk DESC"
            ).rows([.integer(Int64(last.index))]).compactMap { row -> Int? in
                if case .integer(let c)? = row.first, c >= 0, c <= Int64(last.index) { Int(c) } else { nil }
            }
            let chunks = listed ?? Array((0...last.index).reversed())
            guard let low = spa.min(), let high = spa.max() else { return }
            let filter = WritesNear(low: (low & ~15) >= 7 ? (low & ~15) - 7 : 0, high: high | 15)
            var indexesBySPA: [UInt64: [Int]] = [:]
            for (i, a) in spa.enumerated() { indexesBySPA[a, default: []].append(i) }
            for c in chunks {
                guard let info = try reader.chunkInfo(c) else { continue }
                for e in try reader.events(of: info, keep: filter).reversed() where e.seq <= seq {
                    guard case .memoryAccess(let a) = e.body else { continue }
                    take(a, seq: e.seq, indexesBySPA)
                }
                if unresolved == 0 && (unsettled == 0 || info.firstSeq <= base) { return }
            }
        }

        /// One write, met walking back.
        func take(_ a: MemoryAccess, seq s: UInt64, _ indexesBySPA: [UInt64: [Int]]) {
            let width = min(Int(a.size), 8)
            for k in 0..<width {
                guard let indexes = indexesBySPA[a.spa &+ UInt64(k)] else { continue }
                for i in indexes where lastWrite[i] == nil {
                    data[i] = UInt8(truncatingIfNeeded: a.value >> UInt64(8 * k))
                    (lastWrite[i], cbit[i], writeASID[i]) = (s, a.cbit, a.asid)
                    unresolved -= 1
                }
            }
            guard s > base else { return }
            var needed = false
            let ref = Self.keyRef(a)
            // The blocks the write touches (one, or two for an unaligned write; none wraps: events are checked).
            for block in Set([a.spa & ~15, (a.spa &+ UInt64(width) &- 1) & ~15]).sorted() {
                guard var b = blocks[block], !b.done else { continue }
                needed = true
                if b.mixed { continue }
                if b.covered == 0 { b.key = ref }
                if let ref, b.key == ref {
                    for k in 0..<width where (a.spa &+ UInt64(k)) & ~15 == block {
                        b.covered |= 1 << UInt16((a.spa &+ UInt64(k)) & 15)
                    }
                    if b.covered == 0xFFFF {
                        b.done = true
                        unsettled -= 1
                    }
                } else {
                    // An older write under another key shows through what the later ones left (or the key
                    // cannot be named): this block takes every write back to `base`, on top of DRAM there.
                    b.mixed = true
                }
                blocks[block] = b
            }
            if needed { replay.append((s, a)) }
        }
    }
}
