import Analyzer
import ArgumentParser
import Foundation
import Scenario
import SEVMachine
import TraceFormat

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure simulation, recording, decoding and analysis on a copy-heavy scenario.",
        discussion: "Build with -c release for meaningful figures. Baselines are measured in the same run: simulation into a counting sink (for recording) and a decode-only pass (for analysis).")

    @Option(help: "Approximate number of guest data accesses to simulate.")
    var accesses: UInt64 = 1_000_000

    @Option(help: "Where to write the bundle (default: a temporary directory, removed afterwards).")
    var output: String?

    @Option(help: "The seed.")
    var seed: UInt64 = 1

    @Flag(help: "Leave the buffers uninitialised: private memory never written decrypts to random-looking garbage, the worst case for compression.")
    var uninitialised = false

    @Option(help: "More options for the platform line, to measure what they cost, e.g. \"cache=256K cores=2 sme=yes\".")
    var platform: String = ""

    /// The copy-heavy scenario: a private buffer (1 MiB, less for small runs) holding a secret is copied back and forth.
    /// Both buffers are part of the launch image, so they hold zeros rather than the garbage that
    /// uninitialised private memory decrypts to.
    static func scenario(accesses: UInt64, initialised: Bool, platform: String = "") -> String {
        // Two copies of up to 128 Ki quadwords (1 MiB), a load and a store each; smaller runs copy less.
        let quadwords = min(131_072, max(64, (accesses + 3) / 4))
        let perPass: UInt64 = 2 * quadwords * 2
        let passes = max(1, (accesses + perPass - 1) / perPass)
        return """
        # bench: copy \(quadwords * 8) bytes back and forth \(passes) times (\(passes * perPass) data accesses)
        platform memory=128M \(platform)
        vm guest memory=32M policy=0x1
        device nic0
        shared guest 0x1f00000 pages=1
        \(initialised ? "data guest 0x800000 fill=0 len=\(quadwords * 8)\ndata guest 0x1000000 fill=0 len=\(quadwords * 8)" : "")
        program guest at=0x100000
            mov r5, \(passes)
        again:
            mov r1, 0x1000000
            mov r2, 0x800000
            mov r3, \(quadwords)
            copy r1, r2, r3
            mov r1, 0x800000
            mov r2, 0x1000000
            mov r3, \(quadwords)
            copy r1, r2, r3
            sub r5, 1
            jnz r5, again
            mov r1, 0x1f00000
            mov r2, 0x800000
            mov r3, 8
            copy r1, r2, r3
            hlt
        end
        launch guest
        secret guest 0x800000 key fill=0x5a len=4096
        run guest
        dma nic0 read guest 0x1f00000 64
        """
    }

    func run() throws {
        let text = Self.scenario(accesses: accesses, initialised: !uninitialised, platform: platform)
        // A benchmark may run as long as it is asked to.
        let script = try ScenarioParser(file: "bench", limits: ScenarioLimits(machine: MachineLimits(maxSteps: .max, maxMemoryBytes: 4 << 30))).parse(text)
        let clock = ContinuousClock()

        let counter = CountingSink()
        let simTime = try clock.measure { try ScenarioRunner(script: script, seed: seed).run(into: counter) }

        let dir = output == nil ? NSTemporaryDirectory() + "/sev-trace-bench-\(ProcessInfo.processInfo.processIdentifier)" : nil
        let path = output ?? dir! + "/bench.sevtrace"
        defer { if let dir { try? FileManager.default.removeItem(atPath: dir) } }
        var summary: ScenarioRecorder.Summary?
        let recordTime = try clock.measure { summary = try ScenarioRecorder.record(script, seed: seed, to: path, limits: RecordingLimits(maxEvents: .max, maxBytes: .max)) }
        let s = summary!

        let reader = try s.bundle.reader()
        var decoded: UInt64 = 0
        let decodeTime = try clock.measure {
            try reader.forEachEvent { _ in
                decoded += 1
                return true
            }
        }
        let analyzer = Analyzer()
        var findings: [Finding] = []
        let analyzeTime = try clock.measure { findings = try analyzer.analyze(try s.bundle.reader()) }

        func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
        func rate(_ n: UInt64, _ d: Duration) -> String { String(format: "%.2f M events/s", Double(n) / seconds(d) / 1e6) }
        let memAccesses = try s.bundle.index().database.prepare("SELECT sum(reads + writes) FROM page_chunks").rows()
        let accessCount: Int64 = if case .integer(let n) = memAccesses.first?.first { n } else { 0 }
        Console.line("scenario: \(accessCount) memory accesses, \(s.events) events, \(s.chunks) chunks")
        Console.line("simulate only (counting sink): \(String(format: "%.3f", seconds(simTime))) s, \(rate(counter.count, simTime))")
        Console.line("simulate + record:             \(String(format: "%.3f", seconds(recordTime))) s, \(rate(s.events, recordTime)), \(String(format: "%.2f", Double(accessCount) / seconds(recordTime) / 1e6)) M accesses/s")
        Console.line("  recording cost ratio (record / simulate only): \(String(format: "%.2f", seconds(recordTime) / seconds(simTime)))")
        Console.line("  events.zst: \(s.bytes) bytes, \(String(format: "%.3f", Double(s.bytes) / Double(s.events))) bytes/event")
        Console.line("decode only:                   \(String(format: "%.3f", seconds(decodeTime))) s, \(rate(decoded, decodeTime))")
        Console.line("analyze:                       \(String(format: "%.3f", seconds(analyzeTime))) s, \(rate(analyzer.eventCount, analyzeTime)), \(findings.count) findings")
        Console.line("  analysis cost ratio (analyze / decode only): \(String(format: "%.2f", seconds(analyzeTime) / seconds(decodeTime)))")
        Console.line("peak resident memory: \(Self.peakRSS() / 1024) MiB")
    }

    /// The process's peak resident set size in KiB (VmHWM).
    static func peakRSS() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        return 0
    }
}
