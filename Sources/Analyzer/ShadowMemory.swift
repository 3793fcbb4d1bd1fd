/// The analyzer's view of system physical memory: for every byte the label set of the data it holds and
/// the event the data came from, and for every 16-byte block whether DRAM holds it encrypted (and under
/// which ASID) and which of its bytes a keyless write has overwritten since. Pages are created when
/// first written.
///
/// A page stores its state as coarsely as its contents allow, and refines only what a write makes
/// differ: taint in one cell for the whole page, one per 8-byte word, or one per byte; block state in
/// one cell for the page or one per 16-byte block. A page written whole (a bulk copy, a DMA, a
/// write-back of every line) costs a few hundred bytes, one written word by word about 12 KiB, and only
/// a page with sub-word writes of differing taint pays for per-byte cells. A write that covers the whole
/// page makes it coarse again, and so does a look after every page's worth of cell writes that finds all
/// cells agreeing (a copy whose write-backs gave every word the same origin, in whatever order). Nothing is approximated: every byte
/// answers exactly what it would with per-byte storage.
final class ShadowMemory {
    /// One page's shadow state, in fixed-size buffers it owns (no copy-on-write checks on the hot path).
    final class Page {
        /// log2 of the bytes one taint cell covers: 12 (the page), 3 (a word) or 0 (a byte).
        private(set) var taintShift = 12
        /// Label set per taint cell (nil while the page holds no tainted byte).
        private(set) var labels: UnsafeMutablePointer<LabelTable.SetID>?
        /// The event each cell's data came from.
        private(set) var origins: UnsafeMutablePointer<UInt64>?
        /// The event that last wrote each cell (with one cell for the page: its first word's; see `viaStride`).
        private(set) var vias: UnsafeMutablePointer<UInt64>?
        /// With one cell for the page: how much later each word was last written than the one before (0
        /// when the page was written at once; 2 when a `rep movsq` filled it, a load and a store a word).
        fileprivate(set) var viaStride: UInt64 = 0
        /// Block state: one cell for the whole page (`blockMask` 0) or one per 16-byte block (`blockMask` 255).
        private(set) var blocks: UnsafeMutablePointer<Block>
        private(set) var blockMask = 0
        /// Bytes written since the page last looked whether its cells all agree.
        var bytesWritten = 0
        /// Per 16-byte block, one bit: the block holds what the launch measured, unchanged since.
        let measured = Page.zeroed(UInt64.self, 4)
        /// Per 16-byte block, one bit: the last write stored it in the clear.
        let clear = Page.zeroed(UInt64.self, 4)

        init() {
            blocks = .allocate(capacity: 1)
            blocks.initialize(to: Block())
        }

        fileprivate static func zeroed<T: FixedWidthInteger>(_: T.Type, _ count: Int) -> UnsafeMutablePointer<T> {
            let p = UnsafeMutablePointer<T>.allocate(capacity: count)
            p.initialize(repeating: 0, count: count)
            return p
        }

        /// The taint cell holding byte `offset` of the page.
        @inline(__always) func cell(_ offset: Int) -> Int { offset >> taintShift }
        /// The event that last wrote byte `offset` (of a page with taint cells).
        @inline(__always) func via(_ offset: Int) -> UInt64 {
            taintShift == 12 ? vias![0] &+ viaStride &* UInt64(offset >> 3) : vias![offset >> taintShift]
        }
        /// The number of taint cells.
        var cellCount: Int { 4096 >> taintShift }

        /// The block-state cell of 16-byte block `block`.
        @inline(__always) func block(_ block: Int) -> UnsafeMutablePointer<Block> { blocks + (block & blockMask) }

        /// Gives the page taint cells of `1 << shift` bytes, each holding what its bytes held: untainted
        /// when the page had none.
        func setTaintGrain(_ shift: Int) {
            let count = 4096 >> shift
            let l = Page.zeroed(LabelTable.SetID.self, count)
            let o = Page.zeroed(UInt64.self, count)
            let v = Page.zeroed(UInt64.self, count)
            if let labels, let origins {
                for i in 0..<count {
                    let from = (i << shift) >> taintShift
                    (l[i], o[i], v[i]) = (labels[from], origins[from], via(i << shift))
                }
            }
            freeTaint()
            (labels, origins, vias, taintShift, viaStride) = (l, o, v, shift, 0)
        }

        /// Drops the taint cells: the page holds nothing tainted.
        func clearTaint() {
            freeTaint()
            (labels, origins, vias, taintShift) = (nil, nil, nil, 12)
        }

        /// Gives the page one block-state cell per 16-byte block.
        func splitBlocks() {
            guard blockMask == 0 else { return }
            let b = UnsafeMutablePointer<Block>.allocate(capacity: 256)
            b.initialize(repeating: blocks.pointee, count: 256)
            blocks.deallocate()
            (blocks, blockMask) = (b, 255)
        }

        /// Makes block state one cell again when all 256 blocks agree; whether it did.
        func mergeBlocksIfUniform() -> Bool {
            guard blockMask != 0 else { return false }
            let first = blocks.pointee
            for i in 1..<256 where blocks[i] != first { return false }
            let b = UnsafeMutablePointer<Block>.allocate(capacity: 1)
            b.initialize(to: first)
            blocks.deallocate()
            (blocks, blockMask) = (b, 0)
            return true
        }

        private func freeTaint() {
            labels?.deallocate()
            origins?.deallocate()
            vias?.deallocate()
        }

        /// The bytes one taint cell costs.
        static let cellBytes = MemoryLayout<LabelTable.SetID>.size + 16

        deinit {
            freeTaint()
            blocks.deallocate()
            measured.deallocate()
            clear.deallocate()
        }
    }

    /// What a 16-byte block holds besides its bytes' labels and its two bits.
    struct Block: Equatable {
        /// 0 when stored as plaintext, otherwise the ASID whose key encrypted it.
        var encryptedBy: UInt16 = 0
        /// The bytes a keyless write replaced since the block was encrypted.
        var overwritten: UInt16 = 0
        /// How many writes changed it (a ciphertext replay restores an older version).
        var version: UInt32 = 0
    }

    /// The most bytes of shadow state (pages and their cells, and the vCPUs' register taint). Past it the
    /// shadow stops changing and
    /// ``exhausted`` is set: the analysis can no longer be trusted and must stop.
    let maxBytes: Int
    /// The bytes of shadow state so far, as allocated (pages, their cells, and the page table's entries).
    private(set) var bytes = 0
    /// Whether the budget ran out.
    private(set) var exhausted = false
    /// Where lookups go once the budget ran out.
    private let spare = Page()
    /// What a page costs with one taint-free cell of block state: the object, its bitmaps and block cell,
    /// the allocator's headers and the page table's entry.
    static let pageBytes = 256
    /// What a page's block state costs more once split per block.
    static let splitBlockBytes = 255 * MemoryLayout<Block>.stride

    init(maxBytes: Int = 2 << 30) { self.maxBytes = maxBytes }

    /// Every shadow page, owned here for the memory's lifetime (pages are never dropped).
    private var pages: [UInt64: Page] = [:]
    /// The pages looked up last: copies and walks revisit a few pages over and over. Unretained: `pages`
    /// owns them, so the checks made for every access and fetch take no reference counts.
    private var cache: [(number: UInt64, page: Unmanaged<Page>?)] = Array(repeating: (UInt64.max, nil), count: 4)
    private var cacheNext = 0

    /// How many pages keep taint per page, per word and per byte, and block state per page and per block.
    var grainCounts: (taintPage: Int, taintWord: Int, taintByte: Int, blockPage: Int, blockBlock: Int) {
        var c = (0, 0, 0, 0, 0)
        for p in pages.values {
            if p.labels != nil {
                switch p.taintShift { case 12: c.0 += 1; case 3: c.1 += 1; default: c.2 += 1 }
            }
            if p.blockMask == 0 { c.3 += 1 } else { c.4 += 1 }
        }
        return c
    }

    /// The shadow page holding `spa`, if it has one.
    @inline(__always)
    private func existing(_ spa: UInt64) -> Page? { existingUnretained(spa)?.takeUnretainedValue() }

    /// The shadow page holding `spa`, if it has one, without a reference to it.
    @inline(__always)
    private func existingUnretained(_ spa: UInt64) -> Unmanaged<Page>? {
        let number = spa >> 12
        for c in cache where c.number == number { return c.page }
        let p = pages[number].map { Unmanaged.passUnretained($0) }
        cache[cacheNext] = (number, p)
        cacheNext = (cacheNext + 1) & 3
        return p
    }

    /// `body` of the shadow page holding `spa` (nil without one), borrowed rather than retained.
    @inline(__always)
    private func withExisting<R>(_ spa: UInt64, _ body: (Page) -> R) -> R? {
        guard let p = existingUnretained(spa) else { return nil }
        return p._withUnsafeGuaranteedRef(body)
    }

    private func page(_ spa: UInt64) -> Page {
        if let p = existing(spa) { return p }
        guard reserve(Self.pageBytes) else { return spare }
        let p = Page()
        pages[spa >> 12] = p
        for i in cache.indices where cache[i].number == spa >> 12 { cache[i].page = Unmanaged.passUnretained(p) }
        return p
    }

    /// Takes `delta` more bytes from the budget, or marks it exhausted and returns false. The analyzer
    /// charges its per-vCPU register taint here too: a trace can name any number of vCPUs.
    func reserve(_ delta: Int) -> Bool {
        guard !exhausted, delta <= maxBytes - bytes else {
            exhausted = true
            return false
        }
        bytes += delta
        return true
    }

    /// Gives `p` taint cells of `1 << shift` bytes, within the budget.
    private func setTaintGrain(_ p: Page, _ shift: Int) -> Bool {
        let delta = ((4096 >> shift) - (p.labels == nil ? 0 : p.cellCount)) * Page.cellBytes
        guard delta <= 0 || reserve(delta) else { return false }
        p.setTaintGrain(shift)
        if delta < 0 { bytes += delta }
        return true
    }

    /// Gives `p` one block-state cell per 16-byte block, within the budget.
    private func splitBlocks(_ p: Page) -> Bool {
        guard p.blockMask == 0 else { return true }
        guard reserve(Self.splitBlockBytes) else { return false }
        p.splitBlocks()
        return true
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
                for c in p.cell(base)...p.cell(base + n - 1) where labels[c] != 0 {
                    set = table.union(set, labels[c])
                    if origin == nil {
                        origin = p.origins![c]
                        via = p.via(max(c << p.taintShift, base))
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
            func write(_ p: Page) -> Bool {
                guard writeTaint(p, at: base, count: n, set: set, origin: origin, via: via),
                      writeBlockStates(p, at: base, count: n, encryptedBy: asid) else { return false }
                if n < 4096 { noteWritten(p, n) }
                return true
            }
            // The page an access writes almost always exists: borrowed, not retained.
            guard withExisting(a, write) ?? write(page(a)) else { return }
            i += n
        }
    }

    /// Gives `count` bytes at page offset `base` one label set, origin and last write, in cells as coarse
    /// as the write allows. False when the budget ran out.
    private func writeTaint(_ p: Page, at base: Int, count n: Int, set: LabelTable.SetID, origin: UInt64, via: UInt64) -> Bool {
        if p.labels == nil && set == 0 { return true }
        if n == 4096 {
            if set == 0 {
                bytes -= p.cellCount * Page.cellBytes
                p.clearTaint()
                return true
            }
            if p.labels == nil || p.taintShift != 12 { guard setTaintGrain(p, 12) else { return false } }
        } else {
            let need = (base | n) & 7 == 0 ? 3 : 0
            if p.labels == nil || p.taintShift > need { guard setTaintGrain(p, p.labels == nil ? need : min(need, p.taintShift)) else { return false } }
        }
        guard let labels = p.labels, let origins = p.origins, let vias = p.vias else { return true }
        p.viaStride = 0
        for c in p.cell(base)...p.cell(base + n - 1) {
            labels[c] = set
            origins[c] = origin
            vias[c] = via
        }
        return true
    }

    /// Counts `count` bytes written to `p`; after a page's worth, looks whether its cells now all agree.
    /// However the page was written (in order or not), a pass over it ends in one look, and a look costs
    /// at most one compare per cell, a fraction of the writes that led to it.
    @inline(__always)
    private func noteWritten(_ p: Page, _ count: Int) {
        p.bytesWritten += count
        if p.bytesWritten >= 4096 {
            p.bytesWritten = 0
            coarsenIfUniform(p)
        }
    }

    /// Records a write of `count` bytes at page offset `base`: each block it touches is one version newer,
    /// no longer measured, and encrypted by `asid` (or, keyless, partly overwritten). False when the budget
    /// ran out.
    private func writeBlockStates(_ p: Page, at base: Int, count n: Int, encryptedBy asid: UInt16) -> Bool {
        let first = base >> 4, last = (base + n - 1) >> 4
        if n == 4096 && p.blockMask == 0 {
            // Every block gets the same change: the page's one cell takes it.
            Self.apply(write: p.blocks, mask: 0xFFFF, encryptedBy: asid)
        } else {
            guard splitBlocks(p) else { return false }
            for block in first...last {
                Self.apply(write: p.block(block), mask: Self.mask(block: block, from: base, count: n), encryptedBy: asid)
            }
            if n == 4096 && p.mergeBlocksIfUniform() { bytes -= Self.splitBlockBytes }
        }
        for block in first...last {
            let bit: UInt64 = 1 << UInt64(block & 63)
            p.measured[block >> 6] &= ~bit
            if asid == 0 { p.clear[block >> 6] |= bit } else { p.clear[block >> 6] &= ~bit }
        }
        return true
    }

    /// Makes `p`'s cells one again where all of them agree: one label set and origin, and last writes
    /// that are the same or one word's step apart (a page filled in order). A scan stops at the first cell
    /// that differs.
    private func coarsenIfUniform(_ p: Page) {
        if let labels = p.labels, let origins = p.origins, let vias = p.vias, p.taintShift < 12 {
            let (set, origin, via) = (labels[0], origins[0], vias[0])
            let shift = p.taintShift
            let stride = vias[8 >> shift] &- via
            var uniform = true
            for c in 1..<p.cellCount where labels[c] != set
                || (set != 0 && (origins[c] != origin || vias[c] != via &+ stride &* UInt64((c << shift) >> 3))) {
                uniform = false
                break
            }
            if uniform {
                let freed = p.cellCount * Page.cellBytes
                if set == 0 {
                    p.clearTaint()
                    bytes -= freed
                } else {
                    p.setTaintGrain(12)
                    p.viaStride = stride
                    bytes -= freed - Page.cellBytes
                }
            }
        }
        if p.mergeBlocksIfUniform() { bytes -= Self.splitBlockBytes }
    }

    /// One write's change to a block: `mask` the bytes it covers.
    @inline(__always)
    private static func apply(write b: UnsafeMutablePointer<Block>, mask: UInt16, encryptedBy asid: UInt16) {
        b.pointee.version &+= 1
        if asid != 0 {
            b.pointee.encryptedBy = asid
            b.pointee.overwritten = 0
        } else if b.pointee.encryptedBy != 0 {
            // A keyless write replaces only its own bytes; the block is plaintext once all are replaced.
            b.pointee.overwritten |= mask
            if b.pointee.overwritten == 0xFFFF {
                b.pointee.encryptedBy = 0
                b.pointee.overwritten = 0
            }
        }
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
            let c = p.cell(off + j)
            let set = labels[c]
            sets[start + j] = set
            origins[start + j] = set != 0 ? from[c] : 0
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
        let cell = p.block(b).pointee
        return BlockState(encryptedBy: cell.encryptedBy, overwritten: cell.overwritten,
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
        if p.labels != nil || sets.contains(where: { $0 != 0 }) {
            // Word cells do when each word's bytes agree; otherwise the page needs byte cells.
            var wordsAgree = true
            for j in 0..<count where j & 7 != 0 && (sets[j] != sets[j & ~7] || origins[j] != origins[j & ~7]) {
                wordsAgree = false
                break
            }
            let need = wordsAgree ? 3 : 0
            if p.labels == nil || p.taintShift > need {
                guard setTaintGrain(p, p.labels == nil ? need : min(need, p.taintShift)) else { return }
            }
            if let labels = p.labels, let o = p.origins, let v = p.vias {
                for j in stride(from: 0, to: count, by: 1 << p.taintShift) {
                    let c = p.cell(off + j)
                    labels[c] = sets[j]
                    o[c] = origins[j]
                    v[c] = origins[j]
                }
            }
        }
        guard splitBlocks(p) else { return }
        for (i, state) in blocks.enumerated() {
            let block = (off >> 4) + i
            let bit: UInt64 = 1 << UInt64(block & 63)
            if state.measured { p.measured[block >> 6] |= bit } else { p.measured[block >> 6] &= ~bit }
            if state.clear { p.clear[block >> 6] |= bit } else { p.clear[block >> 6] &= ~bit }
            let cell = p.block(block)
            cell.pointee.encryptedBy = state.encryptedBy
            cell.pointee.overwritten = state.overwritten
            cell.pointee.version &+= 1
        }
        noteWritten(p, count)
    }

    /// How many writes changed the 16-byte block containing `spa` (0 for memory never written).
    func blockVersion(_ spa: UInt64) -> UInt32 {
        guard let p = existing(spa) else { return 0 }
        return p.block(Int(spa & 0xFFF) >> 4).pointee.version
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
            let b = Int(block & 0xFF)
            if withExisting(block << 4, { $0.clear[b >> 6] & (1 << UInt64(b & 63)) != 0 }) == true { return true }
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
        var i = 0
        while i < size {
            // The bytes on this page (an access crosses at most one page boundary).
            let a = spa + UInt64(i)
            let end = min(size, i + Int(4096 - (a & 0xFFF)))
            _ = withExisting(a) { p in
                guard let labels = p.labels else { return }
                let first = Int(a & 0xFFF)
                let c = p.cell(first)
                if p.cell(first + (end - i) - 1) == c {
                    // One cell holds these bytes (a page or word of one label): one look.
                    let l = labels[c]
                    guard l != 0 else { return }
                    for j in i..<end { sets[j] = l }
                    if origin == nil {
                        origin = p.origins![c]
                        via = p.via(first)
                    }
                    return
                }
                for j in i..<end {
                    let offset = Int((spa + UInt64(j)) & 0xFFF)
                    let c = p.cell(offset)
                    sets[j] = labels[c]
                    if labels[c] != 0 && origin == nil {
                        origin = p.origins![c]
                        via = p.via(offset)
                    }
                }
            }
            i = end
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
            let b = Int(block & 0xFF)
            guard withExisting(block << 4, { $0.measured[b >> 6] & (1 << UInt64(b & 63)) != 0 }) == true else { return false }
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
                let cell = p.block(block).pointee
                if cell.encryptedBy != 0 && Self.mask(block: block, from: Int(a & 0xFFF), count: n) & ~cell.overwritten != 0 {
                    return cell.encryptedBy
                }
            }
            i += n
        }
        return 0
    }
}
