/// Cuts a stream of events into chunks exactly as the trace writer does, so that replay can compare a
/// re-simulation with a recording chunk by chunk. Produces each chunk's encoded (raw) bytes.
public struct ChunkEncoder {
    /// Encoded bytes after which a chunk is closed.
    public let chunkBytes: Int
    private var encoder = EventEncoder()
    private var buffer: ByteWriter
    /// The sequence number of the next event.
    public private(set) var nextSeq: UInt64 = 0
    private(set) var chunkFirstSeq: UInt64 = 0
    private(set) var chunkFirstCycle: UInt64 = 0
    private(set) var chunkLastCycle: UInt64 = 0

    public init(chunkBytes: Int) {
        self.chunkBytes = chunkBytes
        buffer = ByteWriter(capacity: chunkBytes + 256)
    }

    /// A closed chunk's encoded events and what its header needs.
    public struct RawChunk: Sendable {
        public var firstSeq: UInt64
        public var eventCount: UInt32
        public var firstCycle: UInt64
        public var lastCycle: UInt64
        public var bytes: [UInt8]
    }

    /// Encodes one event; returns a chunk when this event filled one.
    public mutating func append(cycle: UInt64, _ body: EventBody) -> RawChunk? {
        begin(cycle: cycle)
        encoder.encode(cycle: cycle, body, into: &buffer)
        return end(cycle: cycle)
    }

    /// The same for a memory access, the common event, without going through ``EventBody``.
    @inline(__always)
    public mutating func append(cycle: UInt64, access: MemoryAccess) -> RawChunk? {
        begin(cycle: cycle)
        encoder.encode(cycle: cycle, access: access, into: &buffer)
        return end(cycle: cycle)
    }

    /// The same for a register op, without going through ``EventBody``.
    @inline(__always)
    public mutating func append(cycle: UInt64, registerOp: RegisterOp) -> RawChunk? {
        begin(cycle: cycle)
        encoder.encode(cycle: cycle, registerOp: registerOp, into: &buffer)
        return end(cycle: cycle)
    }

    @inline(__always)
    private mutating func begin(cycle: UInt64) {
        if buffer.count == 0 {
            chunkFirstSeq = nextSeq
            chunkFirstCycle = cycle
        }
    }

    @inline(__always)
    private mutating func end(cycle: UInt64) -> RawChunk? {
        chunkLastCycle = cycle
        nextSeq += 1
        return buffer.count >= chunkBytes ? close() : nil
    }

    /// Closes the chunk in progress, if it holds any event.
    public mutating func close() -> RawChunk? {
        guard buffer.count > 0 else { return nil }
        let chunk = RawChunk(firstSeq: chunkFirstSeq, eventCount: UInt32(nextSeq - chunkFirstSeq),
                             firstCycle: chunkFirstCycle, lastCycle: chunkLastCycle, bytes: buffer.bytes)
        buffer.removeAll()
        encoder.reset()
        return chunk
    }
}
