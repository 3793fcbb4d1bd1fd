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
    /// Runs already written, emptied with their storage kept: the simulation fills them again, so no run
    /// costs a fresh allocation (and its page faults) on one thread and a free on the other.
    private var spare: [[TraceEvent]] = []
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

    /// Hands over a run of events, waiting while the queue is full; `run` comes back empty, with the
    /// storage of a run already written when there is one.
    func submit(_ run: inout [TraceEvent]) {
        condition.lock()
        while queue.count >= Self.depth { condition.wait() }
        queue.append(run)
        run = spare.popLast() ?? []
        condition.broadcast()
        condition.unlock()
        if run.capacity < Self.runSize { run.reserveCapacity(Self.runSize) }
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
            var events = queue.removeFirst()
            condition.broadcast()
            condition.unlock()
            events.withUnsafeBufferPointer { run in
                for i in run.indices {
                    // The two common events are taken where they lie, not copied out as EventBodies.
                    if case .memoryAccess(let a) = run[i].body {
                        writer.record(cycle: run[i].cycle, access: a)
                    } else if case .registerOp(let r) = run[i].body {
                        writer.record(cycle: run[i].cycle, registerOp: r)
                    } else {
                        writer.record(cycle: run[i].cycle, run[i].body)
                    }
                }
            }
            events.removeAll(keepingCapacity: true)
            let size = writer.fileSize
            condition.lock()
            written = size
            if spare.count < Self.depth { spare.append(events) }
            condition.unlock()
        }
    }
}
