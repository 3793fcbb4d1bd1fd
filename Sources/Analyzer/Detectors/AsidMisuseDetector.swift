import TraceFormat

/// ASID_MISUSE (critical): a VMRUN with SEV enabled whose VMCB carries an ASID bound to another guest, so
/// the VM runs under that guest's key (CrossLine). Guests that share a key on purpose are not reported.
/// Once per VM and ASID.
final class AsidMisuseDetector: ContextDetector, EventDetector {
    static let detector = Detector.asidMisuse
    static let hooks: EventHooks = [.vmRun]
    /// Misuses already reported, by VM and ASID.
    private var reported: Set<UInt32> = []

    func vmRun(_ r: VMRun, seq: UInt64) {
        guard r.sevEnabled, r.asid != context.vmASID[r.vm] else { return }
        let slot = UInt32(context.vmPlatform[r.vm] ?? 0) << 16 | UInt32(r.asid)
        guard let owner = context.asidToVM[slot], owner != r.vm, !context.sharedSlots.contains(slot),
              reported.insert(UInt32(r.vm) << 16 | UInt32(r.asid)).inserted else { return }
        let (name, ownerName) = (context.name(r.vm), context.name(owner))
        context.report(.asidMisuse, .critical, vm: r.vm, asid: r.asid, actor: "hv", sourceSeq: seq, sinkSeq: seq,
                       labels: "private:\(ownerName)",
                       summary: "VMRUN of \(name) with ASID \(r.asid), which belongs to \(ownerName): it runs under \(ownerName)'s key",
                       flow: [FlowStep(seq: seq, role: .sink)])
    }
}
