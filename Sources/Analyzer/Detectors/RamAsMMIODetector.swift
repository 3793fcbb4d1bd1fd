import TraceFormat

/// RAM_AS_MMIO (medium): a guest's access to its own RAM exited as MMIO — an NPF with the reserved-bit
/// error code KVM's MMIO entries give — so the hypervisor removed the memory behind it (a deleted
/// memslot): it sees the guest's stores there and answers its loads. Once per page.
final class RamAsMMIODetector: ContextDetector, EventDetector {
    static let detector = Detector.ramAsMMIO
    static let hooks: EventHooks = [.vmExit]
    /// Guest pages (VM << 48 | page) already reported.
    private var pages: Set<UInt64> = []

    func vmExit(_ x: VMExit, seq: UInt64) {
        guard x.exitCode == VMExit.npf, x.exitInfo1 & 0x8 != 0, let ram = context.vmMemory[x.vm] else { return }
        let gpa = context.faultAddress(x)
        guard gpa < ram, pages.insert(UInt64(x.vm) << 48 | gpa >> 12).inserted else { return }
        context.report(.ramAsMMIO, .medium, vm: x.vm, asid: context.vmASID[x.vm] ?? 0, actor: "hv", sourceSeq: seq, sinkSeq: seq,
                       sinkGPA: gpa,
                       summary: "\(context.name(x.vm))'s \(x.exitInfo1 & 0x2 != 0 ? "store to" : "load from") its own RAM at gpa 0x\(String(gpa, radix: 16)) exited as MMIO: the hypervisor removed the memory behind it and now sees its stores and answers its loads",
                       flow: Analyzer.flow([(seq, .sink)]))
    }
}
