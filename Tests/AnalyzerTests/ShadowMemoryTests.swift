import TestSupport
import Testing
@testable import Analyzer

/// The shadow's coarse cells answer exactly what per-byte storage would, whatever the writes.
struct ShadowMemoryTests {
    /// Per-byte shadow state written out plainly: what ``ShadowMemory`` must be indistinguishable from.
    struct Reference {
        struct Block: Equatable { var encryptedBy: UInt16 = 0, overwritten: UInt16 = 0, version: UInt32 = 0, measured = false, clear = false }
        var taint: [UInt64: (set: LabelTable.SetID, origin: UInt64, via: UInt64)] = [:]
        var blocks: [UInt64: Block] = [:]

        mutating func write(_ spa: UInt64, size: Int, set: LabelTable.SetID, origin: UInt64, via: UInt64, asid: UInt16) {
            for a in spa..<spa + UInt64(size) { taint[a] = set == 0 ? nil : (set, origin, via) }
            for block in (spa >> 4)...((spa + UInt64(size) - 1) >> 4) {
                var b = blocks[block] ?? Block()
                b.version &+= 1
                b.measured = false
                b.clear = asid == 0
                if asid != 0 {
                    (b.encryptedBy, b.overwritten) = (asid, 0)
                } else if b.encryptedBy != 0 {
                    let lo = max(spa, block << 4), hi = min(spa + UInt64(size), (block + 1) << 4)
                    for a in lo..<hi { b.overwritten |= 1 << UInt16(a & 15) }
                    if b.overwritten == 0xFFFF { (b.encryptedBy, b.overwritten) = (0, 0) }
                }
                blocks[block] = b
            }
        }

        mutating func writeBlocks(_ spa: UInt64, sets: [LabelTable.SetID], origins: [UInt64], states: [ShadowMemory.BlockState]) {
            for j in 0..<sets.count { taint[spa + UInt64(j)] = sets[j] == 0 ? nil : (sets[j], origins[j], origins[j]) }
            for (i, s) in states.enumerated() {
                var b = blocks[(spa >> 4) + UInt64(i)] ?? Block()
                (b.encryptedBy, b.overwritten, b.measured, b.clear) = (s.encryptedBy, s.overwritten, s.measured, s.clear)
                b.version &+= 1
                blocks[(spa >> 4) + UInt64(i)] = b
            }
        }

        func encryption(_ spa: UInt64, size: Int) -> UInt16 {
            for a in spa..<spa + UInt64(size) {
                if let b = blocks[a >> 4], b.encryptedBy != 0, b.overwritten & (1 << UInt16(a & 15)) == 0 { return b.encryptedBy }
            }
            return 0
        }
    }

    /// Writes and reads at random over five pages: whole pages, words, odd bytes, lines, replays.
    @Test("coarse cells answer what per-byte storage would, over random writes", arguments: [1, 2, 3, 4, 5, 6] as [UInt64])
    func matchesPerByteStorage(seed: UInt64) {
        var rng = SplitMix(seed: seed)
        func pick(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
        let shadow = ShadowMemory()
        var ref = Reference()
        var table = LabelTable()
        let sets: [LabelTable.SetID] = [0] + (0..<3).map { table.secret(name: "s\($0)", seq: UInt64($0), spa: 0) }
        let base: UInt64 = 0x40000, span = 5 * 4096
        for step in 1...400 {
            let seq = UInt64(step) * 10_000
            let set = sets[pick(sets.count)]
            let asid = UInt16(pick(3))
            switch pick(7) {
            case 6:  // a page filled word by word in order, as `rep movsq` does: one label, one origin, evenly spaced writes
                let spa = base + UInt64(pick(4)) * 4096
                let step = UInt64(pick(3))
                for w in 0..<512 as Range<UInt64> {
                    shadow.write(spa + 8 * w, size: 8, set: set, origin: seq + 1, via: seq + step * w, encryptedBy: asid)
                    ref.write(spa + 8 * w, size: 8, set: set, origin: seq + 1, via: seq + step * w, asid: asid)
                }
            case 0:  // a whole page, or two
                let spa = base + UInt64(pick(4)) * 4096
                let size = pick(2) == 0 ? 4096 : 8192
                shadow.write(spa, size: size, set: set, origin: seq + 1, via: seq, encryptedBy: asid)
                ref.write(spa, size: size, set: set, origin: seq + 1, via: seq, asid: asid)
            case 1, 2:  // a word or a few, aligned
                let spa = base + UInt64(pick(span / 8 - 4)) * 8
                let size = 8 * (1 + pick(4))
                shadow.write(spa, size: size, set: set, origin: seq + 1, via: seq, encryptedBy: asid)
                ref.write(spa, size: size, set: set, origin: seq + 1, via: seq, asid: asid)
            case 3:  // anything: odd sizes across page boundaries
                let spa = base + UInt64(pick(span - 5000))
                let size = 1 + pick(pick(2) == 0 ? 16 : 5000)
                shadow.write(spa, size: size, set: set, origin: seq + 1, via: seq, encryptedBy: asid)
                ref.write(spa, size: size, set: set, origin: seq + 1, via: seq, asid: asid)
            case 4:  // up to 8 bytes whose labels differ
                let spa = base + UInt64(pick(span - 8))
                let size = 1 + pick(8)
                var bytes = SIMD8<UInt32>(repeating: 0)
                for i in 0..<size { bytes[i] = pick(3) == 0 ? set : sets[pick(sets.count)] }
                shadow.writeBytes(spa, size: size, sets: bytes, origin: seq + 1, via: seq, encryptedBy: asid)
                if (0..<size).allSatisfy({ bytes[$0] == bytes[0] }) {
                    ref.write(spa, size: size, set: bytes[0], origin: seq + 1, via: seq, asid: asid)
                } else {
                    // Bytes of differing labels are written one by one: each is a write of its block.
                    for i in 0..<size { ref.write(spa + UInt64(i), size: 1, set: bytes[i], origin: seq + 1, via: seq, asid: asid) }
                }
            default:  // a line's write-back, or one block's replay, with per-byte labels
                let blocks = pick(2) == 0 ? 4 : 1
                let spa = base + UInt64(pick(span / (16 * blocks))) * UInt64(16 * blocks)
                let uniformWords = pick(2) == 0
                var s: [LabelTable.SetID] = [], o: [UInt64] = []
                for j in 0..<16 * blocks {
                    let pickAnew = !uniformWords || j % 8 == 0
                    s.append(pickAnew ? sets[pick(sets.count)] : s[j - 1])
                    o.append(pickAnew ? seq + UInt64(j) : o[j - 1])
                }
                for j in s.indices where s[j] == 0 { o[j] = 0 }
                let states = (0..<blocks).map { _ in
                    ShadowMemory.BlockState(encryptedBy: UInt16(pick(3)), overwritten: UInt16(truncatingIfNeeded: rng.next()) & (pick(2) == 0 ? 0 : 0xFFFF),
                                            measured: pick(2) == 0, clear: pick(2) == 0)
                }
                if blocks == 4 { shadow.writeLine(spa, sets: s, origins: o, blocks: states) } else {
                    shadow.restoreBlock(spa, state: states[0], sets: s, origins: o)
                }
                ref.writeBlocks(spa, sets: s, origins: o, states: states)
            }
            guard step % 20 == 0 else { continue }
            for a in stride(from: base, to: base + UInt64(span), by: 8) {
                let (got, origin, via) = shadow.readBytes(a, size: 8)
                var first: (origin: UInt64, via: UInt64)?
                for i in 0..<8 {
                    let t = ref.taint[a + UInt64(i)]
                    #expect(got[i] == (t?.set ?? 0), "byte \(a + UInt64(i)) after step \(step)")
                    if first == nil, let t { first = (t.origin, t.via) }
                }
                #expect(origin == first?.origin && via == (first?.via ?? 0), "word \(a) after step \(step)")
            }
            for block in (base >> 4)..<((base + UInt64(span)) >> 4) {
                let r = ref.blocks[block] ?? Reference.Block()
                let state = shadow.blockState(block << 4)
                #expect(state == ShadowMemory.BlockState(encryptedBy: r.encryptedBy, overwritten: r.overwritten, measured: r.measured, clear: r.clear),
                        "block \(block) after step \(step)")
                #expect(shadow.blockVersion(block << 4) == r.version)
            }
            for _ in 0..<20 {
                let spa = base + UInt64(pick(span - 64)), size = 1 + pick(64)
                #expect(shadow.encryption(spa, size: size) == ref.encryption(spa, size: size))
                var union: LabelTable.SetID = 0
                for a in spa..<spa + UInt64(size) { union = table.union(union, ref.taint[a]?.set ?? 0) }
                #expect(shadow.read(spa, size: size, table: &table).set == union)
            }
        }
        #expect(!shadow.exhausted)
    }

    @Test("a page costs what its writes need: a whole-page write keeps one cell, words keep word cells, a whole-page write coarsens again")
    func grainFollowsWrites() {
        let shadow = ShadowMemory()
        var table = LabelTable()
        let set = table.secret(name: "k", seq: 1, spa: 0)
        shadow.write(0x10000, size: 64 * 4096, set: set, origin: 1, via: 1, encryptedBy: 1)
        #expect(shadow.grainCounts.taintPage == 64 && shadow.grainCounts.blockPage == 64)
        let bulk = shadow.bytes
        #expect(bulk <= 64 * 512, "\(bulk) bytes for 64 pages written whole")
        for i in 0..<512 { shadow.write(0x10000 + UInt64(8 * i), size: 8, set: set, origin: UInt64(i), via: UInt64(i), encryptedBy: 1) }
        // Every block saw the same writes, so the last word's write merged their state again.
        #expect(shadow.grainCounts.taintWord == 1 && shadow.grainCounts.blockBlock == 0)
        #expect(shadow.bytes - bulk < 12 << 10, "a page written word by word costs \(shadow.bytes - bulk) bytes more")
        shadow.write(0x10003, size: 2, set: 0, origin: 9, via: 9, encryptedBy: 0)
        #expect(shadow.grainCounts.taintByte == 1)
        shadow.write(0x10000, size: 4096, set: 0, origin: 9, via: 9, encryptedBy: 2)
        // The page's blocks saw different numbers of writes, so their state stays per block.
        #expect(shadow.grainCounts.taintByte == 0 && shadow.grainCounts.taintPage == 63 && shadow.grainCounts.blockBlock == 1)
        #expect(shadow.bytes - bulk == ShadowMemory.splitBlockBytes - ShadowMemory.Page.cellBytes, "untainting a page frees its cells")
        shadow.write(0x11000, size: 2048, set: set, origin: 2, via: 2, encryptedBy: 1)
        #expect(shadow.grainCounts.blockBlock == 2)
        shadow.write(0x11800, size: 2048, set: set, origin: 2, via: 2, encryptedBy: 1)
        #expect(shadow.grainCounts.blockBlock == 1, "blocks of one page that all saw the same writes share one cell again")
        // A copy in order (a word every two events): once the last word lands, one cell.
        for i in 0..<512 { shadow.write(0x13000 + UInt64(8 * i), size: 8, set: set, origin: 5, via: UInt64(100 + 2 * i), encryptedBy: 1) }
        #expect(shadow.grainCounts.taintWord == 0 && shadow.grainCounts.blockBlock == 1)
        #expect(shadow.readBytes(0x13ff8, size: 8).via == 100 + 2 * 511)
        // A copy out of order whose write-backs give every word the same origin: once the last line lands, one cell.
        for i in 0..<512 { shadow.write(0x12000 + UInt64(8 * ((i * 7) % 512)), size: 8, set: set, origin: 5, via: UInt64(100 + i), encryptedBy: 1) }
        #expect(shadow.grainCounts.taintWord == 1)
        let state = ShadowMemory.BlockState(encryptedBy: 1)
        for line in 0..<64 {
            shadow.writeLine(0x12000 + UInt64(64 * line), sets: Array(repeating: set, count: 64), origins: Array(repeating: 5, count: 64),
                             blocks: Array(repeating: state, count: 4))
        }
        #expect(shadow.grainCounts.taintWord == 0 && shadow.grainCounts.taintPage == 63 && shadow.grainCounts.blockBlock == 1)
    }
}
