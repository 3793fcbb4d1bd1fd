import TestSupport
import Testing
import TraceFormat
@testable import Analyzer

@Suite("Nested-page-table mappings")
struct NPTMappingsTests {
    @Test("the first mapping of a frame is the one a search of every mapping in order finds", arguments: [1, 2, 3, 4] as [UInt64])
    func agreesWithAList(seed: UInt64) {
        var rng = SplitMix(seed: seed)
        var mappings = NPTMappings()
        var list: [NPTMappings.Mapping] = []
        for seq in 0..<UInt64(400) {
            // Memslots of several pages and page faults of one, over a small range of frames so they overlap.
            let pages = rng.next() % 4 == 0 ? 1 + rng.next() % 64 : (rng.next() % 8 == 0 ? 0 : 1)
            let m = NPTMappings.Mapping(vm: UInt16(rng.next() % 3), gpaPage: rng.next() % 512, spaPage: rng.next() % 256, pages: pages,
                                        seq: seq)
            mappings.add(m)
            list.append(m)
        }
        for frame in 0..<UInt64(330) {
            #expect(mappings.first(containing: frame) == list.first { $0.contains(frame) }, "frame \(frame)")
        }
    }

    @Test("a trace of endless page-fault mappings is charged to the shadow budget and stops the analysis")
    func charged() {
        let small = Analyzer(maxShadowBytes: 1 << 20)
        for seq in 0..<UInt64(50_000) {
            small.process(TraceEvent(seq: seq, cycle: seq, body: .nptChange(NPTChange(vm: 0, op: .map, gpa: seq << 12, spa: seq << 12,
                                                                                     pages: 1))))
        }
        #expect(small.exhausted)
        let again = Analyzer(maxShadowBytes: 1 << 20)
        for seq in 0..<UInt64(50_000) {
            // The same frame mapped again and again keeps nothing more.
            again.process(TraceEvent(seq: seq, cycle: seq, body: .nptChange(NPTChange(vm: 0, op: .map, gpa: 0, spa: 0x5000, pages: 1))))
        }
        #expect(!again.exhausted)
    }
}
