import TraceFormat

/// PAGE_FAULT_TRACKING (medium): the hypervisor took pages of a launched SEV guest out of its nested page
/// table and the guest faulted on them: each fault tells the hypervisor which page the guest touched,
/// and when (Hetzelt & Buhren's side channel; SEVered finds its target page so). One finding per
/// unmapping, counting its faults.
final class PageFaultTrackingDetector: ContextDetector, EventDetector {
    static let detector = Detector.pageFaultTracking
    static let hooks: EventHooks = [.vmExit, .nptChange]
    /// Guest pages (VM << 48 | page) out of the nested page table, with the change that took them out.
    private var unmapped: [UInt64: UInt64] = [:]
    /// The finding of each unmapping (by its seq), extended by later faults.
    private var findings: [UInt64: Int] = [:]

    func nptChange(_ n: NPTChange, seq: UInt64) {
        guard n.op == .unmap, context.isLaunched(n.vm), context.vmASID[n.vm] != nil else { return }
        for p in 0..<n.pages { unmapped[UInt64(n.vm) << 48 | (n.gpa >> 12 + p)] = seq }
    }

    func vmExit(_ x: VMExit, seq: UInt64) {
        // A fault on a page the hypervisor took out (not the MMIO kind): it now knows the guest touched it.
        guard x.exitCode == VMExit.npf, x.exitInfo1 & 0x8 == 0 else { return }
        let gpa = context.faultAddress(x)
        guard let unmapSeq = unmapped.removeValue(forKey: UInt64(x.vm) << 48 | gpa >> 12) else { return }
        if let open = findings[unmapSeq] {
            context.collector.repeatFinding(open, seq: seq, bytes: 4096)
            return
        }
        let page = gpa & ~0xFFF
        findings[unmapSeq] = context.report(
            .pageFaultTracking, .medium, vm: x.vm, asid: context.vmASID[x.vm] ?? 0, actor: "hv", sourceSeq: unmapSeq, sinkSeq: seq,
            sinkGPA: page, length: 4096,
            summary: "\(context.name(x.vm)) faulted on gpa 0x\(String(page, radix: 16)) after the hypervisor took it out of the nested page table (#\(unmapSeq)): each such fault tells the hypervisor which page the guest touched, and when",
            flow: Analyzer.flow([(unmapSeq, .source), (seq, .sink)]))
    }
}
