import Foundation

/// Records a simulation into a bundle: the chunk writer and the index builder behind one sink.
public final class TraceRecorder: EventSink {
    public let bundle: TraceBundle
    private let writer: TraceWriter
    private let index: IndexBuilder

    /// Creates the bundle at `path` (replacing an old bundle) and writes the header.
    public init(path: String, header: TraceHeader) throws {
        bundle = try TraceBundle.create(at: path)
        do {
            index = try IndexBuilder(path: bundle.indexPath + ".tmp")
            writer = try TraceWriter(path: bundle.eventsPath, header: header, observer: index)
        } catch {
            bundle.remove()
            throw error
        }
    }

    public func record(cycle: UInt64, _ body: EventBody) { writer.record(cycle: cycle, body) }

    /// Events recorded so far.
    public var eventCount: UInt64 { writer.eventCount }

    /// Writes the last chunk and the index. On failure the bundle is removed.
    public func finish() throws -> (events: UInt64, chunks: Int, bytes: UInt64) {
        do {
            let result = try writer.finish()
            try index.finish(header: writer.header, eventCount: result.events, chunkCount: result.chunks,
                             eventsBytes: result.bytes)
            try FileManager.default.moveItem(atPath: bundle.indexPath + ".tmp", toPath: bundle.indexPath)
            return result
        } catch {
            bundle.remove()
            throw error
        }
    }
}
