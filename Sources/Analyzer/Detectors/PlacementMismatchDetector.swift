import TraceFormat

/// PLACEMENT_MISMATCH (high): the owner accepted a launch's measurement, but the blocks LAUNCH_UPDATE_DATA
/// measured do not lie at the guest physical addresses she expects, or the guest's first instruction is
/// not at her entry point. The digest covers the blocks' contents in order, not where they were loaded
/// (undeSErVed trust).
final class PlacementMismatchDetector: ContextDetector, EventDetector {
    static let detector = Detector.placementMismatch
    static let hooks: EventHooks = [.pspCommand, .ownerCheck, .fetch]
    /// The blocks each VM's launch measured, in order: system physical address, length and event.
    private var measured: [UInt16: [(spa: UInt64, length: UInt64, seq: UInt64)]] = [:]
    /// The entry point the owner of each accepted launch expects, until the VM's first instruction.
    private var expectedEntries: [UInt16: (entry: UInt64, seq: UInt64)] = [:]

    func pspCommand(_ p: PSPCommand, seq: UInt64) {
        guard p.command == SEVCommand.launchUpdateData.rawValue, p.status == SEVStatus.success.rawValue,
              let vm = context.handleVM[Self.handleKey(p)] else { return }
        // The firmware's address is a system physical address, maybe with the C-bit set (SME).
        let cbit = UInt64(context.platformCbit[p.platform] ?? 63)
        let d = p.data(as: SEVData.LaunchUpdateData.self)
        let address = d.address & ~(1 << cbit)
        // Bounded as an owner's image is (TraceLimits.maxImageRegions): a hostile trace cannot grow it.
        if measured[vm, default: []].count < TraceLimits.maxImageRegions {
            measured[vm, default: []].append((UInt64(p.platform) << 40 | address, UInt64(d.length), seq))
        }
    }

    func ownerCheck(_ o: OwnerCheck, seq: UInt64) {
        guard o.accepted else { return }
        expectedEntries[o.vm] = (o.entry, seq)
        let blocks = measured.removeValue(forKey: o.vm) ?? []
        for i in 0..<max(blocks.count, o.regions.count) {
            let expected = i < o.regions.count ? o.regions[i] : nil
            let got = i < blocks.count ? blocks[i] : nil
            let gpa = got.flatMap { context.homeGPA(of: $0.spa) }
            if let expected, let got, let gpa, gpa == expected.gpa, got.length == expected.length { continue }
            let block = "block \(i + 1) of the measured image"
            let what: String
            switch (expected, got, gpa) {
            case (let e?, _?, let g?):
                what = "\(block) (\(e.length) bytes) was loaded at gpa 0x\(String(g, radix: 16)); the owner expects it at 0x\(String(e.gpa, radix: 16))"
            case (_, let m?, _) where expected == nil:
                what = "\(block) (\(m.length) bytes) is one the owner does not expect"
            case (let e?, nil, _):
                what = "\(block) (\(e.length) bytes at gpa 0x\(String(e.gpa, radix: 16))) was never measured"
            default:
                what = "\(block) was measured outside the guest's memory"
            }
            report(vm: o.vm, seq: seq, sourceSeq: got?.seq ?? seq, what: what)
            return
        }
    }

    func fetch(_ a: MemoryAccess, vm: UInt16, seq: UInt64) {
        guard !expectedEntries.isEmpty, let expected = expectedEntries.removeValue(forKey: vm), a.gpa != expected.entry else { return }
        report(vm: vm, seq: seq, sourceSeq: expected.seq,
               what: "started at gpa 0x\(String(a.gpa, radix: 16)); the owner expects the entry point at 0x\(String(expected.entry, radix: 16))")
    }

    private func report(vm: UInt16, seq: UInt64, sourceSeq: UInt64, what: String) {
        context.report(.placementMismatch, .high, vm: vm, asid: context.vmASID[vm] ?? 0, actor: "hv", sourceSeq: sourceSeq, sinkSeq: seq,
                       summary: "the owner accepted \(context.name(vm))'s measurement, but \(what): the measurement does not cover placement",
                       flow: Analyzer.flow([(sourceSeq, .source), (seq, .sink)]))
    }
}
