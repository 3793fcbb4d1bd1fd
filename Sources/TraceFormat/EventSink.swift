/// Receives the events a simulation produces, in order.
public protocol EventSink: AnyObject {
    /// Takes one event that happened at simulated `cycle` (handed over, so a sink that keeps it need not
    /// copy it).
    func record(cycle: UInt64, _ body: __owned EventBody)
    /// Why the simulation should stop now (a limit of the recording was reached), or nil. The machine
    /// asks every few thousand events.
    var stopRequest: String? { get }
}

extension EventSink {
    public var stopRequest: String? { nil }
}

/// A sink that keeps nothing but a count: the baseline for measuring what recording costs.
public final class CountingSink: EventSink {
    /// Events received so far.
    public private(set) var count: UInt64 = 0

    public init() {}

    public func record(cycle: UInt64, _ body: __owned EventBody) { count += 1 }
}

/// A sink that keeps every event in memory. For tests and small scenarios only.
public final class CollectingSink: EventSink {
    /// The events received so far, numbered from 0.
    public private(set) var events: [TraceEvent] = []

    public init() {}

    public func record(cycle: UInt64, _ body: __owned EventBody) {
        events.append(TraceEvent(seq: UInt64(events.count), cycle: cycle, body: body))
    }
}
