/// A chunk's header: where it is and what it holds.
///
/// On disk (48 bytes, little-endian): `CHNK`, `u64` first sequence number, `u32` event count, `u32` raw
/// (encoded) length, `u32` compressed length, `u64` first cycle, `u64` last cycle, `u32` CRC-32C of the
/// compressed payload, `u32` CRC-32C of the 44 header bytes before it. One zstd frame follows.
public struct ChunkInfo: Equatable, Sendable {
    public static let magic: [UInt8] = Array("CHNK".utf8)
    public static let headerSize = 48

    /// The chunk's number, counting from 0.
    public var index: Int
    /// The file offset of the chunk header.
    public var offset: UInt64
    public var firstSeq: UInt64
    public var eventCount: UInt32
    public var rawLength: UInt32
    public var compressedLength: UInt32
    public var firstCycle: UInt64
    public var lastCycle: UInt64
    public var payloadChecksum: UInt32

    public var lastSeq: UInt64 { firstSeq + UInt64(eventCount) - 1 }
    /// The offset just past this chunk.
    public var endOffset: UInt64 { offset + UInt64(Self.headerSize) + UInt64(compressedLength) }

    public init(index: Int, offset: UInt64, firstSeq: UInt64, eventCount: UInt32, rawLength: UInt32,
                compressedLength: UInt32, firstCycle: UInt64, lastCycle: UInt64, payloadChecksum: UInt32) {
        self.index = index
        self.offset = offset
        self.firstSeq = firstSeq
        self.eventCount = eventCount
        self.rawLength = rawLength
        self.compressedLength = compressedLength
        self.firstCycle = firstCycle
        self.lastCycle = lastCycle
        self.payloadChecksum = payloadChecksum
    }

    /// The 48 header bytes.
    func encodedHeader() -> [UInt8] {
        var w = ByteWriter(capacity: Self.headerSize)
        w.raw(Self.magic)
        w.u64(firstSeq)
        w.u32(eventCount)
        w.u32(rawLength)
        w.u32(compressedLength)
        w.u64(firstCycle)
        w.u64(lastCycle)
        w.u32(payloadChecksum)
        w.u32(CRC32C.checksum(w.bytes))
        return w.bytes
    }

    /// Parses a chunk header read at `offset`.
    static func decode(_ bytes: [UInt8], index: Int, offset: UInt64) throws(TraceError) -> ChunkInfo {
        guard bytes.count == headerSize else { throw TraceError.truncatedChunk(chunk: index, offset: offset) }
        guard Array(bytes[0..<4]) == magic else {
            throw TraceError.corruptChunk(chunk: index, offset: offset, reason: "bad chunk magic")
        }
        var r = ByteReader(bytes, offset: 4)
        do {
            let info = ChunkInfo(index: index, offset: offset, firstSeq: try r.u64(), eventCount: try r.u32(),
                                 rawLength: try r.u32(), compressedLength: try r.u32(), firstCycle: try r.u64(),
                                 lastCycle: try r.u64(), payloadChecksum: try r.u32())
            let crc = try r.u32()
            guard crc == CRC32C.checksum(Array(bytes[0..<44])) else {
                throw TraceError.corruptChunk(chunk: index, offset: offset, reason: "chunk header checksum mismatch")
            }
            guard info.eventCount > 0 else {
                throw TraceError.corruptChunk(chunk: index, offset: offset, reason: "chunk holds no events")
            }
            return info
        } catch let e as TraceError {
            throw e
        } catch {
            throw TraceError.truncatedChunk(chunk: index, offset: offset)
        }
    }
}
