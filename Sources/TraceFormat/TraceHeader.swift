/// The header of `events.zst`: what wrote the trace and everything replay needs to run it again.
///
/// On disk: the magic `SEVTRACE`, a little-endian `u16` format version, a `u32` body length, the body
/// (tool version, seed, scenario name, scenario text, chunk size target, compression level: varints and
/// length-prefixed UTF-8), then the CRC-32C of the body.
public struct TraceHeader: Equatable, Sendable {
    /// The format version this tool writes and reads.
    public static let formatVersion: UInt16 = 13
    /// The first bytes of every events file.
    public static let magic: [UInt8] = Array("SEVTRACE".utf8)

    public var toolVersion: String
    public var seed: UInt64
    /// A name for the scenario (its file name, or `default`).
    public var scenarioName: String
    /// The scenario's full text.
    public var scenarioText: String
    /// Encoded bytes after which the writer closes a chunk.
    public var chunkBytes: UInt32
    /// The zstd level chunks were compressed with (a chunk after one that compressed less than 4:1 uses at
    /// most level 3).
    public var compressionLevel: Int32

    public init(toolVersion: String = ToolVersion.current, seed: UInt64, scenarioName: String, scenarioText: String,
                chunkBytes: UInt32 = 1 << 20, compressionLevel: Int32 = 7) {
        self.toolVersion = toolVersion
        self.seed = seed
        self.scenarioName = scenarioName
        self.scenarioText = scenarioText
        self.chunkBytes = chunkBytes
        self.compressionLevel = compressionLevel
    }

    /// The header's bytes.
    public func encoded() -> [UInt8] {
        var body = ByteWriter()
        body.string(toolVersion)
        body.varint(seed)
        body.string(scenarioName)
        body.string(scenarioText)
        body.varint(UInt64(chunkBytes))
        body.zigzag(Int64(compressionLevel))
        var w = ByteWriter(capacity: body.count + 18)
        w.raw(Self.magic)
        w.u16(Self.formatVersion)
        w.u32(UInt32(body.count))
        w.raw(body.bytes)
        w.u32(CRC32C.checksum(body.bytes))
        return w.bytes
    }

    /// Reads the header at the start of `file`; returns it with its length on disk.
    static func read(from file: FileDescriptor) throws(TraceError) -> (TraceHeader, Int) {
        let fixed = try file.read(count: 14, at: 0)
        guard fixed.count == 14, Array(fixed[0..<8]) == magic else { throw TraceError.notATrace(path: file.path) }
        var r = ByteReader(fixed, offset: 8)
        do {
            let version = try r.u16()
            guard version == formatVersion else { throw TraceError.unsupportedVersion(path: file.path, version: version) }
            let length = Int(try r.u32())
            guard length <= TraceLimits.maxHeaderBodyBytes else {
                throw TraceError.corruptHeader(path: file.path,
                                               reason: "header length \(length) exceeds the limit of \(TraceLimits.maxHeaderBodyBytes) bytes")
            }
            let rest = try file.read(count: length + 4, at: 14)
            guard rest.count == length + 4 else { throw TraceError.corruptHeader(path: file.path, reason: "file ends inside the header") }
            let body = Array(rest[0..<length])
            var crcReader = ByteReader(rest, offset: length)
            guard try crcReader.u32() == CRC32C.checksum(body) else {
                throw TraceError.corruptHeader(path: file.path, reason: "checksum mismatch")
            }
            var b = ByteReader(body)
            let toolVersion = try b.string(), seed = try b.varint(), name = try b.string(), text = try b.string()
            let chunkBytes = try b.varint(), level = try b.zigzag()
            guard let chunk = UInt32(exactly: chunkBytes), TraceLimits.chunkBytesRange.contains(chunk) else {
                throw TraceError.corruptHeader(path: file.path, reason: "chunk size \(chunkBytes) is outside \(TraceLimits.chunkBytesRange)")
            }
            guard let lvl = Int32(exactly: level), TraceLimits.compressionLevelRange.contains(lvl) else {
                throw TraceError.corruptHeader(path: file.path, reason: "compression level \(level) is outside \(TraceLimits.compressionLevelRange)")
            }
            guard b.isAtEnd else { throw TraceError.corruptHeader(path: file.path, reason: "\(length - b.offset) bytes after the last field") }
            let header = TraceHeader(toolVersion: toolVersion, seed: seed, scenarioName: name, scenarioText: text,
                                     chunkBytes: chunk, compressionLevel: lvl)
            return (header, 14 + length + 4)
        } catch let e as TraceError {
            throw e
        } catch {
            throw TraceError.corruptHeader(path: file.path, reason: "truncated field")
        }
    }
}

/// The version of this tool, written into every trace.
public enum ToolVersion {
    public static let current = "0.1.0"
}
