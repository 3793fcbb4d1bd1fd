import Foundation

/// Reads, checks, decompresses and decodes the chunks of a trace ahead of their consumer, on threads of
/// its own: while the analyzer or a query works on chunk N, the second core decodes chunk N + 1 (or,
/// with two decoders, both cores decode N + 1 and N + 2 for a consumer with little to do). Each decoder
/// has at most ``depth`` decoded chunks waiting, so memory stays bounded; chunks come in order, and an
/// error (a corrupt or truncated chunk) comes exactly where a plain read would have met it, after every
/// chunk before it.
///
/// The decoders share the reader's chunk table (it is locked) and decompress with contexts of their own;
/// the consumer should still leave the reader alone from ``init(reader:chunks:lower:upper:keep:decoders:)``
/// until ``stop()`` or the prefetcher's release.
public final class ChunkPrefetcher {
    /// Decoded chunks waiting at most.
    public static let depth = 1

    /// Whether prefetchers may start a thread. A library that its host may unload (the SQLite extension:
    /// a connection's close unmaps it) turns this off, so that no thread it started, nor any the runtime
    /// starts for one, outlives its code; chunks are then decoded on the caller's thread as it asks.
    nonisolated(unsafe) public static var threaded = true

    /// Which chunks to decode, in this order.
    public enum Chunks: Sendable {
        /// Chunk `index` and every one after it.
        case following(Int)
        /// These chunks (ascending).
        case listed([Int])
    }

    /// What the threads hold (not the prefetcher itself, whose release stops them), in the order they
    /// take chunks: worker k decodes the k-th chunk of every `workers.count`.
    private let workers: [Worker]
    /// The worker whose chunk comes next.
    private var turn = 0

    /// Starts decoding `chunks`, leaving out those that end before event `lower` and stopping at the
    /// first that starts after event `upper`.
    /// - Parameters:
    ///   - keep: decode every event but hand over only those it accepts (filtered where the chunk is
    ///     decoded, so a selective scan leaves its consumer little to do).
    ///   - decoders: threads decoding chunks in turn (each with one chunk waiting at most): 2 lets a
    ///     consumer with little to do per chunk (a selective scan) have both cores decode for it.
    public init(reader: TraceReader, chunks: Chunks, lower: UInt64 = 0, upper: UInt64 = .max, keep: (() -> EventFilter)? = nil,
                decoders: Int = 1) {
        let count = Self.threaded ? max(1, min(decoders, 4)) : 1
        workers = (0..<count).map {
            Worker(reader: reader, chunks: chunks, phase: $0, stride: count, lower: lower, upper: upper, keep: keep?())
        }
        guard Self.threaded else {
            workers[0].runInline = true
            return
        }
        for worker in workers {
            let t = Thread { worker.run() }
            t.name = "sev-trace decoder"
            t.start()
        }
    }

    deinit { stop() }

    /// The next chunk and its events, in order; nil after the last. Throws what reading the chunk threw.
    public func next() throws(TraceError) -> (info: ChunkInfo, events: [TraceEvent])? {
        let worker = workers[turn % workers.count]
        turn += 1
        return try worker.next()
    }

    /// Gives back the events of the chunk ``next()`` returned last, once the consumer is done with them:
    /// the thread that decoded them frees them and reuses their storage for a later chunk (no fresh
    /// memory to map and fault in for every chunk, no freeing across threads). `events` is left empty.
    public func recycle(_ events: inout [TraceEvent]) {
        let spent = events
        events = []
        workers[(turn + workers.count - 1) % workers.count].recycle(spent)
    }

    public func stop() { for w in workers { w.stop() } }
}

/// One decoding thread and what it hands over.
///
/// `@unchecked Sendable`: the thread uses the reader's locked chunk table, `pread` and its own
/// decompressor and filter; every other field is read and written under `condition`.
private final class Worker: @unchecked Sendable {
    private let reader: TraceReader
    private let decompressor = ZstdDecompressor()
    private let condition = NSCondition()
    private var ready: [Result<(ChunkInfo, [TraceEvent]), TraceError>] = []
    /// Events the consumer gave back: the next chunk is decoded into their storage.
    private var spent: [TraceEvent]?
    /// The consumer wants no more chunks.
    private var stopping = false
    /// The thread has ended (past the last chunk, at an error, or stopped): nothing more will come.
    private var ended = false

    private let chunks: ChunkPrefetcher.Chunks
    private let lower: UInt64
    private let upper: UInt64
    private let keep: EventFilter?
    /// Every `stride`-th position in `chunks` from `phase` is this worker's.
    private let stride: Int

    init(reader: TraceReader, chunks: ChunkPrefetcher.Chunks, phase: Int, stride: Int, lower: UInt64, upper: UInt64,
         keep: EventFilter?) {
        (self.reader, self.chunks, self.position, self.stride, self.lower, self.upper, self.keep) =
            (reader, chunks, phase, stride, lower, upper, keep)
    }

    /// No thread may be started: ``next()`` decodes each chunk itself.
    var runInline = false
    /// The next position in `chunks` this worker reads.
    private var position: Int

    func next() throws(TraceError) -> (info: ChunkInfo, events: [TraceEvent])? {
        if runInline {
            guard !ended else { return nil }
            if let item = step() {
                if case .failure = item { ended = true }
                return try item.get()
            }
            ended = true
            return nil
        }
        condition.lock()
        while ready.isEmpty && !ended { condition.wait() }
        guard !ready.isEmpty else {
            condition.unlock()
            return nil
        }
        let item = ready.removeFirst()
        condition.broadcast()
        condition.unlock()
        switch item {
        case .success(let chunk): return chunk
        case .failure(let error): throw error
        }
    }

    func recycle(_ events: [TraceEvent]) {
        guard !runInline else { return }
        condition.lock()
        if spent == nil { spent = events }
        condition.unlock()
    }

    func stop() {
        guard !runInline else { return }
        condition.lock()
        stopping = true
        condition.broadcast()
        while !ended { condition.wait() }
        condition.unlock()
    }

    func run() {
        while let item = step(), deliver(item), case .success = item {}
        condition.lock()
        ended = true
        condition.broadcast()
        condition.unlock()
    }

    /// Reads and decodes this worker's next chunk; nil past the last. A damaged header is an error after
    /// the chunks before it, as a plain read meets it. A chunk that ends before `lower` is handed over
    /// empty, so the workers' turns stay in step.
    private func step() -> Result<(ChunkInfo, [TraceEvent]), TraceError>? {
        let info: ChunkInfo?
        do throws(TraceError) {
            switch chunks {
            case .following(let first): info = try reader.chunkInfo(first + position)
            case .listed(let list): info = position < list.count ? try reader.chunkInfo(list[position]) : nil
            }
        } catch {
            return .failure(error)
        }
        position += stride
        guard let info, info.firstSeq <= upper else { return nil }
        if info.lastSeq < lower { return .success((info, [])) }
        condition.lock()
        var events = spent ?? []
        spent = nil
        condition.unlock()
        do throws(TraceError) {
            try reader.events(of: info, keep: keep, decompressor: decompressor, into: &events)
            return .success((info, events))
        } catch {
            return .failure(error)
        }
    }

    /// Hands `item` to the consumer, waiting for room; false when the consumer stopped.
    private func deliver(_ item: Result<(ChunkInfo, [TraceEvent]), TraceError>) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while ready.count >= ChunkPrefetcher.depth && !stopping { condition.wait() }
        guard !stopping else { return false }
        ready.append(item)
        condition.broadcast()
        return true
    }
}
