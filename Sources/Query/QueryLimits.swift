import Foundation

/// How long one query file may run (`query --timeout`); nil runs without a limit.
public struct QueryLimits: Sendable {
    public var timeout: Duration?

    public init(timeout: Duration? = .seconds(300)) { self.timeout = timeout }
}

/// Ctrl-C for queries: the command line's SIGINT handler raises it, and the running statement stops at
/// its next progress check.
public enum QueryInterrupt {
    nonisolated(unsafe) private static var flag: sig_atomic_t = 0

    /// Asks the running query to stop (safe to call from a signal handler).
    public static func raise() { flag = 1 }
    /// Whether a stop was asked for.
    public static var isRaised: Bool { flag != 0 }
}

/// What the progress handler checks: the deadline and the interrupt flag.
final class QueryWatch {
    private let deadline: ContinuousClock.Instant?
    private let timeout: Duration?
    private(set) var timedOut = false

    init(timeout: Duration?) {
        self.timeout = timeout
        deadline = timeout.map { ContinuousClock.now + $0 }
    }

    var shouldStop: Bool {
        if QueryInterrupt.isRaised { return true }
        if let deadline, ContinuousClock.now >= deadline {
            timedOut = true
            return true
        }
        return false
    }

    var timeoutText: String { timeout.map { "\($0)" } ?? "" }
}
