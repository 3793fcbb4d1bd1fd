import Foundation

/// Records a simulation into an empty bundle directory (a ``StagedBundle``'s staging directory): the
/// chunk writer and the index builder behind one sink.
public final class TraceRecorder: EventSink {
    public let bundle: TraceBundle
    private let writer: TraceWriter
    private let index: IndexBuilder
    /// The most events and bytes of `events.zst` this recording may make.
    public let limits: RecordingLimits
    /// This thread collects events; encoding, the index, compression and writing happen on another
    /// (``RecordingPipeline``).
    private let pipeline: RecordingPipeline
    /// Events not yet handed over.
    private var run: [TraceEvent] = []
    /// Events recorded so far.
    public private(set) var eventCount: UInt64 = 0

    /// Writes the header of `events.zst` in `directory`.
    public init(directory: TraceBundle, header: TraceHeader, limits: RecordingLimits = RecordingLimits()) throws {
        bundle = directory
        self.limits = limits
        index = try IndexBuilder(path: bundle.indexPath + ".tmp")
        writer = try TraceWriter(path: bundle.eventsPath, header: header, observer: index)
        pipeline = RecordingPipeline(writer: writer)
        run.reserveCapacity(RecordingPipeline.runSize)
    }

    deinit {
        // A recording abandoned without finish (an error): let the thread end before the writer goes.
        pipeline.close()
    }

    public func record(cycle: UInt64, _ body: __owned EventBody) {
        run.append(TraceEvent(seq: eventCount, cycle: cycle, body: body))
        eventCount += 1
        if run.count >= RecordingPipeline.runSize { handOverRun() }
    }

    private func handOverRun() {
        guard !run.isEmpty else { return }
        pipeline.submit(&run)
    }

    /// Asks the simulation to stop once a recording limit is reached.
    public var stopRequest: String? {
        if eventCount > limits.maxEvents {
            return "the recording reached \(limits.maxEvents) events (raise the limit with --max-events)"
        }
        if pipeline.fileSize > limits.maxBytes {
            return "the recording reached \(limits.maxBytes) bytes of events.zst (raise the limit with --max-bytes)"
        }
        return nil
    }

    /// Writes the last chunk and the index.
    public func finish() throws -> (events: UInt64, chunks: Int, bytes: UInt64) {
        handOverRun()
        pipeline.close()
        let result = try writer.finish()
        try index.finish(header: writer.header, eventCount: result.events, chunkCount: result.chunks,
                         eventsBytes: result.bytes)
        try FileManager.default.moveItem(atPath: bundle.indexPath + ".tmp", toPath: bundle.indexPath)
        return result
    }
}

/// How much one recording may write before it stops with an error: a mistake in a scenario (a loop
/// that never halts, a huge repeat count) costs at most this much disk.
public struct RecordingLimits: Sendable {
    /// The most events (default 200 million, about 200 MB of a typical trace).
    public var maxEvents: UInt64
    /// The most bytes of `events.zst` (default 2 GiB).
    public var maxBytes: UInt64

    public init(maxEvents: UInt64 = 200_000_000, maxBytes: UInt64 = 2 << 30) {
        self.maxEvents = maxEvents
        self.maxBytes = maxBytes
    }
}
