import TraceFormat

/// Re-runs the simulation a trace stores (its scenario text and seed) and compares the events it
/// produces with the recorded ones, chunk by chunk, holding one chunk of each at a time.
public enum Replayer {
    /// How a replay ended.
    public enum Outcome: Equatable, Sendable {
        /// Every event matched.
        case identical(events: UInt64)
        /// The first event that differs, as recorded and as replayed (nil where one side had ended).
        case diverged(seq: UInt64, recorded: TraceEvent?, replayed: TraceEvent?)
    }

    /// Replays the bundle.
    /// The scenario text in the header is checked as a scenario file is, under `limits`.
    public static func replay(_ bundle: TraceBundle, limits: ScenarioLimits = ScenarioLimits()) throws -> Outcome {
        let reader = try bundle.reader()
        let h = reader.header
        let script = try ScenarioParser(file: h.scenarioName, limits: limits).parse(h.scenarioText)
        let sink = ComparingSink(reader: reader, chunkBytes: Int(h.chunkBytes))
        try ScenarioRunner(script: script, seed: h.seed).run(into: sink)
        return try sink.finish()
    }

    /// Encodes the replayed events into chunks and compares each with the recorded chunk.
    private final class ComparingSink: EventSink {
        let reader: TraceReader
        var chunker: ChunkEncoder
        var chunkIndex = 0
        var outcome: Outcome?
        var failure: Error?

        init(reader: TraceReader, chunkBytes: Int) {
            self.reader = reader
            chunker = ChunkEncoder(chunkBytes: chunkBytes)
        }

        func record(cycle: UInt64, _ body: EventBody) {
            guard outcome == nil, failure == nil else { return }
            if let chunk = chunker.append(cycle: cycle, body) { compare(chunk) }
        }

        private func compare(_ chunk: ChunkEncoder.RawChunk) {
            do {
                guard let info = try reader.chunkInfo(chunkIndex) else {
                    let replayed = try TraceReader.decode(chunk.bytes, info: Self.info(chunk, index: chunkIndex))
                    outcome = .diverged(seq: chunk.firstSeq, recorded: nil, replayed: replayed.first)
                    return
                }
                chunkIndex += 1
                let recordedBytes = try reader.rawPayload(of: info)
                if recordedBytes == chunk.bytes && info.eventCount == chunk.eventCount { return }
                let recorded = try TraceReader.decode(recordedBytes, info: info)
                let replayed = try TraceReader.decode(chunk.bytes, info: Self.info(chunk, index: info.index))
                for i in 0..<max(recorded.count, replayed.count) {
                    let r = i < recorded.count ? recorded[i] : nil
                    let p = i < replayed.count ? replayed[i] : nil
                    if r != p {
                        outcome = .diverged(seq: chunk.firstSeq + UInt64(i), recorded: r, replayed: p)
                        return
                    }
                }
                // Same events, different bytes: the encoder itself changed.
                outcome = .diverged(seq: chunk.firstSeq, recorded: recorded.first, replayed: replayed.first)
            } catch {
                failure = error
            }
        }

        static func info(_ chunk: ChunkEncoder.RawChunk, index: Int) -> ChunkInfo {
            ChunkInfo(index: index, offset: 0, firstSeq: chunk.firstSeq, eventCount: chunk.eventCount,
                      rawLength: UInt32(chunk.bytes.count), compressedLength: 0, firstCycle: chunk.firstCycle,
                      lastCycle: chunk.lastCycle, payloadChecksum: 0)
        }

        func finish() throws -> Outcome {
            if outcome == nil, failure == nil, let chunk = chunker.close() { compare(chunk) }
            if let failure { throw failure }
            if let outcome { return outcome }
            // The replay ended: the recording must end too.
            if let extra = try reader.chunkInfo(chunkIndex) {
                return .diverged(seq: extra.firstSeq, recorded: try reader.events(of: extra).first, replayed: nil)
            }
            return .identical(events: chunker.nextSeq)
        }
    }
}
