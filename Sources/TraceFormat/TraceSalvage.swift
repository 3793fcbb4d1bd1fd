import Foundation

/// Keeps what a writer that was stopped managed to write: every complete, intact chunk of a damaged
/// or torn `events.zst`, in a new bundle with a fresh index. The chunks from the first one that is
/// torn, fails its checksum or does not decode are cut off and reported.
public enum TraceSalvage {
    /// What a salvage kept and cut.
    public struct Report: Sendable {
        /// The salvaged bundle.
        public var bundle: TraceBundle
        public var chunks: Int
        public var events: UInt64
        /// Why the rest was cut, naming the chunk and offset; nil when every chunk was whole.
        public var cut: String?
        /// Bytes of `events.zst` cut off.
        public var cutBytes: UInt64
    }

    /// Salvages `source` (a bundle or what `record` left in `NAME.sevtrace.tmp`) into a bundle at
    /// `target` (which may be `source` itself). `finishing` (the analysis) runs on the new bundle
    /// before it takes its place. A source that is a recording's leftover staging directory (a name
    /// ending in `.tmp`, no writer holding it, only bundle files in it) is removed once its chunks are
    /// safe in `target`, so that `record` can write there again.
    public static func salvage(_ source: TraceBundle, to target: String,
                               finishing: (TraceBundle) throws -> Void = { _ in }) throws -> Report {
        let reader = try source.reader()
        let fileSize = try FileDescriptor.openForReading(source.eventsPath).size()
        var good: [ChunkInfo] = []
        var cut: String?
        var index = 0
        while true {
            do {
                guard let info = try reader.chunkInfo(index) else { break }
                _ = try reader.events(of: info)
                good.append(info)
                index += 1
            } catch {
                cut = error.description
                break
            }
        }
        let keptEnd = good.last?.endOffset ?? reader.firstChunkOffset
        let stage = try StagedBundle(at: target, suffix: ".salvage")
        do {
            let out = try FileDescriptor.create(stage.staging.eventsPath)
            try out.write(try reader.rawBytes(at: 0, count: Int(reader.firstChunkOffset)))
            for info in good {
                let length = ChunkInfo.headerSize + Int(info.compressedLength)
                try out.write(try reader.rawBytes(at: info.offset, count: length))
            }
            try stage.staging.buildIndex(at: stage.staging.indexPath)
            try finishing(stage.staging)
            try stage.commit()
        } catch {
            stage.discard()
            throw error
        }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: source.path)) ?? []
        if source.path != TraceBundle.normalized(target), source.path.hasSuffix(".tmp"),
           entries.allSatisfy(TraceBundle.knownFiles.contains), (try? DirectoryLock(source.path, wait: false)) != nil {
            try? FileManager.default.removeItem(atPath: source.path)
        }
        return Report(bundle: stage.bundle, chunks: good.count, events: good.last.map { $0.lastSeq + 1 } ?? 0, cut: cut,
                      cutBytes: fileSize - keptEnd)
    }
}
