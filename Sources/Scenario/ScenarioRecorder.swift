import Foundation
import TraceFormat

/// Records a scenario into a trace bundle.
public enum ScenarioRecorder {
    /// What a recording produced.
    public struct Summary: Sendable {
        public var bundle: TraceBundle
        public var events: UInt64
        public var chunks: Int
        public var bytes: UInt64
    }

    /// Runs `script` with `seed` and writes the bundle at `path` (replacing an old bundle there). On any
    /// error the bundle is removed, so nothing half-written is left.
    public static func record(_ script: ScenarioScript, seed: UInt64, to path: String, chunkBytes: UInt32 = 1 << 20,
                              compressionLevel: Int32 = 3) throws -> Summary {
        let header = TraceHeader(seed: seed, scenarioName: script.file, scenarioText: script.text,
                                 chunkBytes: chunkBytes, compressionLevel: compressionLevel)
        let recorder = try TraceRecorder(path: path, header: header)
        do {
            try ScenarioRunner(script: script, seed: seed).run(into: recorder)
        } catch {
            recorder.bundle.remove()
            throw error
        }
        let r = try recorder.finish()
        return Summary(bundle: recorder.bundle, events: r.events, chunks: r.chunks, bytes: r.bytes)
    }
}
