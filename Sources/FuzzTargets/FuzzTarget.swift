import Analyzer
import Foundation
import Scenario
import SEVMachine
import TraceFormat

/// The inputs a stranger controls, each as a function of bytes that must end in a result or a clean
/// error and never trap, hang or take unbounded memory. libFuzzer drives them (`Fuzz/run`), and the
/// tests replay every seed and every crasher kept under `Tests/Fuzz/`.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// A scenario file: parsed, then run on a fresh machine with small limits.
    case scenario
    /// A whole `events.zst` file: header, chunk headers, zstd frames and events, read as every reader does.
    case bundle
    /// A chunk's decoded payload: events decoded one by one and fed to the analyzer while they decode.
    case analyzer

    /// Runs the target on one input.
    public func run(_ data: UnsafeRawBufferPointer) {
        switch self {
        case .scenario: Self.scenario(data)
        case .bundle: Self.bundle(data)
        case .analyzer: Self.analyzer(data)
        }
    }

    /// Runs the target on one input held in an array.
    public func run(_ bytes: [UInt8]) { bytes.withUnsafeBytes { run($0) } }

    /// Limits small enough that one input runs in milliseconds; every limit is still checked.
    static let scenarioLimits = ScenarioLimits(maxScenarioBytes: 64 << 10, maxStatementBytes: 64 << 10, maxTimes: 256,
                                               machine: MachineLimits(maxSteps: 20_000, maxMemoryBytes: 256 << 20))

    /// The analyzer's shadow budget per input.
    static let shadowBytes = 256 << 20

    /// Counts events and asks the machine to stop after a few hundred thousand.
    final class BoundedSink: EventSink {
        var count = 0
        func record(cycle: UInt64, _ body: EventBody) { count += 1 }
        var stopRequest: String? { count > 300_000 ? "fuzz event limit" : nil }
    }

    static func scenario(_ data: UnsafeRawBufferPointer) {
        let text = String(decoding: data, as: UTF8.self)
        guard let script = try? ScenarioParser(file: "fuzz.sev", limits: scenarioLimits).parse(text) else { return }
        _ = try? ScenarioRunner(script: script, seed: 1).run(into: BoundedSink())
    }

    /// One scratch file per process, rewritten for every input.
    nonisolated(unsafe) static var scratch: String = {
        let dir = NSTemporaryDirectory() + "/sev-trace-fuzz-\(ProcessInfo.processInfo.processIdentifier)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir + "/events.zst"
    }()

    static func bundle(_ data: UnsafeRawBufferPointer) {
        guard (try? Data(data).write(to: URL(fileURLWithPath: scratch))) != nil,
              let reader = try? TraceReader(path: scratch) else { return }
        let analyzer = Analyzer(maxShadowBytes: Self.shadowBytes)
        var index = 0
        while index < 64, let info = try? reader.chunkInfo(index), let events = try? reader.events(of: info) {
            for e in events { analyzer.process(e) }
            index += 1
        }
        _ = analyzer.findings
        _ = try? reader.chunk(containing: 1 << 20)
    }

    static func analyzer(_ data: UnsafeRawBufferPointer) {
        var decoder = EventDecoder()
        var r = ByteReader(Array(data))
        let analyzer = Analyzer(maxShadowBytes: Self.shadowBytes)
        var seq: UInt64 = 0
        while !r.isAtEnd, let (cycle, body) = try? decoder.decode(from: &r) {
            guard body.validationProblem == nil else { break }
            analyzer.process(TraceEvent(seq: seq, cycle: cycle, body: body))
            seq += 1
        }
        _ = analyzer.findings
    }
}

extension FuzzTarget {
    /// The seed inputs, made from what the repository keeps under `Traces/` (`root` is the repository):
    /// the scenario files, the golden traces' `events.zst`, and their chunks' decoded payloads.
    public func seeds(root: URL) -> [(name: String, bytes: [UInt8])] {
        let traces = root.appendingPathComponent("Traces")
        let fm = FileManager.default
        func files(_ dir: URL, suffix: String) -> [URL] {
            ((try? fm.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(suffix) }.sorted()
                .map { dir.appendingPathComponent($0) }
        }
        let bundles = files(traces, suffix: ".sevtrace") + files(traces.appendingPathComponent("detectors"), suffix: ".sevtrace")
        switch self {
        case .scenario:
            return (files(traces.appendingPathComponent("scenarios"), suffix: ".sev")
                    + files(traces.appendingPathComponent("detectors"), suffix: ".sev")).compactMap { url in
                (try? Data(contentsOf: url)).map { (url.lastPathComponent, Array($0)) }
            }
        case .bundle:
            return bundles.compactMap { url in
                (try? Data(contentsOf: url.appendingPathComponent("events.zst"))).map { (url.lastPathComponent + ".zst", Array($0)) }
            }
        case .analyzer:
            return bundles.flatMap { url -> [(String, [UInt8])] in
                guard let reader = try? TraceReader(path: url.appendingPathComponent("events.zst").path),
                      let chunks = try? reader.allChunks() else { return [] }
                return chunks.prefix(4).compactMap { info in
                    (try? reader.rawPayload(of: info)).map { ("\(url.lastPathComponent)-\(info.index).raw", $0) }
                }
            }
        }
    }
}

extension FuzzTarget {
    /// What a fuzz driver's main does: `--write-seeds DIR ROOT` writes the seeds, anything else goes to
    /// libFuzzer through `driver`.
    public func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                     driver: (UnsafeMutablePointer<CInt>, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt) -> CInt {
        let args = (0..<Int(argc)).map { argv?[$0].map { String(cString: $0) } ?? "" }
        if args.count == 4, args[1] == "--write-seeds" {
            let dir = URL(fileURLWithPath: args[2])
            try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let seeds = seeds(root: URL(fileURLWithPath: args[3]))
            for seed in seeds { try? Data(seed.bytes).write(to: dir.appendingPathComponent(seed.name)) }
            print("\(rawValue): wrote \(seeds.count) seeds to \(dir.path)")
            return 0
        }
        var argc = argc
        var argv = argv
        return driver(&argc, &argv)
    }
}
