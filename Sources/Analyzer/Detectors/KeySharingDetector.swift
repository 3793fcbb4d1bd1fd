import TraceFormat

/// KEY_SHARING (low): a second firmware handle activated on an ASID that another active guest uses: the
/// two guests share one memory-encryption key (what LAUNCH_START's key sharing does on purpose, and what
/// a hypervisor can do to guests whose policy does not forbid it with NOKS).
final class KeySharingDetector: ContextDetector, EventDetector {
    static let detector = Detector.keySharing
    static let hooks: EventHooks = [.pspCommand]

    func pspCommand(_ p: PSPCommand, seq: UInt64) {
        guard p.command == SEVCommand.activate.rawValue, p.status == SEVStatus.success.rawValue else { return }
        let slot = UInt32(p.platform) << 16 | UInt32(p.asid)
        guard let other = context.activeHandles[slot, default: []].first(where: { $0 != p.handle }) else { return }
        context.report(.keySharing, .low, vm: context.handleVM[Self.handleKey(p)] ?? MemoryAccess.noVM, asid: p.asid,
                       actor: "psp", sourceSeq: seq, sinkSeq: seq,
                       summary: "guest handle \(p.handle) was activated on ASID \(p.asid) beside handle \(other): they share one memory-encryption key")
    }
}
