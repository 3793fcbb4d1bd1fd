import ArgumentParser
import Foundation
import TraceFormat

/// `--progress`, `--no-progress` and `--quiet`, as every long-running command takes them.
struct ProgressOptions: ParsableArguments {
    @Flag(inversion: .prefixedNo, help: "Show progress on standard error (default: only when it is a terminal).")
    var progress: Bool?

    @Flag(help: "Print nothing but results that were asked for and errors (no progress, no summaries).")
    var quiet = false

    /// Whether to draw progress.
    var enabled: Bool { !quiet && (progress ?? (isatty(2) == 1)) }

    /// A progress line for `label`, drawing only when enabled; chunks read by any trace reader advance it.
    func line(_ label: String) -> ProgressLine {
        let line = ProgressLine(label: label, enabled: enabled)
        if line.enabled {
            TraceReader.onChunk = { reader, chunk in
                line.update(done: chunk.lastSeq + 1, total: line.total(of: reader))
            }
        }
        return line
    }
}

/// One line on standard error, redrawn at most ten times a second: events done, events per second and,
/// when the total is known, the share done and the time left. Cleared when the work ends.
final class ProgressLine {
    let label: String
    let enabled: Bool
    private let clock = ContinuousClock()
    private let start: ContinuousClock.Instant
    private var lastDraw: ContinuousClock.Instant?
    private var drawn = false
    private var totals: [ObjectIdentifier: UInt64] = [:]
    /// Readers report chunks from the threads that decode them.
    private let lock = NSLock()

    init(label: String, enabled: Bool) {
        self.label = label
        self.enabled = enabled
        start = clock.now
    }

    /// The events of the trace `reader` reads (its chunk headers, read once).
    func total(of reader: TraceReader) -> UInt64? {
        lock.lock()
        defer { lock.unlock() }
        if let t = totals[ObjectIdentifier(reader)] { return t }
        guard let t = try? reader.eventCount() else { return nil }
        totals[ObjectIdentifier(reader)] = t
        return t
    }

    func update(done: UInt64, total: UInt64?) {
        guard enabled else { return }
        lock.lock()
        defer { lock.unlock() }
        let now = clock.now
        if let last = lastDraw, now - last < .milliseconds(100) { return }
        lastDraw = now
        let elapsed = Double((now - start).components.attoseconds) / 1e18 + Double((now - start).components.seconds)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        var text = "\(label): \(Self.count(done))"
        if let total, total > 0 {
            text += " of \(Self.count(total)) events (\(min(100, Int(Double(done) * 100 / Double(total))))%)"
            if rate > 0, total > done { text += ", \(Self.duration(Double(total - done) / rate)) left" }
        } else {
            text += " events"
        }
        text += ", \(Self.count(UInt64(rate)))/s"
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + text).utf8))
        drawn = true
    }

    /// Clears the line.
    func finish() {
        TraceReader.onChunk = nil
        guard enabled, drawn else { return }
        drawn = false
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }

    static func count(_ n: UInt64) -> String {
        n >= 1_000_000 ? String(format: "%.1fM", Double(n) / 1e6) : n >= 10_000 ? String(format: "%.0fK", Double(n) / 1e3) : "\(n)"
    }

    static func duration(_ s: Double) -> String {
        s >= 60 ? "\(Int(s) / 60)m\(Int(s) % 60)s" : String(format: "%.0fs", s.rounded(.up))
    }
}
