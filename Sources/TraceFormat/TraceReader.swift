import Foundation

/// Reads `events.zst` one chunk at a time. Nothing it does modifies the file; it holds one chunk's
/// events, and ``forEachEvent(from:_:)`` at most two more, decoded ahead (``ChunkPrefetcher``).
public final class TraceReader {
    public let path: String
    public let header: TraceHeader
    private let file: FileDescriptor
    private let decompressor = ZstdDecompressor()
    private let dataOffset: UInt64
    private let fileSize: UInt64
    /// The chunk headers walked so far (under `tableLock`: the decoding threads of a
    /// ``ChunkPrefetcher`` share the reader).
    private var knownChunks: [ChunkInfo] = []
    private var scannedToEnd = false
    private let tableLock = NSLock()

    /// Called with each chunk a reader decodes or reads whole, for progress displays (a command line sets
    /// it once; the library never does).
    nonisolated(unsafe) public static var onChunk: ((TraceReader, ChunkInfo) -> Void)?

    /// Opens `path` and reads its header.
    public init(path: String) throws(TraceError) {
        self.path = path
        file = try FileDescriptor.openForReading(path)
        let (h, length) = try TraceHeader.read(from: file)
        header = h
        dataOffset = UInt64(length)
        fileSize = try file.size()
    }

    /// The header of chunk `index`, found by walking chunk headers (payloads are skipped, not read).
    public func chunkInfo(_ index: Int) throws(TraceError) -> ChunkInfo? {
        tableLock.lock()
        defer { tableLock.unlock() }
        return try loadChunkInfo(index)
    }

    private func loadChunkInfo(_ index: Int) throws(TraceError) -> ChunkInfo? {
        while knownChunks.count <= index {
            let offset = knownChunks.last?.endOffset ?? dataOffset
            if offset == fileSize {
                scannedToEnd = true
                return nil
            }
            let bytes = try file.read(count: ChunkInfo.headerSize, at: offset)
            let info = try ChunkInfo.decode(bytes, index: knownChunks.count, offset: offset)
            if let prev = knownChunks.last, info.firstSeq != prev.lastSeq + 1 {
                throw TraceError.corruptChunk(chunk: info.index, offset: offset,
                                              reason: "first sequence number \(info.firstSeq), expected \(prev.lastSeq + 1)")
            }
            if knownChunks.isEmpty && info.firstSeq != 0 {
                throw TraceError.corruptChunk(chunk: 0, offset: offset, reason: "first sequence number \(info.firstSeq), expected 0")
            }
            try checkBounds(info)
            if info.endOffset > fileSize { throw TraceError.truncatedChunk(chunk: info.index, offset: offset) }
            knownChunks.append(info)
        }
        return knownChunks[index]
    }

    /// Holds a chunk header's sizes to what a writer with this file's chunk size can produce, before
    /// anything is allocated for them.
    private func checkBounds(_ info: ChunkInfo) throws(TraceError) {
        let maxRaw = TraceLimits.maxRawChunkBytes(chunkBytes: header.chunkBytes)
        guard Int(info.rawLength) <= maxRaw else {
            throw TraceError.corruptChunk(chunk: info.index, offset: info.offset,
                                          reason: "raw length \(info.rawLength) exceeds \(maxRaw), the most a chunk of \(header.chunkBytes) target bytes can hold")
        }
        guard info.eventCount <= info.rawLength else {
            throw TraceError.corruptChunk(chunk: info.index, offset: info.offset,
                                          reason: "event count \(info.eventCount) exceeds the raw length \(info.rawLength) (an event takes at least one byte)")
        }
        guard Int(info.compressedLength) <= ZstdCompressor.bound(Int(info.rawLength)) else {
            throw TraceError.corruptChunk(chunk: info.index, offset: info.offset,
                                          reason: "compressed length \(info.compressedLength) exceeds zstd's bound for \(info.rawLength) bytes")
        }
        guard info.firstSeq <= UInt64.max - UInt64(info.eventCount), info.firstCycle <= info.lastCycle else {
            throw TraceError.corruptChunk(chunk: info.index, offset: info.offset, reason: "sequence or cycle range out of order")
        }
    }

    /// The file's bytes from `offset`, `count` of them (fewer at the end of the file).
    public func rawBytes(at offset: UInt64, count: Int) throws(TraceError) -> [UInt8] {
        try file.read(count: count, at: offset)
    }

    /// Where the first chunk starts (the header's length).
    public var firstChunkOffset: UInt64 { dataOffset }

    /// Every chunk header, in order.
    public func allChunks() throws(TraceError) -> [ChunkInfo] {
        tableLock.lock()
        defer { tableLock.unlock() }
        var i = knownChunks.count
        while try loadChunkInfo(i) != nil { i += 1 }
        return knownChunks
    }

    /// The number of events in the trace.
    public func eventCount() throws(TraceError) -> UInt64 {
        guard let last = try allChunks().last else { return 0 }
        return last.lastSeq + 1
    }

    /// The chunk holding event `seq`, or nil past the end. Reads chunk headers only as far as needed, so
    /// the chunks before a damaged or truncated one stay reachable.
    public func chunk(containing seq: UInt64) throws(TraceError) -> ChunkInfo? {
        tableLock.lock()
        defer { tableLock.unlock() }
        if let last = knownChunks.last, last.lastSeq >= seq {
            var lo = 0, hi = knownChunks.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if knownChunks[mid].lastSeq < seq { lo = mid + 1 } else { hi = mid }
            }
            return knownChunks[lo]
        }
        var i = knownChunks.count
        while let info = try loadChunkInfo(i) {
            if info.lastSeq >= seq { return info }
            i += 1
        }
        return nil
    }

    /// The encoded bytes of a chunk, after checking its checksum and decompressing it (with the reader's
    /// own context, or one of the calling thread's).
    public func rawPayload(of info: ChunkInfo, decompressor: ZstdDecompressor? = nil) throws(TraceError) -> [UInt8] {
        Self.onChunk?(self, info)
        let compressed = try file.read(count: Int(info.compressedLength), at: info.offset + UInt64(ChunkInfo.headerSize))
        guard compressed.count == Int(info.compressedLength) else {
            throw TraceError.truncatedChunk(chunk: info.index, offset: info.offset)
        }
        let crc = CRC32C.checksum(compressed)
        guard crc == info.payloadChecksum else {
            throw TraceError.corruptChunk(chunk: info.index, offset: info.offset,
                                          reason: "payload checksum mismatch (stored \(hex32(info.payloadChecksum)), computed \(hex32(crc)))")
        }
        do {
            return try (decompressor ?? self.decompressor).decompress(compressed, expectedSize: Int(info.rawLength))
        } catch {
            throw TraceError.corruptChunk(chunk: info.index, offset: info.offset, reason: error.description)
        }
    }

    /// All events of a chunk, or those `keep` accepts (every event is decoded and checked either way).
    public func events(of info: ChunkInfo, keep: EventFilter? = nil, decompressor: ZstdDecompressor? = nil) throws(TraceError) -> [TraceEvent] {
        var out: [TraceEvent] = []
        try events(of: info, keep: keep, decompressor: decompressor, into: &out)
        return out
    }

    /// The same, into `out` (emptied first, its storage kept: a reader of chunk after chunk reuses one
    /// buffer instead of mapping fresh memory for each).
    public func events(of info: ChunkInfo, keep: EventFilter? = nil, decompressor: ZstdDecompressor? = nil,
                       into out: inout [TraceEvent]) throws(TraceError) {
        let raw = try rawPayload(of: info, decompressor: decompressor)
        try Self.decode(raw, info: info, keep: keep, into: &out)
    }

    /// Decodes a chunk's raw payload, checking that it holds exactly the events its header announces;
    /// returns them all, or those `keep` accepts.
    public static func decode(_ raw: [UInt8], info: ChunkInfo, keep: EventFilter? = nil) throws(TraceError) -> [TraceEvent] {
        var out: [TraceEvent] = []
        try decode(raw, info: info, keep: keep, into: &out)
        return out
    }

    /// The same, into `out` (emptied first, its storage kept).
    public static func decode(_ raw: [UInt8], info: ChunkInfo, keep: EventFilter? = nil, into out: inout [TraceEvent]) throws(TraceError) {
        var decoder = EventDecoder()
        var r = ByteReader(raw)
        out.removeAll(keepingCapacity: true)
        if keep == nil { out.reserveCapacity(Int(info.eventCount)) }
        var seq = info.firstSeq
        while !r.isAtEnd {
            guard seq - info.firstSeq < UInt64(info.eventCount) else {
                throw TraceError.corruptChunk(chunk: info.index, offset: info.offset,
                                              reason: "payload holds more events than the header's \(info.eventCount) (payload offset \(r.offset))")
            }
            let event: (cycle: UInt64, body: EventBody)
            do {
                event = try decoder.decode(from: &r)
            } catch {
                let what = switch error {
                case .truncated: "payload ends inside event \(seq)"
                case .invalidValue(_, let what): "event \(seq): invalid \(what)"
                }
                throw TraceError.corruptChunk(chunk: info.index, offset: info.offset,
                                              reason: "\(what) (payload offset \(error.offset))")
            }
            if !event.body.isValid, let problem = event.body.validationProblem {
                throw TraceError.corruptChunk(chunk: info.index, offset: info.offset, reason: "event \(seq): \(problem)")
            }
            if keep?.accepts(event.body) ?? true { out.append(TraceEvent(seq: seq, cycle: event.cycle, body: event.body)) }
            seq += 1
        }
        guard seq - info.firstSeq == UInt64(info.eventCount) else {
            throw TraceError.corruptChunk(chunk: info.index, offset: info.offset,
                                          reason: "holds \(seq - info.firstSeq) events, header says \(info.eventCount)")
        }
    }

    /// Calls `body` with every event from `seq` on, in order, one chunk in memory at a time while the
    /// next is decoded on another thread (``ChunkPrefetcher``). `body` returns false to stop early.
    public func forEachEvent(from seq: UInt64 = 0, _ body: (TraceEvent) throws -> Bool) throws {
        try forEachChunk(from: seq) { events in
            for event in events where event.seq >= seq {
                if try !body(event) { return false }
            }
            return true
        }
    }

    /// Calls `body` with the events of each chunk from the one holding `seq` on, in order, as
    /// ``forEachEvent(from:_:)`` does (events before `seq` included): for a caller that reads events where
    /// they lie rather than having each copied out to it. `body` returns false to stop early.
    public func forEachChunk(from seq: UInt64 = 0, _ body: ([TraceEvent]) throws -> Bool) throws {
        guard let first = try chunk(containing: seq) else { return }
        let chunks = ChunkPrefetcher(reader: self, chunks: .following(first.index), lower: seq)
        defer { chunks.stop() }
        while case (_, var events)? = try chunks.next() {
            if try !body(events) { return }
            chunks.recycle(&events)
        }
    }
}

func hex32(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - s.count) + s
}
