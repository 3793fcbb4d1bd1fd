import TestSupport
import Testing
@testable import Analyzer

@Suite("Interval map")
struct IntervalMapTests {
    /// A random range over a small span, so ranges overlap, touch and nest.
    static func range(_ rng: inout SplitMix) -> (UInt64, UInt64) {
        let start = rng.next() % 300
        let length = rng.next() % 4 == 0 ? rng.next() % 80 : rng.next() % 6
        return (start, start + length)
    }

    @Test("fill: each number answers with the first range added over it, as a search of every range in order finds",
          arguments: [(1, 2), (2, 3), (3, 4), (4, 256)] as [(UInt64, Int)])
    func fillAgreesWithAList(seed: UInt64, blockSize: Int) {
        var rng = SplitMix(seed: seed)
        var map = IntervalMap<Int>(blockSize: blockSize)
        var list: [(start: UInt64, end: UInt64, id: Int)] = []
        var kept = 0
        for id in 0..<500 {
            let (start, end) = Self.range(&rng)
            kept += map.fill(start, end, id)
            list.append((start, end, id))
        }
        #expect(map.count == kept)
        for point in 0..<UInt64(400) {
            #expect(map.value(at: point) == list.first { point >= $0.start && point < $0.end }?.id, "at \(point)")
        }
    }

    @Test("replace: each number answers with the last range added over it, and ranges overlapping a new one are gone",
          arguments: [(5, 2), (6, 3), (7, 256)] as [(UInt64, Int)])
    func replaceAgreesWithAList(seed: UInt64, blockSize: Int) {
        var rng = SplitMix(seed: seed)
        var map = IntervalMap<Int>(blockSize: blockSize)
        var live: [(start: UInt64, end: UInt64, id: Int)] = []
        for id in 0..<500 {
            let (start, end) = Self.range(&rng)
            guard start < end else { continue }
            let before = live.count
            live.removeAll { $0.start < end && start < $0.end }
            #expect(map.replace(start, end, id) == before - live.count)
            live.append((start, end, id))
        }
        #expect(map.count == live.count)
        for point in 0..<UInt64(400) {
            #expect(map.value(at: point) == live.first { point >= $0.start && point < $0.end }?.id, "at \(point)")
        }
    }

    @Test("a range over the whole number line and ranges ending at its top are kept and found")
    func edges() {
        var map = IntervalMap<Int>(blockSize: 2)
        #expect(map.fill(.max - 2, .max, 1) == 1)
        #expect(map.fill(0, .max, 2) == 1)
        #expect(map.value(at: .max - 1) == 1)
        #expect(map.value(at: .max) == nil)
        #expect(map.value(at: 0) == 2)
        #expect(map.fill(5, 5, 3) == 0)
        #expect(map.replace(5, 5, 3) == 0)
    }

    /// Hostile orders: a sorted array would move every range on each insert (quadratic: this test would
    /// not finish), a list would be walked on every lookup, and refilling a covered span would walk every
    /// range under it each time.
    @Test("hundreds of thousands of ranges in the worst order for an array still add and look up in logarithmic steps")
    func hostileOrders() {
        var pages = IntervalMap<UInt64>()
        let n: UInt64 = 200_000
        for i in 0..<n { pages.fill(2 * (n - i), 2 * (n - i) + 1, i) }  // descending, one page each, with holes
        for _ in 0..<n { pages.fill(0, 4 * n, .max) }                     // the holes once, then nothing new
        #expect(pages.count == Int(2 * n + 1))
        #expect(pages.value(at: 2) == n - 1 && pages.value(at: 3) == .max && pages.value(at: 2 * n) == 0)

        var handed = IntervalMap<UInt64>()
        for i in 0..<n { handed.replace(i * 7919 % n * 16, i * 7919 % n * 16 + 8, i) }  // scattered, disjoint
        #expect(handed.count == Int(n))
        #expect(handed.value(at: 7919 % n * 16 + 7) == 1 && handed.value(at: 8) == nil)
        #expect(handed.replace(0, n * 16, .max) == Int(n))
        #expect(handed.count == 1)
    }
}
