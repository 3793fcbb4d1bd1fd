import TraceFormat

/// CBIT_ALIAS: a guest changed a page's C-bit while dirty cache lines of the page remained under the old
/// key (it did not flush first, as `set_memory_decrypted` does): their write-back will later overwrite
/// what is written under the new C-bit. High when the page holds a declared secret, else medium. Only
/// on platforms with a cache; the analyzer keeps the dirty lines.
final class CbitAliasDetector: ContextDetector, EventDetector {
    static let detector = Detector.cbitAlias

    /// A C-bit change of the page at `c.spa` that left `staleLines` dirty lines under the old key.
    func cbitChange(_ c: CbitChange, seq: UInt64, staleLines stale: Int, table: inout LabelTable) {
        let page = c.spa & ~0xFFF
        let (set, _) = context.shadow.read(page, size: 4096, table: &table)
        context.collector.add(Finding(
            detector: Self.detector.rawValue, severity: table.hasSecret(set) ? .high : .medium, vm: c.vm,
            asid: context.vmASID[c.vm] ?? 0, actor: "vcpu\(c.vm).\(c.vcpu)", sourceSeq: seq, sinkSeq: seq, sinkLastSeq: seq,
            sourceSPA: page, sinkSPA: page, sinkGPA: c.gpa, length: UInt64(stale) * 64,
            labels: table.names(set, vmNames: context.vmNames), preview: "",
            summary: "\(context.name(c.vm)) set gpa 0x\(String(c.gpa, radix: 16)) C=\(c.new ? 1 : 0) with \(stale) dirty line\(stale == 1 ? "" : "s") still cached under the old key (no flush): their write-back will overwrite the page",
            flow: [FlowStep(seq: seq, role: .sink)]))
    }
}
