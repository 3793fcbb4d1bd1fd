import Foundation

/// Encodes, indexes, compresses and writes a recording on a thread of its own, so that the simulation's
/// thread only simulates and collects events: the second core does the rest. Events arrive in runs
/// through a queue of at most ``depth`` runs: the simulation waits when it is full, so memory stays
/// bounded. Runs are handled in the order they came, by the writer's single-threaded `record`, so
/// chunk boundaries and the files are exactly the same bytes as a recording on one thread.
///
/// `@unchecked Sendable`: the writer is used by the pipeline's thread only, until ``close()`` returns;
/// every other field is read and written under `condition`.
final class RecordingPipeline: @unchecked Sendable {
    /// Events per run handed over.
    static let runSize = 1 << 14
    /// Runs waiting at most.
    static let depth = 4

    private let writer: TraceWriter
    private let condition = NSCondition()
    private var queue: [[TraceEvent]] = []
    private var closed = false
    private var finished = false
    private var written: UInt64 = 0

    init(writer: TraceWriter) {
        self.writer = writer
        written = writer.fileSize
        let t = Thread { [self] in run() }
        t.name = "sev-trace recorder"
        t.start()
    }

    /// Hands over a run of events, waiting while the queue is full.
    func submit(_ run: [TraceEvent]) {
        condition.lock()
        while queue.count >= Self.depth { condition.wait() }
        queue.append(run)
        condition.broadcast()
        condition.unlock()
    }

    /// The size of `events.zst` so far (lagging by the runs in flight).
    var fileSize: UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return written
    }

    /// Waits until every run handed over is written; the writer is the caller's again.
    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty && !closed { condition.wait() }
            if queue.isEmpty {
                finished = true
                condition.broadcast()
                condition.unlock()
                return
            }
            let events = queue.removeFirst()
            condition.broadcast()
            condition.unlock()
            for e in events { writer.record(cycle: e.cycle, e.body) }
            let size = writer.fileSize
            condition.lock()
            written = size
            condition.unlock()
        }
    }
}
