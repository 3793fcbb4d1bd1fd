import Foundation

/// Indexes, compresses and writes a recording on a thread of its own, so that the simulation's thread
/// only simulates and encodes: the second core does the rest. Work arrives as items (a run of events for
/// the index, or a chunk the simulation's thread encoded) through a queue of at most ``depth`` items: the
/// simulation waits when it is full, so memory stays bounded. Items are handled in the order they came,
/// with the calls a single thread makes, so the files are exactly the same bytes.
///
/// `@unchecked Sendable`: the writer and its observer are used by the pipeline's thread only, once started,
/// and every other field is read and written under `condition`.
final class RecordingPipeline: @unchecked Sendable {
    /// Events per run handed over for the index (a run ends early where a chunk ends).
    static let runSize = 1 << 14
    /// Items waiting at most.
    static let depth = 4

    enum Item {
        /// Events for the index, numbered from `firstSeq`.
        case events([(UInt64, EventBody)], firstSeq: UInt64)
        /// A chunk to compress and write; the events before it belong to it.
        case chunk(ChunkEncoder.RawChunk)
    }

    private let writer: TraceWriter
    private let condition = NSCondition()
    private var queue: [Item] = []
    private var closed = false
    private var finished = false
    private var written: UInt64 = 0
    /// The chunk the next indexed events belong to (the pipeline's thread only).
    private var chunkIndex = 0

    init(writer: TraceWriter) {
        self.writer = writer
        written = writer.fileSize
        let t = Thread { [self] in run() }
        t.name = "sev-trace recorder"
        t.start()
    }

    /// Hands over an item, waiting while the queue is full.
    func submit(_ item: Item) {
        condition.lock()
        while queue.count >= Self.depth { condition.wait() }
        queue.append(item)
        condition.broadcast()
        condition.unlock()
    }

    /// The size of `events.zst` so far (lagging by the items in flight).
    var fileSize: UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return written
    }

    /// Waits until every item handed over is done.
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
            let item = queue.removeFirst()
            condition.broadcast()
            condition.unlock()
            switch item {
            case .events(let events, let first):
                if let observer = writer.observer {
                    for (i, (cycle, body)) in events.enumerated() {
                        observer.observe(seq: first + UInt64(i), chunk: chunkIndex, cycle: cycle, body)
                    }
                }
            case .chunk(let raw):
                writer.write(raw)
                chunkIndex += 1
                let size = writer.fileSize
                condition.lock()
                written = size
                condition.unlock()
            }
        }
    }
}
