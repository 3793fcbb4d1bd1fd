/// Writes `events.zst`: the header, then each chunk as soon as it is full, in one `write` call, so a
/// recorder stopped at any moment leaves every finished chunk readable.
public final class TraceWriter: EventSink {
    /// The header written at the start of the file.
    public let header: TraceHeader
    private let file: FileDescriptor
    private let compressor: ZstdCompressor
    private var chunker: ChunkEncoder
    private var offset: UInt64
    private var chunkCount = 0
    private var failure: TraceError?
    private var bytesWritten: UInt64 = 0
    /// Events in the chunks written so far.
    private var eventsWritten: UInt64 = 0
    /// The level the next chunk is compressed at (``chunkLevel(after:compressed:)``).
    private var nextLevel: Int32
    /// Called with each chunk after it is written, and with every event before it is encoded.
    let observer: (any TraceObserver)?

    /// Creates `path` and writes the header.
    public init(path: String, header: TraceHeader, observer: (any TraceObserver)? = nil) throws(TraceError) {
        self.header = header
        self.file = try FileDescriptor.create(path)
        self.compressor = ZstdCompressor(level: header.compressionLevel)
        self.nextLevel = header.compressionLevel
        self.chunker = ChunkEncoder(chunkBytes: Int(header.chunkBytes))
        self.observer = observer
        let bytes = header.encoded()
        try file.write(bytes)
        offset = UInt64(bytes.count)
        bytesWritten = offset
    }

    /// The number of events appended so far.
    public var eventCount: UInt64 { chunker.nextSeq }
    /// The size of the file so far.
    public var fileSize: UInt64 { bytesWritten }

    public func record(cycle: UInt64, _ body: EventBody) {
        // The two common events go to the encoder as what they are, not as an EventBody.
        if case .memoryAccess(let a) = body { return record(cycle: cycle, access: a) }
        if case .registerOp(let r) = body { return record(cycle: cycle, registerOp: r) }
        observer?.observe(seq: chunker.nextSeq, chunk: chunkCount, cycle: cycle, body)
        if let chunk = chunker.append(cycle: cycle, body) { write(chunk) }
    }

    /// The same for a register op, without going through the encoder's ``EventBody`` path.
    public func record(cycle: UInt64, registerOp: RegisterOp) {
        observer?.observe(seq: chunker.nextSeq, chunk: chunkCount, cycle: cycle, .registerOp(registerOp))
        if let chunk = chunker.append(cycle: cycle, registerOp: registerOp) { write(chunk) }
    }

    /// The same for a memory access, the common event, without going through ``EventBody``.
    public func record(cycle: UInt64, access: MemoryAccess) {
        observer?.observe(seq: chunker.nextSeq, chunk: chunkCount, cycle: cycle, access: access)
        if let chunk = chunker.append(cycle: cycle, access: access) { write(chunk) }
    }

    /// Compresses and writes a chunk the chunker closed, then tells the observer.
    private func write(_ raw: ChunkEncoder.RawChunk) {
        guard failure == nil else { return }
        do {
            let payload = try compressor.compress(raw.bytes, level: nextLevel)
            nextLevel = Self.chunkLevel(header.compressionLevel, after: raw.bytes.count, compressed: payload.count)
            let info = ChunkInfo(index: chunkCount, offset: offset, firstSeq: raw.firstSeq, eventCount: raw.eventCount,
                                 rawLength: UInt32(raw.bytes.count), compressedLength: UInt32(payload.count),
                                 firstCycle: raw.firstCycle, lastCycle: raw.lastCycle,
                                 payloadChecksum: CRC32C.checksum(payload))
            try file.write(info.encodedHeader() + payload)
            offset = info.endOffset
            bytesWritten = offset
            chunkCount += 1
            eventsWritten += UInt64(raw.eventCount)
            observer?.chunkWritten(info)
        } catch let e as TraceError {
            failure = e
        } catch {
            failure = .io(path: file.path, reason: "\(error)")
        }
    }

    /// Below this ratio of raw to compressed bytes a chunk counts as hard to compress (ciphertext, random
    /// values): zstd's higher levels gain little there and cost several times the time.
    static let compressibleRatio = 4
    /// The fastest level that still compresses well; hard chunks use it when the header asks for more.
    static let hardChunkLevel: Int32 = 3

    /// The level for the chunk after one of `raw` bytes that compressed to `compressed`: the header's
    /// level, or at most ``hardChunkLevel`` after a hard chunk. It depends on the events only, so a
    /// scenario records the same bytes every time.
    static func chunkLevel(_ level: Int32, after raw: Int, compressed: Int) -> Int32 {
        raw >= compressed * compressibleRatio ? level : min(level, hardChunkLevel)
    }

    /// Writes the last chunk; reports the first error any write met.
    @discardableResult
    public func finish() throws(TraceError) -> (events: UInt64, chunks: Int, bytes: UInt64) {
        if let chunk = chunker.close() { write(chunk) }
        if let failure { throw failure }
        return (eventsWritten, chunkCount, bytesWritten)
    }
}

/// Watches the events and chunks a writer or reader passes along (the index builder is one).
public protocol TraceObserver: AnyObject {
    /// One event, with the chunk it goes into.
    func observe(seq: UInt64, chunk: Int, cycle: UInt64, _ body: EventBody)
    /// One memory access, the common event (as ``observe(seq:chunk:cycle:_:)`` with it).
    func observe(seq: UInt64, chunk: Int, cycle: UInt64, access: MemoryAccess)
    /// A chunk that is complete on disk.
    func chunkWritten(_ info: ChunkInfo)
}

extension TraceObserver {
    public func observe(seq: UInt64, chunk: Int, cycle: UInt64, access: MemoryAccess) {
        observe(seq: seq, chunk: chunk, cycle: cycle, .memoryAccess(access))
    }
}
