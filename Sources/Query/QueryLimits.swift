import Foundation

/// How long one query file may run (`query --timeout`); nil runs without a limit.
public struct QueryLimits: Sendable {
    public var timeout: Duration?

    public init(timeout: Duration? = .seconds(300)) { self.timeout = timeout }
}

/// Ctrl-C for queries: the command line's SIGINT handler raises it, and the running statement stops at
/// its next progress check.
public enum QueryInterrupt {
    /// The flag, behind a pointer: a static `var` is an access the runtime tracks for exclusivity, and a
    /// signal arriving while the query thread reads it would be taken for a simultaneous modification
    /// (a trap, in a debug build). Storage read and written through a pointer is not tracked.
    nonisolated(unsafe) private static let flag: UnsafeMutablePointer<sig_atomic_t> = {
        let p = UnsafeMutablePointer<sig_atomic_t>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()

    /// Makes the flag before a signal handler may raise it (a handler must not allocate).
    public static func arm() { _ = flag }
    /// Asks the running query to stop (safe to call from a signal handler once ``arm()`` has run).
    public static func raise() { flag.pointee = 1 }
    /// Whether a stop was asked for.
    public static var isRaised: Bool { flag.pointee != 0 }
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
