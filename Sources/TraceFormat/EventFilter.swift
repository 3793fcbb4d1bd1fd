/// A test events pass or fail, applied where chunks are decoded (``TraceReader/events(of:keep:)``,
/// ``ChunkPrefetcher``) so that a selective reader never copies the events it would drop. A class: it
/// may keep what it learnt from the events before (the last actor's name) to decide the next one
/// faster; it is used by one thread at a time.
open class EventFilter: @unchecked Sendable {
    public init() {}

    /// Whether `body` is kept.
    open func accepts(_ body: EventBody) -> Bool { true }
}
