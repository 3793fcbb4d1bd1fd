/// Compares the events of two traces in order — two recordings of one scenario under two builds, or
/// under two seeds — holding one chunk of each in memory at a time, whatever their chunk sizes.
public enum TraceDiff {
    /// How a comparison ended.
    public enum Outcome: Equatable, Sendable {
        /// Every event is the same, cycle included.
        case identical(events: UInt64)
        /// The first event that differs, on each side (nil where that trace had ended).
        case differ(seq: UInt64, left: TraceEvent?, right: TraceEvent?)
    }

    /// Compares `left` and `right` event by event.
    public static func compare(_ left: TraceReader, _ right: TraceReader) throws(TraceError) -> Outcome {
        var a = Cursor(reader: left), b = Cursor(reader: right)
        var seq: UInt64 = 0
        while true {
            let x = try a.next(), y = try b.next()
            if x == nil && y == nil { return .identical(events: seq) }
            if x != y { return .differ(seq: seq, left: x, right: y) }
            seq += 1
        }
    }

    /// Walks one trace's events, decoding a chunk when the previous one is used up.
    private struct Cursor {
        let reader: TraceReader
        var nextChunk = 0
        var events: [TraceEvent] = []
        var position = 0

        init(reader: TraceReader) { self.reader = reader }

        mutating func next() throws(TraceError) -> TraceEvent? {
            while position == events.count {
                guard let info = try reader.chunkInfo(nextChunk) else { return nil }
                nextChunk += 1
                events = try reader.events(of: info)
                position = 0
            }
            defer { position += 1 }
            return events[position]
        }
    }
}
