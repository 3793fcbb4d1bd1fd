import Analyzer
import ArgumentParser
import Foundation
import Scenario
import SEVMachine
import TraceFormat

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure simulation, recording, size, decoding and analysis on four workloads, and print the table.",
        discussion: "Build with -c release for meaningful figures. Baselines are measured in the same run: simulation into a counting sink (for recording), a naive fixed-width record per event compressed with zstd -3 (for size) and a decode-only pass (for analysis). Workloads: the copy loop, the copy loop over uninitialised memory, Traces/bench/mixed.sev, and a secret copied into fresh private memory (the analysis peak RSS shows what shadow memory costs).")

    @Option(help: "Approximate number of guest data accesses to simulate (at most 2^36).")
    var accesses: UInt64 = 1_000_000

    /// The most accesses or events a benchmark takes: far past any useful run, and far from where sizing
    /// its scenario could overflow.
    static let maxCount: UInt64 = 1 << 36

    @Option(help: "Where to write the bundles, as PREFIX-WORKLOAD.sevtrace (default: a temporary directory, removed afterwards).")
    var output: String?

    @Option(help: "The seed.")
    var seed: UInt64 = 1

    @Flag(help: "Only the uninitialised copy loop (as --workload uninitialised).")
    var uninitialised = false

    @Option(help: "More options for the platform line, to measure what they cost, e.g. \"cache=256K cores=2 sme=yes\".")
    var platform: String = ""

    @Flag(help: "Time the questions people ask of a large trace (a page's accesses, counts, streaming, seeking) instead.")
    var queries = false

    @Option(help: "With --queries: about how many events the mixed trace has (at most 2^36).")
    var events: UInt64 = 100_000_000

    @Option(help: "With --queries: query this bundle instead of recording one.")
    var trace: String?

    @Option(help: "With --queries: how many times to ask each question.")
    var runs: Int = 3

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

    /// The workloads `bench` measures.
    enum Workload: String, CaseIterable, ExpressibleByArgument {
        /// The copy loop over initialised buffers (compressible values).
        case copy
        /// The copy loop over uninitialised private memory (ciphertext-like values: incompressible).
        case uninitialised
        /// Traces/bench/mixed.sev: two SEV guests × two vCPUs, table updates, copies, port I/O, DMA, host reads.
        case mixed
        /// A guest copying a 16 MiB secret over and over into fresh private memory: what the analyzer's
        /// shadow memory holds when guests write a lot (half the accesses are writes, 8 bytes each).
        case fill
    }

    /// The fill scenario (``FillScenario``) sized for about `accesses` / 2 quadwords written, from a
    /// secret of at most 16 MiB.
    static func fillScenario(accesses: UInt64, platform: String = "") -> String {
        let perPass = min(2_097_152, max(512, accesses / 2))
        return FillScenario.text(quadwords: perPass, passes: max(1, (accesses / 2 + perPass - 1) / perPass), platform: platform)
    }

    @Option(help: "The workloads to measure: copy, uninitialised, mixed, fill (repeatable; default: all four).")
    var workload: [Workload] = []

    /// The committed mixed scenario, with its ITER sized for about `accesses` memory accesses.
    static func mixedScenario(accesses: UInt64, platform: String) throws -> String {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Traces/bench/mixed.sev")
        let text = try InputFile.text(url.path, what: "bench scenario", limit: 1 << 20)
        // About 216 events per iteration of all four vCPUs, most of them memory accesses.
        let iterations = max(1, accesses / 200)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let iter = lines.firstIndex(where: { $0.hasPrefix("let ITER = ") }),
              let plat = lines.firstIndex(where: { $0.hasPrefix("platform ") }) else {
            throw InputError(description: "\(url.path): no `let ITER = …` or `platform` line")
        }
        lines[iter] = "let ITER = \(iterations)"
        lines[plat] += " " + platform
        return lines.joined(separator: "\n")
    }

    /// The figures of one workload.
    struct Figures {
        var name: String
        var accesses: Int64 = 0, events: UInt64 = 0
        var simulate = 0.0, record = 0.0, decode = 0.0, analyze = 0.0
        var bytes: UInt64 = 0, naiveBytes: UInt64 = 0
        var peakMiB = 0
    }

    func run() throws {
        guard accesses >= 1, accesses <= Self.maxCount, events >= 1, events <= Self.maxCount else {
            throw InputError(description: "--accesses and --events take 1 to \(Self.maxCount)")
        }
        if queries {
            guard runs >= 1 && runs <= 100 else { throw InputError(description: "--runs takes 1 to 100") }
            try QueryBench(events: events, runs: runs, seed: seed, trace: trace, output: output).run()
            return
        }
        if uninitialised && !workload.isEmpty { throw InputError(description: "give --uninitialised or --workload, not both") }
        let chosen = uninitialised ? [Workload.uninitialised] : workload.isEmpty ? Workload.allCases : workload
        var all: [Figures] = []
        for w in chosen {
            let text: String = switch w {
            case .copy: Self.scenario(accesses: accesses, initialised: true, platform: platform)
            case .uninitialised: Self.scenario(accesses: accesses, initialised: false, platform: platform)
            case .mixed: try Self.mixedScenario(accesses: accesses, platform: platform)
            case .fill: Self.fillScenario(accesses: accesses, platform: platform)
            }
            all.append(try measure(w.rawValue, text))
        }
        Console.line("")
        Console.line("| workload | events | simulate-only | recorded | record / simulate | bytes/event | naive zstd-3 / ours | decode-only | analyzed | analyze / decode | analyze peak RSS |")
        Console.line("|---|---|---|---|---|---|---|---|---|---|---|")
        func rate(_ n: UInt64, _ s: Double) -> String { String(format: "%.2f M/s", Double(n) / s / 1e6) }
        for f in all {
            let cells = [f.name, "\(f.events)", rate(f.events, f.simulate), rate(f.events, f.record), String(format: "%.2f", f.record / f.simulate),
                         String(format: "%.3f", Double(f.bytes) / Double(max(f.events, 1))),
                         String(format: "%.2f×", Double(f.naiveBytes) / Double(max(f.bytes, 1))), rate(f.events, f.decode), rate(f.events, f.analyze),
                         String(format: "%.2f", f.analyze / f.decode), "\(f.peakMiB) MiB"]
            Console.line("| " + cells.joined(separator: " | ") + " |")
        }
    }

    /// Measures one workload: simulation alone, recording, decoding, the naive baseline's size, analysis.
    func measure(_ name: String, _ text: String) throws -> Figures {
        Self.resetPeakRSS()
        var f = Figures(name: name)
        // A benchmark may run as long as it is asked to.
        let script = try ScenarioParser(file: "bench-\(name)", limits: ScenarioLimits(machine: MachineLimits(maxSteps: .max, maxMemoryBytes: 4 << 30))).parse(text)
        let clock = ContinuousClock()
        func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }

        let counter = CountingSink()
        f.simulate = seconds(try clock.measure { try ScenarioRunner(script: script, seed: seed).run(into: counter) })

        let dir = output == nil ? NSTemporaryDirectory() + "/sev-trace-bench-\(ProcessInfo.processInfo.processIdentifier)" : nil
        let path = output.map { "\($0)-\(name).sevtrace" } ?? dir! + "/\(name).sevtrace"
        defer { if let dir { try? FileManager.default.removeItem(atPath: dir) } }
        var summary: ScenarioRecorder.Summary?
        f.record = seconds(try clock.measure {
            summary = try ScenarioRecorder.record(script, seed: seed, to: path, limits: RecordingLimits(maxEvents: .max, maxBytes: .max))
        })
        let s = summary!
        (f.events, f.bytes) = (s.events, s.bytes)

        let reader = try s.bundle.reader()
        var decoded: UInt64 = 0
        f.decode = seconds(try clock.measure {
            try reader.forEachEvent { _ in
                decoded += 1
                return true
            }
        })
        f.naiveBytes = try Self.naiveSize(try s.bundle.reader())

        // The analysis's own peak: what it holds beyond the process as the trace left it.
        Self.resetPeakRSS()
        let analyzer = Analyzer()
        var findings: [Finding] = []
        f.analyze = seconds(try clock.measure { findings = try analyzer.analyze(try s.bundle.reader()) })
        let memAccesses = try s.bundle.index().database.prepare("SELECT sum(reads + writes) FROM page_chunks").rows()
        f.accesses = if case .integer(let n) = memAccesses.first?.first { n } else { 0 }
        f.peakMiB = Self.peakRSS() / 1024

        func rate(_ n: UInt64, _ d: Double) -> String { String(format: "%.2f M events/s", Double(n) / d / 1e6) }
        Console.line("\(name): \(f.accesses) memory accesses, \(s.events) events, \(s.chunks) chunks")
        Console.line("  simulate only (counting sink): \(String(format: "%.3f", f.simulate)) s, \(rate(counter.count, f.simulate))")
        Console.line("  simulate + record:             \(String(format: "%.3f", f.record)) s, \(rate(s.events, f.record))")
        Console.line("    recording cost ratio (record / simulate only): \(String(format: "%.2f", f.record / f.simulate))")
        Console.line("    events.zst: \(s.bytes) bytes, \(String(format: "%.3f", Double(s.bytes) / Double(max(s.events, 1)))) bytes/event; a naive 30-byte record per event, zstd -3: \(f.naiveBytes) bytes (\(String(format: "%.2f", Double(f.naiveBytes) / Double(max(s.bytes, 1))))× ours)")
        Console.line("  decode only:                   \(String(format: "%.3f", f.decode)) s, \(rate(decoded, f.decode))")
        Console.line("  analyze:                       \(String(format: "%.3f", f.analyze)) s, \(rate(analyzer.eventCount, f.analyze)), \(findings.count) findings")
        Console.line("    analysis cost ratio (analyze / decode only): \(String(format: "%.2f", f.analyze / f.decode))")
        Console.line("  peak resident memory while analysing: \(f.peakMiB) MiB")
        return f
    }

    /// The size of the naive baseline: every event as a fixed 30-byte record (type, access kind, actor,
    /// C-bit, size, VM, ASID, cycle delta, system physical address, value; a register operation's result and
    /// registers, an exit's code and information, a VMRUN's nCR3 and injection fill the same fields; what does
    /// not fit, such as an exit's register dump, is left out), compressed with zstd at level 3 in 8 MiB frames.
    static func naiveSize(_ reader: TraceReader) throws -> UInt64 {
        let zstd = ZstdCompressor(level: 3)
        var buffer: [UInt8] = []
        buffer.reserveCapacity(8 << 20)
        var total: UInt64 = 0
        var lastCycle: UInt64 = 0
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) } }
        try reader.forEachEvent { e in
            var type: UInt8 = 0, kind: UInt8 = 0, actor: UInt8 = 0, cbit: UInt8 = 0, size: UInt8 = 0
            var vm: UInt16 = 0, asid: UInt16 = 0, spa: UInt64 = 0, value: UInt64 = 0
            switch e.body {
            case .memoryAccess(let a):
                kind = a.kind.rawValue
                actor = switch a.actor { case .vcpu: 0; case .hypervisor: 1; case .device: 2; case .psp: 3 }
                (cbit, size, vm, asid, spa, value) = (a.cbit ? 1 : 0, UInt8(truncatingIfNeeded: a.size), a.vm, a.asid, a.spa, a.value)
            case .registerOp(let r):
                (type, vm, asid, kind, size) = (1, r.vm, r.vcpu, r.op.rawValue, r.dst)
                (cbit, value) = (r.src, r.result)
            case .vmExit(let x):
                (type, vm, asid, spa, value) = (2, x.vm, x.vcpu, x.exitInfo2, x.exitInfo1 ^ UInt64(x.exitCode) << 48)
            case .vmRun(let r):
                (type, vm, asid, spa, value) = (3, r.vm, r.asid, r.ncr3, r.eventInjection)
            default:
                type = 4 + UInt8(truncatingIfNeeded: EventFormatter.typeName(e.body).utf8.first ?? 0)
                vm = EventFormatter.vm(e.body) ?? 0
            }
            put(type); put(kind); put(actor); put(cbit); put(size); put(vm); put(asid)
            put(UInt32(truncatingIfNeeded: e.cycle &- lastCycle)); put(spa); put(value)
            buffer.append(0)  // 1 + 1 + 1 + 1 + 1 + 2 + 2 + 4 + 8 + 8 + 1 = 30 bytes
            lastCycle = e.cycle
            if buffer.count >= 8 << 20 {
                total += UInt64(try zstd.compress(buffer).count)
                buffer.removeAll(keepingCapacity: true)
            }
            return true
        }
        if !buffer.isEmpty { total += UInt64(try zstd.compress(buffer).count) }
        return total
    }

    /// Resets the process's peak resident set size (Linux: `5` to /proc/self/clear_refs), so each
    /// workload reports its own.
    static func resetPeakRSS() {
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
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
