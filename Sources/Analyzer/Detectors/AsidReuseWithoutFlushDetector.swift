import TraceFormat

/// ASID_REUSE_WITHOUT_FLUSH (medium): the hypervisor tried to give a deactivated ASID to another guest
/// before DF_FLUSH (ACTIVATE answered DFFLUSH_REQUIRED), or to DF_FLUSH before WBINVD on every core
/// (WBINVD_REQUIRED): the old guest's dirty lines may still be cached under that key.
final class AsidReuseWithoutFlushDetector: ContextDetector, EventDetector {
    static let detector = Detector.asidReuseWithoutFlush
    static let hooks: EventHooks = [.pspCommand]

    func pspCommand(_ p: PSPCommand, seq: UInt64) {
        let activate = p.command == SEVCommand.activate.rawValue
        guard (activate && p.status == SEVStatus.dfflushRequired.rawValue)
            || (p.command == SEVCommand.dfFlush.rawValue && p.status == SEVStatus.wbinvdRequired.rawValue) else { return }
        let what = activate
            ? "ACTIVATE of ASID \(p.asid) before DF_FLUSH (DFFLUSH_REQUIRED): its old guest's lines may still be cached"
            : "DF_FLUSH before WBINVD on every core (WBINVD_REQUIRED): a deactivated guest's dirty lines may still be cached"
        context.report(.asidReuseWithoutFlush, .medium, vm: context.handleVM[Self.handleKey(p)] ?? MemoryAccess.noVM,
                       asid: p.asid, actor: "hv", sourceSeq: seq, sinkSeq: seq, summary: "the hypervisor tried \(what)",
                       flow: [FlowStep(seq: seq, role: .sink)])
    }
}
