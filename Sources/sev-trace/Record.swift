import Analyzer
import ArgumentParser
import Foundation
import Scenario
import TraceFormat

struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a scenario and record it into a trace bundle, then analyze it.",
        discussion: "Without SCENARIO, runs the embedded default scenario. The bundle is NAME.sevtrace/ in the current directory unless --output says otherwise.")

    @Argument(help: "The scenario file (default: the embedded default scenario).")
    var scenario: String?

    @Option(name: .shortAndLong, help: "The bundle to write (default: <scenario name>.sevtrace).")
    var output: String?

    @Option(help: "The seed of the simulation's randomness.")
    var seed: UInt64 = 1

    @Flag(help: "Record only; do not run the analyzer.")
    var noAnalyze = false

    @Option(help: .hidden)
    var chunkBytes: UInt32 = 1 << 20

    @OptionGroup(title: "Analysis limits")
    var analysis: AnalysisOptions

    @OptionGroup(title: "Limits")
    var limitOptions: LimitOptions

    @Option(help: "Stop with an error once the recording holds this many events.")
    var maxEvents: UInt64 = RecordingLimits().maxEvents

    @Option(help: "Stop with an error once events.zst reaches this many bytes.")
    var maxBytes: UInt64 = RecordingLimits().maxBytes

    @Option(name: .customLong("owner-keys"), help: ArgumentHelp(
        "Write the session keys of each launch a guest owner made into this directory, as sevctl names them: VM_tek.bin and VM_tik.bin (16 raw bytes each).",
        discussion: "With the TIK, `sev-trace measure` (or sevctl) recomputes a measurement recorded in the trace.", valueName: "DIR"))
    var ownerKeys: String?

    @OptionGroup(title: "Progress")
    var progressOptions: ProgressOptions

    func run() throws {
        let script = try ScenarioInput.load(scenario, limits: limitOptions.limits)
        let line = progressOptions.line("record")
        defer { line.finish() }
        let path = output ?? ScenarioInput.defaultBundleName(scenario)
        var findings: [Finding]?
        let summary = try ScenarioRecorder.record(script, seed: seed, to: path, chunkBytes: chunkBytes,
                                                  limits: RecordingLimits(maxEvents: maxEvents, maxBytes: maxBytes),
                                                  progress: line.enabled ? { line.update(done: $0, total: nil) } : nil) { staging in
            guard !noAnalyze else { return }
            findings = try analysis.analyzer().analyze(staging, storingIn: TraceIndex(path: staging.indexPath, writable: true))
        }
        line.finish()
        if let ownerKeys { try Self.writeSessionKeys(summary.sessionKeys, into: ownerKeys, quiet: progressOptions.quiet) }
        guard !progressOptions.quiet else { return }
        let perEvent = summary.events == 0 ? 0 : Double(summary.bytes) / Double(summary.events)
        Console.line("recorded \(script.file) (seed \(seed)): \(summary.events) events in \(summary.chunks) chunk\(summary.chunks == 1 ? "" : "s"), \(summary.bytes) bytes (\(String(format: "%.2f", perEvent)) bytes/event)")
        if let findings { FindingPrinter.print(findings) }
        Console.line("trace: \(summary.bundle.path)")
    }

    /// Writes VM_tek.bin and VM_tik.bin for each session, each file whole or not at all.
    static func writeSessionKeys(_ sessions: [ScenarioRunner.SessionKeys], into directory: String, quiet: Bool = false) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for s in sessions {
                for (suffix, key) in [("tek", s.tek), ("tik", s.tik)] {
                    let url = URL(fileURLWithPath: directory).appendingPathComponent("\(s.vm)_\(suffix).bin")
                    try Data(key).write(to: url, options: .atomic)
                }
                if !quiet { Console.line("session keys of \(s.vm) (owner \(s.owner)): \(directory)/\(s.vm)_tek.bin, \(s.vm)_tik.bin") }
            }
        } catch {
            throw InputError(description: "cannot write the session keys into \(directory): \(error.localizedDescription)")
        }
    }
}

/// Loading scenario files.
enum ScenarioInput {
    static func load(_ path: String?, limits: ScenarioLimits) throws -> ScenarioScript {
        guard let path else { return try ScenarioParser(file: DefaultScenario.name, limits: limits).parse(DefaultScenario.text) }
        let text = try InputFile.text(path, what: "scenario", limit: limits.maxScenarioBytes, option: "--max-scenario-bytes")
        return try ScenarioParser(file: path, limits: limits).parse(text)
    }

    static func defaultBundleName(_ path: String?) -> String {
        guard let path else { return DefaultScenario.name + ".sevtrace" }
        let base = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        return base + ".sevtrace"
    }
}
