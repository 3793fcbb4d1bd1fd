import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reads, checks, decompresses and decodes the chunks of a trace one ahead of their consumer, on a thread
/// of its own: while the analyzer or a query works on chunk N, the second core decodes chunk N + 1. At
/// most ``depth`` decoded chunks wait, so memory stays bounded; chunks come in order, and an error (a
/// corrupt or truncated chunk) comes exactly where a plain read would have met it, after every chunk
/// before it.
///
/// The reader belongs to the prefetcher's thread from ``init(reader:chunks:lower:upper:)`` until
/// ``stop()`` or the prefetcher's release: its consumer must not use the reader in between.
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

    /// What the thread holds (not the prefetcher itself, whose release stops the thread).
    private let worker: Worker

    /// Starts decoding `chunks`, leaving out those that end before event `lower` and stopping at the
    /// first that starts after event `upper`.
    public init(reader: TraceReader, chunks: Chunks, lower: UInt64 = 0, upper: UInt64 = .max) {
        let worker = Worker(reader: reader, chunks: chunks, lower: lower, upper: upper)
        self.worker = worker
        let t = Thread { worker.run() }
        t.name = "sev-trace decoder"
        t.start()
    }

    deinit { worker.stop() }

    /// The next chunk and its events, in order; nil after the last. Throws what reading the chunk threw.
    public func next() throws(TraceError) -> (info: ChunkInfo, events: [TraceEvent])? { try worker.next() }

    public func stop() { worker.stop() }
}

/// The prefetcher's thread and what it hands over.
///
/// `@unchecked Sendable`: the reader is used by the thread only while it runs, and every other field is
/// read and written under `condition`.
private final class Worker: @unchecked Sendable {
    private let reader: TraceReader
    private let condition = NSCondition()
    private var ready: [Result<(ChunkInfo, [TraceEvent]), TraceError>] = []
    /// The consumer wants no more chunks.
    private var stopping = false
    /// The thread has ended (past the last chunk, at an error, or stopped): nothing more will come.
    private var ended = false

    private let chunks: ChunkPrefetcher.Chunks
    private let lower: UInt64
    private let upper: UInt64

    init(reader: TraceReader, chunks: ChunkPrefetcher.Chunks, lower: UInt64, upper: UInt64) {
        (self.reader, self.chunks, self.lower, self.upper) = (reader, chunks, lower, upper)
    }

    /// No thread could be started: ``next()`` decodes each chunk itself.
    var runInline = false
    /// Where an inline run stands: the next position in `chunks`.
    private var position = 0

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

    /// Reads and decodes the next chunk the run takes; nil past the last. A damaged header is an error
    /// after the chunks before it, as a plain read meets it.
    private func step() -> Result<(ChunkInfo, [TraceEvent]), TraceError>? {
        while true {
            let info: ChunkInfo?
            do throws(TraceError) {
                switch chunks {
                case .following(let first): info = try reader.chunkInfo(first + position)
                case .listed(let list): info = position < list.count ? try reader.chunkInfo(list[position]) : nil
                }
            } catch {
                return .failure(error)
            }
            position += 1
            guard let info, info.firstSeq <= upper else { return nil }
            if info.lastSeq < lower { continue }
            do throws(TraceError) { return .success((info, try reader.events(of: info))) } catch { return .failure(error) }
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
