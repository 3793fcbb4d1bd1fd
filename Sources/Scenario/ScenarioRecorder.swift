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
        /// The session keys of the launches the scenario's guest owners made.
        public var sessionKeys: [ScenarioRunner.SessionKeys] = []
    }

    /// Runs `script` with `seed` and writes the bundle at `path`. The bundle is written beside its place
    /// (``StagedBundle``) and `finishing` (the analysis) runs on it there; only then does it replace an
    /// old bundle at `path`, in one rename. On any error nothing at `path` changes and nothing
    /// half-written is left.
    public static func record(_ script: ScenarioScript, seed: UInt64, to path: String, chunkBytes: UInt32 = 1 << 20,
                              compressionLevel: Int32 = 7, limits: RecordingLimits = RecordingLimits(),
                              progress: ((UInt64) -> Void)? = nil, finishing: (TraceBundle) throws -> Void = { _ in }) throws -> Summary {
        guard TraceLimits.chunkBytesRange.contains(chunkBytes) else {
            throw TraceError.io(path: path, reason: "chunk size \(chunkBytes) is outside \(TraceLimits.chunkBytesRange)")
        }
        let header = TraceHeader(seed: seed, scenarioName: scenarioName(script.file), scenarioText: script.text,
                                 chunkBytes: chunkBytes, compressionLevel: compressionLevel)
        let stage = try StagedBundle(at: path)
        do {
            let recorder = try TraceRecorder(directory: stage.staging, header: header, limits: limits)
            let runner = ScenarioRunner(script: script, seed: seed)
            if let progress {
                try runner.run(into: ReportingSink(recorder, progress))
            } else {
                try runner.run(into: recorder)
            }
            let r = try recorder.finish()
            try finishing(stage.staging)
            try stage.commit()
            return Summary(bundle: stage.bundle, events: r.events, chunks: r.chunks, bytes: r.bytes, sessionKeys: runner.sessionKeys)
        } catch {
            stage.discard()
            throw error
        }
    }

    /// Passes events to the recorder and reports how many it holds each time the machine asks whether to
    /// stop (every few thousand events).
    private final class ReportingSink: EventSink {
        let recorder: TraceRecorder
        let report: (UInt64) -> Void
        init(_ recorder: TraceRecorder, _ report: @escaping (UInt64) -> Void) {
            self.recorder = recorder
            self.report = report
        }
        func record(cycle: UInt64, _ body: EventBody) { recorder.record(cycle: cycle, body) }
        var stopRequest: String? {
            report(recorder.eventCount)
            return recorder.stopRequest
        }
    }

    /// The name a trace keeps for its scenario: the file's last path component, so that a trace's bytes
    /// do not depend on the directory it was recorded from or on how the path was typed.
    public static func scenarioName(_ file: String) -> String {
        let name = file.split(separator: "/", omittingEmptySubsequences: true).last.map(String.init) ?? file
        return name.isEmpty ? file : name
    }
}
