/// Why a trace could not be written or read. Each case names the place, so that the message alone
/// tells a person where to look.
public enum TraceError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A file could not be opened, read or written.
    case io(path: String, reason: String)
    /// The file does not start with the trace magic.
    case notATrace(path: String)
    /// The trace was written by a format version this tool does not read.
    case unsupportedVersion(path: String, version: UInt16)
    /// The file header is damaged.
    case corruptHeader(path: String, reason: String)
    /// A chunk is damaged: its header, its checksum, its compressed frame or its events.
    case corruptChunk(chunk: Int, offset: UInt64, reason: String)
    /// The file ends inside a chunk (a recorder stopped mid-chunk): the chunks before it are whole.
    case truncatedChunk(chunk: Int, offset: UInt64)
    /// The bundle has no index, or the index does not describe this trace.
    case badIndex(path: String, reason: String)
    /// A sequence number beyond the end of the trace.
    case noSuchEvent(seq: UInt64, eventCount: UInt64)

    public var description: String {
        switch self {
        case .io(let path, let reason): "\(path): \(reason)"
        case .notATrace(let path): "\(path): not a sev-trace events file (bad magic)"
        case .unsupportedVersion(let path, let v): "\(path): trace format version \(v) is not supported by this tool (it reads version \(TraceHeader.formatVersion))"
        case .corruptHeader(let path, let reason): "\(path): corrupt file header: \(reason)"
        case .corruptChunk(let chunk, let offset, let reason): "chunk \(chunk) at offset \(offset): \(reason)"
        case .truncatedChunk(let chunk, let offset): "chunk \(chunk) at offset \(offset): file ends inside the chunk (the chunks before it are complete: keep them with `sev-trace reindex --salvage`)"
        case .badIndex(let path, let reason): "\(path): \(reason)"
        case .noSuchEvent(let seq, let count): "no event \(seq): the trace has \(count) events"
        }
    }
}
