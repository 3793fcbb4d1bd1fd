import Analyzer
import ArgumentParser

/// The bounds of one analysis, shared by every command that analyzes.
struct AnalysisOptions: ParsableArguments {
    @Option(help: "Past this many findings, further hits are counted per detector instead of listed.")
    var maxFindings: Int = 100_000

    @Option(help: "The most memory, in bytes, the analyzer's shadow state may take.")
    var maxShadowMemory: Int = 2 << 30

    func validate() throws {
        guard maxFindings >= 1 else { throw ValidationError("--max-findings must be at least 1") }
        guard maxShadowMemory >= 1 << 20 else { throw ValidationError("--max-shadow-memory must be at least 1048576") }
    }

    /// An analyzer with these bounds.
    func analyzer(detectors: Set<Detector> = Set(Detector.allCases)) -> Analyzer {
        Analyzer(detectors: detectors, maxFindings: maxFindings, maxShadowBytes: maxShadowMemory)
    }
}
