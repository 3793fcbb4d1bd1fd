/// The analyzer's view of system physical memory: for every byte the label set of the data it holds and
/// the event the data came from, and for every 16-byte block whether DRAM holds it encrypted (and under
/// which ASID) and which of its bytes a keyless write has overwritten since. Pages are created when
/// first written.
final class ShadowMemory {
    /// One page's shadow state, in fixed-size buffers it owns (no copy-on-write checks on the hot path).
    final class Page {
        /// Label set per byte (nil while the page holds no tainted byte).
        private(set) var labels: UnsafeMutablePointer<LabelTable.SetID>?
        /// The event each tainted byte came from.
        private(set) var origins: UnsafeMutablePointer<UInt64>?
        /// The event that last wrote each tainted byte.
        private(set) var vias: UnsafeMutablePointer<UInt64>?
        /// Per 16-byte block: 0 when stored as plaintext, otherwise the ASID whose key encrypted it.
        let encryptedBy = Page.zeroed(UInt16.self, 256)
        /// Per 16-byte block: the bytes a keyless write replaced since the block was encrypted.
        let overwritten = Page.zeroed(UInt16.self, 256)
        /// Per 16-byte block, one bit: the block holds what the launch measured, unchanged since.
        let measured = Page.zeroed(UInt64.self, 4)
        /// Per 16-byte block, one bit: the last write stored it in the clear.
        let clear = Page.zeroed(UInt64.self, 4)
        /// Per 16-byte block: how many writes changed it (a ciphertext replay restores an older version).
        let versions = Page.zeroed(UInt32.self, 256)

        private static func zeroed<T: FixedWidthInteger>(_: T.Type, _ count: Int) -> UnsafeMutablePointer<T> {
            let p = UnsafeMutablePointer<T>.allocate(capacity: count)
            p.initialize(repeating: 0, count: count)
            return p
        }

        /// Gives the page per-byte label, origin and last-write buffers (all zero), once.
        func makeTaintable() {
            guard labels == nil else { return }
            labels = Page.zeroed(LabelTable.SetID.self, 4096)
            origins = Page.zeroed(UInt64.self, 4096)
            vias = Page.zeroed(UInt64.self, 4096)
        }

        deinit {
            for p in [labels.map(UnsafeMutableRawPointer.init), origins.map(UnsafeMutableRawPointer.init),
                      vias.map(UnsafeMutableRawPointer.init), UnsafeMutableRawPointer(encryptedBy),
                      UnsafeMutableRawPointer(overwritten), UnsafeMutableRawPointer(measured), UnsafeMutableRawPointer(clear),
                      UnsafeMutableRawPointer(versions)] {
                p?.deallocate()
            }
        }
    }

    /// The most bytes of shadow state (pages and their per-byte buffers). Past it the shadow stops
    /// changing and ``exhausted`` is set: the analysis can no longer be trusted and must stop.
    let maxBytes: Int
    /// The bytes of shadow state so far.
    private(set) var bytes = 0
    /// Whether the budget ran out.
    private(set) var exhausted = false
    /// Where lookups go once the budget ran out.
    private let spare = Page()
    /// What a page costs before and after it gets per-byte buffers.
    static let pageBytes = 2 * 256 * 2 + 2 * 4 * 8 + 256 * 4 + 64
    static let taintBytes = 4096 * (MemoryLayout<LabelTable.SetID>.size + 16)

    init(maxBytes: Int = 2 << 30) { self.maxBytes = maxBytes }

    private var pages: [UInt64: Page] = [:]
    /// The pages looked up last: copies and walks revisit a few pages over and over.
    private var cache: [(number: UInt64, page: Page?)] = Array(repeating: (UInt64.max, nil), count: 4)
    private var cacheNext = 0

    /// The number of pages with shadow state.
    var pageCount: Int { pages.count }

    /// The shadow page holding `spa`, if it has one.
    @inline(__always)
    private func existing(_ spa: UInt64) -> Page? {
        let number = spa >> 12
        for c in cache where c.number == number { return c.page }
        let p = pages[number]
        cache[cacheNext] = (number, p)
        cacheNext = (cacheNext + 1) & 3
        return p
    }

    private func page(_ spa: UInt64) -> Page {
        if let p = existing(spa) { return p }
        guard !exhausted, bytes + Self.pageBytes <= maxBytes else {
            exhausted = true
            return spare
        }
        bytes += Self.pageBytes
        let p = Page()
        pages[spa >> 12] = p
        for i in cache.indices where cache[i].number == spa >> 12 { cache[i].page = p }
        return p
    }

    /// The union of the labels of `size` bytes at `spa`, and the origin of the first tainted byte.
    func read(_ spa: UInt64, size: Int, table: inout LabelTable) -> (set: LabelTable.SetID, origin: UInt64?) {
        let r = readWithVia(spa, size: size, table: &table)
        return (r.set, r.origin)
    }

    /// Like ``read(_:size:table:)``, with the event that last wrote the first tainted byte.
    func readWithVia(_ spa: UInt64, size: Int, table: inout LabelTable) -> (set: LabelTable.SetID, origin: UInt64?, via: UInt64) {
        var set: LabelTable.SetID = 0
        var origin: UInt64?
        var via: UInt64 = 0
        var i = 0
        while i < size {
            let a = spa + UInt64(i)
            let n = min(size - i, Int(4096 - (a & 0xFFF)))
            if let p = existing(a), let labels = p.labels {
                let base = Int(a & 0xFFF)
                for j in 0..<n where labels[base + j] != 0 {
                    set = table.union(set, labels[base + j])
                    if origin == nil {
                        origin = p.origins![base + j]
                        via = p.vias![base + j]
                    }
                }
            }
            i += n
        }
        return (set, origin, via)
    }

    /// Sets the labels of `size` bytes at `spa`, and records whether the blocks are now stored encrypted.
    func write(_ spa: UInt64, size: Int, set: LabelTable.SetID, origin: UInt64, via: UInt64 = 0, encryptedBy asid: UInt16) {
        guard !exhausted else { return }
        var i = 0
        while i < size {
            let a = spa + UInt64(i)
            let n = min(size - i, Int(4096 - (a & 0xFFF)))
            let base = Int(a & 0xFFF)
            let p = existing(a) ?? page(a)
            if set != 0 { makeTaintable(p) }
            if exhausted { return }
            if let labels = p.labels, let origins = p.origins, let vias = p.vias {
                for j in 0..<n {
                    labels[base + j] = set
                    origins[base + j] = origin
                    vias[base + j] = via
                }
            }
            for block in (base >> 4)...((base + n - 1) >> 4) {
                p.versions[block] &+= 1
                p.measured[block >> 6] &= ~(1 << UInt64(block & 63))
                if asid == 0 { p.clear[block >> 6] |= 1 << UInt64(block & 63) } else { p.clear[block >> 6] &= ~(1 << UInt64(block & 63)) }
                if asid != 0 {
                    p.encryptedBy[block] = asid
                    p.overwritten[block] = 0
                } else if p.encryptedBy[block] != 0 {
                    // A keyless write replaces only its own bytes; the block is plaintext once all are replaced.
                    p.overwritten[block] |= Self.mask(block: block, from: base, count: n)
                    if p.overwritten[block] == 0xFFFF {
                        p.encryptedBy[block] = 0
                        p.overwritten[block] = 0
                    }
                }
            }
            i += n
        }
    }

    /// Gives `p` its per-byte buffers, within the budget.
    private func makeTaintable(_ p: Page) {
        guard p.labels == nil else { return }
        guard !exhausted, bytes + Self.taintBytes <= maxBytes else {
            exhausted = true
            return
        }
        bytes += Self.taintBytes
        p.makeTaintable()
    }

    /// Copies the label sets and origins of `count` bytes at `spa` (within one page) into `sets` and
    /// `origins` from index `start`; an untainted byte gets 0 for both.
    func copy(_ spa: UInt64, count: Int, into sets: inout [LabelTable.SetID], origins: inout [UInt64], at start: Int) {
        let off = Int(spa & 0xFFF)
        guard let p = existing(spa), let labels = p.labels, let from = p.origins else {
            for j in 0..<count { sets[start + j] = 0; origins[start + j] = 0 }
            return
        }
        for j in 0..<count {
            let set = labels[off + j]
            sets[start + j] = set
            origins[start + j] = set != 0 ? from[off + j] : 0
        }
    }

    /// What memory holds for one 16-byte block besides the labels of its bytes.
    struct BlockState: Equatable {
        /// 0 when stored as plaintext, otherwise the ASID whose key encrypted it.
        var encryptedBy: UInt16 = 0
        /// The bytes a keyless write replaced since the block was encrypted.
        var overwritten: UInt16 = 0
        /// The block holds what the launch measured, unchanged since.
        var measured = false
        /// The last write stored it in the clear.
        var clear = false
    }

    /// The state of the 16-byte block containing `spa`.
    func blockState(_ spa: UInt64) -> BlockState {
        guard let p = existing(spa) else { return BlockState() }
        let b = Int(spa & 0xFFF) >> 4
        return BlockState(encryptedBy: p.encryptedBy[b], overwritten: p.overwritten[b],
                          measured: p.measured[b >> 6] & (1 << UInt64(b & 63)) != 0,
                          clear: p.clear[b >> 6] & (1 << UInt64(b & 63)) != 0)
    }

    /// Writes a whole 64-byte line at `base` (line-aligned), each byte with its own label set and origin
    /// (which is also its last write), and each of its four blocks with its state: what a cache line's
    /// write-back puts in memory (see ``CachedLine``).
    func writeLine(_ base: UInt64, sets: [LabelTable.SetID], origins: [UInt64], blocks: [BlockState]) {
        writeBlocks(base, sets: sets, origins: origins, blocks: Array(blocks.prefix(4)))
    }

    /// Writes `blocks.count` whole 16-byte blocks from `spa` (16-aligned, within one page): the labels and
    /// origins of their bytes and each block's state, as a write-back or a replay puts them.
    private func writeBlocks(_ spa: UInt64, sets: [LabelTable.SetID], origins: [UInt64], blocks: [BlockState]) {
        let count = 16 * blocks.count
        guard !exhausted, sets.count == count, origins.count == count else { return }
        let p = existing(spa) ?? page(spa)
        let off = Int(spa & 0xFFF) & ~15
        if sets.contains(where: { $0 != 0 }) { makeTaintable(p) }
        if let labels = p.labels, let o = p.origins, let v = p.vias {
            for j in 0..<count {
                labels[off + j] = sets[j]
                o[off + j] = origins[j]
                v[off + j] = origins[j]
            }
        }
        for (i, state) in blocks.enumerated() {
            let block = (off >> 4) + i
            let bit: UInt64 = 1 << UInt64(block & 63)
            if state.measured { p.measured[block >> 6] |= bit } else { p.measured[block >> 6] &= ~bit }
            if state.clear { p.clear[block >> 6] |= bit } else { p.clear[block >> 6] &= ~bit }
            p.encryptedBy[block] = state.encryptedBy
            p.overwritten[block] = state.overwritten
            p.versions[block] &+= 1
        }
    }

    /// How many writes changed the 16-byte block containing `spa` (0 for memory never written).
    func blockVersion(_ spa: UInt64) -> UInt32 {
        guard let p = existing(spa) else { return 0 }
        return p.versions[Int(spa & 0xFFF) >> 4]
    }

    /// Puts back an older content of the 16-byte block at `spa` (16-aligned): its state and the labels
    /// and origins of its bytes, as a replay of its old ciphertext does.
    func restoreBlock(_ spa: UInt64, state: BlockState, sets: [LabelTable.SetID], origins: [UInt64]) {
        writeBlocks(spa, sets: sets, origins: origins, blocks: [state])
    }

    /// Whether some block of `[spa, spa + size)` was last written in the clear.
    func writtenInClear(_ spa: UInt64, size: Int) -> Bool {
        var block = spa >> 4
        while block <= (spa + UInt64(size) - 1) >> 4 {
            if let p = existing(block << 4) {
                let b = Int(block & 0xFF)
                if p.clear[b >> 6] & (1 << UInt64(b & 63)) != 0 { return true }
            }
            block += 1
        }
        return false
    }

    /// The label set of each of `size` (at most 8) bytes at `spa`, with the origin and last write of the
    /// first tainted one.
    func readBytes(_ spa: UInt64, size: Int) -> (sets: SIMD8<UInt32>, origin: UInt64?, via: UInt64) {
        var sets = SIMD8<UInt32>(repeating: 0)
        var origin: UInt64?
        var via: UInt64 = 0
        var page: Page?
        var pageNumber = UInt64.max
        for i in 0..<size {
            let a = spa + UInt64(i)
            if a >> 12 != pageNumber {
                pageNumber = a >> 12
                page = existing(a)
            }
            guard let p = page, let labels = p.labels else { continue }
            let j = Int(a & 0xFFF)
            sets[i] = labels[j]
            if labels[j] != 0 && origin == nil {
                origin = p.origins![j]
                via = p.vias![j]
            }
        }
        return (sets, origin, via)
    }

    /// Writes `size` (at most 8) bytes whose labels differ byte by byte.
    func writeBytes(_ spa: UInt64, size: Int, sets: SIMD8<UInt32>, origin: UInt64, via: UInt64, encryptedBy asid: UInt16) {
        var same = true
        for i in 1..<size where sets[i] != sets[0] { same = false }
        if same {
            write(spa, size: size, set: sets[0], origin: origin, via: via, encryptedBy: asid)
            return
        }
        for i in 0..<size {
            write(spa + UInt64(i), size: 1, set: sets[i], origin: origin, via: via, encryptedBy: asid)
        }
    }

    /// Marks the blocks covering `[spa, spa + size)` as measured.
    func markMeasured(_ spa: UInt64, size: Int) {
        var block = spa >> 4
        while block <= (spa + UInt64(size) - 1) >> 4 {
            let p = page(block << 4)
            let b = Int(block & 0xFF)
            p.measured[b >> 6] |= 1 << UInt64(b & 63)
            block += 1
        }
    }

    /// Whether every block of `[spa, spa + size)` holds unchanged measured contents.
    func isMeasured(_ spa: UInt64, size: Int) -> Bool {
        var block = spa >> 4
        while block <= (spa + UInt64(size) - 1) >> 4 {
            guard let p = existing(block << 4) else { return false }
            let b = Int(block & 0xFF)
            if p.measured[b >> 6] & (1 << UInt64(b & 63)) == 0 { return false }
            block += 1
        }
        return true
    }

    /// The bits of block `block` that bytes `[from, from + count)` of the page cover.
    static func mask(block: Int, from: Int, count: Int) -> UInt16 {
        let lo = max(from, block << 4) - (block << 4)
        let hi = min(from + count, (block + 1) << 4) - (block << 4)
        guard hi > lo else { return 0 }
        return UInt16(truncatingIfNeeded: ((1 << hi) - 1) ^ ((1 << lo) - 1))
    }

    /// The ASID under which some byte of `[spa, spa + size)` is still stored encrypted, or 0 if none is.
    func encryption(_ spa: UInt64, size: Int) -> UInt16 {
        var i = 0
        while i < size {
            let a = spa + UInt64(i)
            let n = min(size - i, 16 - Int(a & 0xF))
            if let p = existing(a) {
                let block = Int(a & 0xFFF) >> 4
                if p.encryptedBy[block] != 0
                    && Self.mask(block: block, from: Int(a & 0xFFF), count: n) & ~p.overwritten[block] != 0 {
                    return p.encryptedBy[block]
                }
            }
            i += n
        }
        return 0
    }
}
