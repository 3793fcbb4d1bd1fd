import TraceFormat

/// CBIT_POSITION_LIE (high): the EBX that KVM writes back for an SEV guest's CPUID 0x8000001F names
/// another C-bit position than the processor's: the guest builds mappings with a bit that does not
/// encrypt.
final class CbitPositionLieDetector: ContextDetector, EventDetector {
    static let detector = Detector.cbitPositionLie
    static let hooks: EventHooks = [.vmExit, .registerOp]
    /// vCPUs (vm << 16 | vcpu) whose last exit was CPUID 0x8000001F: KVM's next writes are the answer.
    private var pending: Set<UInt32> = []

    func vmExit(_ x: VMExit, seq: UInt64) {
        if x.exitCode == VMExit.cpuid, x.registers.first == 0x8000_001F { pending.insert(UInt32(x.vm) << 16 | UInt32(x.vcpu)) }
    }

    func registerOp(_ r: RegisterOp, seq: UInt64) {
        guard !pending.isEmpty, r.dst == 3, r.op == .loadImmediate, pending.remove(UInt32(r.vm) << 16 | UInt32(r.vcpu)) != nil,
              let platform = context.vmPlatform[r.vm], let cbit = context.platformCbit[platform], context.vmASID[r.vm] != nil,
              r.result & 0x3F != UInt64(cbit) else { return }
        context.report(.cbitPositionLie, .high, vm: r.vm, asid: context.vmASID[r.vm] ?? 0, actor: "hv", sourceSeq: seq, sinkSeq: seq,
                       summary: "the hypervisor told \(context.name(r.vm)) the C-bit is bit \(r.result & 0x3F); the processor's is bit \(cbit): memory the guest maps \"encrypted\" is not",
                       flow: Analyzer.flow([(seq, .sink)]))
    }
}
