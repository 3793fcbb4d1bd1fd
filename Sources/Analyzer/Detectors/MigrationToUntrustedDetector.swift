import TraceFormat

/// MIGRATION_TO_UNTRUSTED: SEND_START succeeded under a policy that let the firmware skip checking the
/// target — neither DOMAIN (the same owner's platform) nor SEV (an AMD-endorsed one): medium, a forged
/// platform would get the guest; SEV alone: low, any AMD platform of any owner would.
final class MigrationToUntrustedDetector: ContextDetector, EventDetector {
    static let detector = Detector.migrationToUntrusted
    static let hooks: EventHooks = [.pspCommand]

    func pspCommand(_ p: PSPCommand, seq: UInt64) {
        guard p.command == SEVCommand.sendStart.rawValue, p.status == SEVStatus.success.rawValue else { return }
        // SEND_START returns the guest policy at offset 4 of its buffer.
        let policy = p.buffer.count >= 8 ? UInt32(p.buffer[4]) | UInt32(p.buffer[5]) << 8 : 0
        let domain = policy & 0x10 != 0, amd = policy & 0x20 != 0
        guard !domain else { return }
        let vm = context.handleVM[Self.handleKey(p)] ?? MemoryAccess.noVM
        let name = vm == MemoryAccess.noVM ? "a guest" : context.name(vm)
        context.report(.migrationToUntrusted, amd ? .low : .medium, vm: vm, asid: p.asid, actor: "hv", sourceSeq: seq, sinkSeq: seq,
                       summary: amd
                           ? "\(name) was sent to an AMD platform of any owner (policy SEV without DOMAIN)"
                           : "\(name) was sent without the firmware checking the target (policy has neither DOMAIN nor SEV): a forged platform would get it",
                       flow: [FlowStep(seq: seq, role: .sink)])
    }
}
