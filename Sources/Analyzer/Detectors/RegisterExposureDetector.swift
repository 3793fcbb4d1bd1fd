import TraceFormat

/// REGISTER_EXPOSURE: at a #VMEXIT of a guest without SEV-ES every general-purpose register is in the
/// VMCB in the clear, so each register holding private-origin data is exposed to the hypervisor: high for
/// a declared secret, medium for other private data. Private-origin means the guest produced the data
/// while private (``Analyzer/RegisterTaint/known`` leaves out bytes the host knows already). RAX at an
/// OUT exit is the data the guest sends (the reason SEV guests unroll string I/O), not a leak. A register
/// that still holds the same labels at later exits extends its finding.
final class RegisterExposureDetector: ContextDetector, EventDetector {
    static let detector = Detector.registerExposure
    /// Open findings by VM, vCPU, register and label set: later exits extend them.
    private var exposures: [Exposure: Int] = [:]

    /// One register of one vCPU holding one set of labels at exits (plain values: hashed without
    /// building a string for every tainted register of every exit).
    private struct Exposure: Hashable {
        var vm: UInt16
        var vcpu: UInt16
        var register: UInt8
        var set: LabelTable.SetID
    }

    /// A #VMEXIT of the vCPU whose registers' taint is `file` (r0 first).
    func exit(_ x: VMExit, seq: UInt64, registers file: ArraySlice<Analyzer.RegisterTaint>, table: inout LabelTable) {
        let r0 = file.startIndex
        let portOutput = x.exitCode == VMExit.ioio && x.exitInfo1 & 0x5 == 0
        for r in 0..<min(16, x.registers.count) where file[r0 + r].isTainted && !(portOutput && r == 0) {
            let t = file[r0 + r]
            var set: LabelTable.SetID = 0
            for i in 0..<8 where t.bytes[i] != 0 { set = table.union(set, t.bytes[i]) }
            let key = Exposure(vm: x.vm, vcpu: x.vcpu, register: UInt8(r), set: set)
            if let open = exposures[key] {
                context.collector.repeatFinding(open, seq: seq, bytes: 8)
                continue
            }
            let secret = table.members(set).compactMap { l -> String? in if case .secret(let n) = l.kind { n } else { nil } }.first
            let value = x.registers[r]
            let preview = FindingCollector.hex((0..<8).map { UInt8(truncatingIfNeeded: value >> UInt64(8 * $0)) })
            let what = secret.map { "secret \($0)" } ?? "private data of \(context.name(x.vm))"
            exposures[key] = context.collector.add(Finding(
                detector: Self.detector.rawValue, severity: secret == nil ? .medium : .high, vm: x.vm,
                asid: context.vmASID[x.vm] ?? 0, actor: "vcpu\(x.vm).\(x.vcpu)", sourceSeq: t.origin, sinkSeq: seq, sinkLastSeq: seq,
                sourceSPA: t.loadSPA, sinkSPA: 0, sinkGPA: 0, length: 8, labels: table.names(set, vmNames: context.vmNames),
                preview: preview,
                summary: "r\(r) held \(what) at a #VMEXIT (\(VMExit.name(of: x.exitCode))): the hypervisor reads it in the VMCB",
                flow: Analyzer.flow([(t.origin, .source), (t.via, .write), (t.load, .load), (seq, .sink)])))
        }
    }
}
