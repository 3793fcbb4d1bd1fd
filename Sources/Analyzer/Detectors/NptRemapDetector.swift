import TraceFormat

/// NPT_REMAP: the hypervisor remapped a launched guest's page onto a frame that belongs to another VM
/// (critical: the guest now reads and writes another guest's memory, SEVered/CrossLine), or onto a frame
/// the guest already maps at another address (high: two guest addresses, one page); or gave a launched
/// guest's frame to another VM. A page mapped back where it belongs is not reported.
final class NptRemapDetector: ContextDetector, EventDetector {
    static let detector = Detector.nptRemap

    /// A remap of `n.pages` guest pages at `n.gpa` onto `n.spa`.
    func remap(_ n: NPTChange, seq: UInt64, table: inout LabelTable) {
        let frame = n.spa >> 12
        guard let owner = context.mappings.first(containing: frame) else { return }
        guard context.isLaunched(n.vm) || (owner.vm != n.vm && context.isLaunched(owner.vm)) else { return }
        let ownerGPA = (frame - owner.spaPage + owner.gpaPage) << 12
        let severity: Severity
        let what: String
        if owner.vm != n.vm {
            severity = .critical
            what = "onto the frame of \(context.name(owner.vm))'s gpa 0x\(String(ownerGPA, radix: 16))"
        } else if ownerGPA != n.gpa {
            severity = .high
            what = "onto the frame it already maps at gpa 0x\(String(ownerGPA, radix: 16)): two guest addresses, one page"
        } else {
            return
        }
        let (set, _) = context.shadow.read(n.spa, size: 4096, table: &table)
        context.collector.add(Finding(
            detector: Self.detector.rawValue, severity: severity, vm: n.vm, asid: context.vmASID[n.vm] ?? 0, actor: "hv",
            sourceSeq: owner.seq, sinkSeq: seq, sinkLastSeq: seq, sourceSPA: n.spa, sinkSPA: n.spa, sinkGPA: n.gpa,
            length: 4096 * n.pages, labels: table.names(set, vmNames: context.vmNames), preview: "",
            summary: "the hypervisor remapped gpa 0x\(String(n.gpa, radix: 16)) of \(context.name(n.vm)) \(what)"))
    }
}
