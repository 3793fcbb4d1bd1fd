/// Disjoint ranges of 64-bit numbers (frames, addresses), each with a value, kept sorted in blocks of
/// bounded size: finding the range that holds a number is two binary searches, and adding a range costs
/// a few of those and moves at most a block's entries (and the list of blocks when one splits), however
/// many ranges there are and in whatever order they come. What a trace can keep any number of
/// (nested-page-table mappings, hand-over ranges) lives here, so that a hostile trace cannot make each
/// access, or each new range, walk all of them.
struct IntervalMap<Value> {
    /// `[start, end)` and its value.
    struct Entry {
        var start: UInt64
        var end: UInt64
        var value: Value
    }

    private var entries: Blocks<Value>
    /// The union of the entries, merged into as few ranges as possible (kept by ``fill(_:_:_:)`` only):
    /// what lets a fill find the gaps it fills without walking the entries already there.
    private var coverage: Blocks<Void>

    /// The number of ranges.
    var count: Int { entries.count }

    init(blockSize: Int = 256) {
        entries = Blocks(blockSize: blockSize)
        coverage = Blocks(blockSize: blockSize)
    }

    /// The value of the range holding `point`, if one does.
    func value(at point: UInt64) -> Value? {
        guard let e = entries.last(startingAtOrBefore: point), point < e.end else { return nil }
        return e.value
    }

    /// Adds `[start, end)` with `value` where no range is yet: parts already covered keep their values
    /// (the first range added over a number answers for it). Returns how many ranges were added. Every
    /// range `fill` met is merged into one covering range, so no range is met twice.
    @discardableResult
    mutating func fill(_ start: UInt64, _ end: UInt64, _ value: Value) -> Int {
        guard start < end else { return 0 }
        // The covered ranges touching [start, end), merged with it into one; the gaps between them are new.
        var covered: [(start: UInt64, end: UInt64)] = []
        var lo = start, hi = end
        while let c = coverage.last(startingAtOrBefore: hi), c.end >= lo {
            covered.append((c.start, c.end))
            lo = min(lo, c.start)
            hi = max(hi, c.end)
            coverage.remove(startingAt: c.start)
        }
        coverage.insert(.init(start: lo, end: hi, value: ()))
        var added = 0
        var from = start
        for c in covered.reversed() where c.end > from {
            if c.start > from {
                entries.insert(.init(start: from, end: min(c.start, end), value: value))
                added += 1
            }
            from = max(from, c.end)
            if from >= end { break }
        }
        if from < end {
            entries.insert(.init(start: from, end: end, value: value))
            added += 1
        }
        return added
    }

    /// Removes every range overlapping `[start, end)`, then adds it with `value` (for ranges not mixed
    /// with ``fill(_:_:_:)``). Returns how many ranges were removed.
    @discardableResult
    mutating func replace(_ start: UInt64, _ end: UInt64, _ value: Value) -> Int {
        guard start < end else { return 0 }
        var removed = 0
        // The overlapping ranges are consecutive, the last of them the last starting before `end`.
        while let e = entries.last(startingAtOrBefore: end - 1), e.end > start {
            entries.remove(startingAt: e.start)
            removed += 1
        }
        entries.insert(.init(start: start, end: end, value: value))
        return removed
    }

    /// Disjoint entries in order, in blocks of at most `blockSize` (none empty).
    private struct Blocks<V> {
        private var blocks: [[IntervalMap<V>.Entry]] = []
        private let blockSize: Int
        private(set) var count = 0

        init(blockSize: Int) {
            precondition(blockSize >= 2)
            self.blockSize = blockSize
        }

        /// The position of the last entry starting at or before `point`.
        private func position(atOrBefore point: UInt64) -> (block: Int, index: Int)? {
            // The last block whose first entry starts at or before `point`, then the entry within it.
            var lo = 0, hi = blocks.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if blocks[mid][0].start <= point { lo = mid + 1 } else { hi = mid }
            }
            guard lo > 0 else { return nil }
            let block = blocks[lo - 1]
            var l = 0, h = block.count
            while l < h {
                let mid = (l + h) / 2
                if block[mid].start <= point { l = mid + 1 } else { h = mid }
            }
            return (lo - 1, l - 1)
        }

        func last(startingAtOrBefore point: UInt64) -> IntervalMap<V>.Entry? {
            position(atOrBefore: point).map { blocks[$0.block][$0.index] }
        }

        /// Inserts an entry that overlaps none.
        mutating func insert(_ e: IntervalMap<V>.Entry) {
            count += 1
            guard let (b, i) = position(atOrBefore: e.start) else {
                if blocks.isEmpty { blocks.append([e]) } else { blocks[0].insert(e, at: 0) }
                split(0)
                return
            }
            blocks[b].insert(e, at: i + 1)
            split(b)
        }

        private mutating func split(_ b: Int) {
            guard blocks[b].count > blockSize else { return }
            let half = blocks[b].count / 2
            let tail = Array(blocks[b][half...])
            blocks[b].removeSubrange(half...)
            blocks.insert(tail, at: b + 1)
        }

        /// Removes the entry starting at `start` (there must be one).
        mutating func remove(startingAt start: UInt64) {
            guard let (b, i) = position(atOrBefore: start), blocks[b][i].start == start else {
                preconditionFailure("no entry starts at \(start)")
            }
            count -= 1
            blocks[b].remove(at: i)
            if blocks[b].isEmpty { blocks.remove(at: b) }
        }
    }
}
