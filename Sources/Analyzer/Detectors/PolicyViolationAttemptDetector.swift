import TraceFormat

/// POLICY_VIOLATION_ATTEMPT (medium): the firmware enforced the guest owner's policy against the
/// hypervisor — NODBG (DBG_DECRYPT/ENCRYPT), NOSEND (SEND_START), NOKS (LAUNCH_START asking for another
/// guest's key), or SEND_START's DOMAIN/SEV checks of the target. A refusal because the platform lacks
/// what the policy requires (SEV-ES not enabled at INIT, a firmware older than the policy's minimum API
/// version) is nobody's attempt and is not reported; psp_commands shows it.
final class PolicyViolationAttemptDetector: ContextDetector, EventDetector {
    static let detector = Detector.policyViolationAttempt
    static let hooks: EventHooks = [.pspCommand]
    /// The most guest policies remembered (a platform has at most 509 SEV ASIDs; a hostile trace may
    /// start guests without end).
    static let maxTrackedGuests = 1 << 16
    /// Each guest's policy, by (platform << 32 | handle), from its LAUNCH_START or RECEIVE_START.
    private var policies: [UInt64: UInt32] = [:]

    func pspCommand(_ p: PSPCommand, seq: UInt64) {
        let key = Self.handleKey(p)
        let start = p.command == SEVCommand.launchStart.rawValue || p.command == SEVCommand.receiveStart.rawValue
        if start && p.status == SEVStatus.success.rawValue && (policies.count < Self.maxTrackedGuests || policies[key] != nil) {
            policies[key] = p.data(as: SEVData.LaunchStart.self).policy
        }
        guard p.status == SEVStatus.policyFailure.rawValue else { return }
        let why: String
        switch SEVCommand(rawValue: p.command) {
        case .dbgDecrypt, .dbgEncrypt: why = "NODBG"
        case .sendStart:
            why = (policies[key] ?? 0) & 0x8 != 0 ? "NOSEND" : "DOMAIN/SEV: the target platform failed the check"
        case .launchStart, .receiveStart:
            let d = p.data(as: SEVData.LaunchStart.self)
            let policy = d.policy
            let sharedFrom = p.command == SEVCommand.launchStart.rawValue ? d.handle : 0
            let otherPolicy = policies[UInt64(p.platform) << 32 | UInt64(sharedFrom)] ?? 0
            // Otherwise SEV-ES not enabled at INIT, or a firmware older than the policy's minimum.
            guard sharedFrom != 0 && (policy | otherPolicy) & 0x2 != 0 else { return }
            why = "NOKS: a new guest asked for the key of guest handle \(sharedFrom)"
        default: why = "policy"
        }
        // LAUNCH_START names the guest whose key a new guest wanted to share, not the new guest.
        let vm = start ? MemoryAccess.noVM : context.handleVM[key] ?? MemoryAccess.noVM
        let name = start ? "a new guest" : vm == MemoryAccess.noVM ? "a guest" : context.name(vm)
        context.report(.policyViolationAttempt, .medium, vm: vm, asid: p.asid, actor: "hv", sourceSeq: seq, sinkSeq: seq,
                       summary: "\(SEVCommand.name(of: p.command)) for \(name) was refused by its policy (POLICY_FAILURE: \(why))")
    }
}
