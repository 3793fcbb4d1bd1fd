/// The analyzer's view of system physical memory: for every byte the label set of the data it holds and
/// the event the data came from, and for every 16-byte block whether DRAM holds it encrypted (and under
/// which ASID). Pages are created when first written.
struct ShadowMemory {
    final class Page {
        /// Label set per byte (nil while the page holds no tainted byte).
        var labels: [LabelTable.SetID]?
        /// The event each tainted byte came from.
        var origins: [UInt64]?
        /// Per 16-byte block: 0 when stored as plaintext, otherwise the ASID whose key encrypted it.
        var encryptedBy = [UInt16](repeating: 0, count: 256)
    }

    private var pages: [UInt64: Page] = [:]

    /// The number of pages with shadow state.
    var pageCount: Int { pages.count }

    private mutating func page(_ spa: UInt64) -> Page {
        if let p = pages[spa >> 12] { return p }
        let p = Page()
        pages[spa >> 12] = p
        return p
    }

    /// The union of the labels of `size` bytes at `spa`, and the origin of the first tainted byte.
    func read(_ spa: UInt64, size: Int, table: inout LabelTable) -> (set: LabelTable.SetID, origin: UInt64?) {
        var set: LabelTable.SetID = 0
        var origin: UInt64?
        var i = 0
        while i < size {
            let a = spa + UInt64(i)
            let n = min(size - i, Int(4096 - (a & 0xFFF)))
            if let p = pages[a >> 12], let labels = p.labels {
                let base = Int(a & 0xFFF)
                for j in 0..<n where labels[base + j] != 0 {
                    set = table.union(set, labels[base + j])
                    if origin == nil { origin = p.origins![base + j] }
                }
            }
            i += n
        }
        return (set, origin)
    }

    /// Sets the labels of `size` bytes at `spa`, and records whether the blocks are now stored encrypted.
    mutating func write(_ spa: UInt64, size: Int, set: LabelTable.SetID, origin: UInt64, encryptedBy asid: UInt16) {
        var i = 0
        while i < size {
            let a = spa + UInt64(i)
            let n = min(size - i, Int(4096 - (a & 0xFFF)))
            let base = Int(a & 0xFFF)
            let p: Page
            if let existing = pages[a >> 12] {
                p = existing
            } else if set == 0 && asid == 0 {
                i += n  // plaintext, untainted, never seen: nothing to remember
                continue
            } else {
                p = page(a)
            }
            if set != 0 && p.labels == nil {
                p.labels = [LabelTable.SetID](repeating: 0, count: 4096)
                p.origins = [UInt64](repeating: 0, count: 4096)
            }
            if p.labels != nil {
                for j in 0..<n {
                    p.labels![base + j] = set
                    p.origins![base + j] = origin
                }
            }
            for block in (base >> 4)...((base + n - 1) >> 4) { p.encryptedBy[block] = asid }
            i += n
        }
    }

    /// The ASID a block is stored encrypted under (0: plaintext) for the first byte of the range that is.
    func encryption(_ spa: UInt64, size: Int) -> UInt16 {
        var i = 0
        while i < size {
            let a = spa + UInt64(i)
            if let p = pages[a >> 12], p.encryptedBy[Int(a & 0xFFF) >> 4] != 0 { return p.encryptedBy[Int(a & 0xFFF) >> 4] }
            i += 16 - Int(a & 0xF)
        }
        return 0
    }
}
