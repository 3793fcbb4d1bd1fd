import TraceFormat

/// UNMEASURED_EXECUTION (high): a launched guest fetched an instruction (C=1) from bytes the launch
/// measurement does not cover, or that changed since they were measured; or measured code at another
/// guest address than the launch put it (the measurement covers contents, not placement: undeSErVed
/// trust).
final class UnmeasuredExecutionDetector: ContextDetector, AccessDetector {
    static let detector = Detector.unmeasuredExecution
    static let hooks: EventHooks = [.fetch]

    func fetch(_ a: MemoryAccess, vm: UInt16, seq: UInt64) {
        guard a.cbit && context.isLaunched(vm) else { return }
        if context.shadow.isMeasured(a.spa, size: Int(a.size)) {
            guard let home = context.homeGPA(of: a.spa), home >> 12 != a.gpa >> 12 else { return }
        }
        context.reportAccess(Self.detector, .high, a, seq: seq, sourceSeq: seq, sourceSPA: a.spa, plaintext: false,
                             summary: Self.summary)
    }

    static func summary(_ f: Finding, _ w: FindingCollector.SummaryWords) -> String {
        "\(f.actor) executed \(f.length) bytes at \(w.at) that the launch measurement does not cover"
    }
}
