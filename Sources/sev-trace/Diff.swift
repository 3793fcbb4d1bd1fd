import ArgumentParser
import TraceFormat

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare two traces: their headers and their events.",
        discussion: "Prints a line for each header field that differs (tool version, seed, scenario name and text, chunk size, compression level), then compares the events: prints `identical` and exits 0 when nothing differs; otherwise prints the first differing event of each trace (or that the events are the same) and exits 1.")

    @Argument(help: "The first trace bundle.")
    var left: String

    @Argument(help: "The second trace bundle.")
    var right: String

    func run() throws {
        let a = try TraceBundle(existing: left).reader(), b = try TraceBundle(existing: right).reader()
        let headerDifferences = Self.headerDifferences(a.header, b.header)
        for line in headerDifferences { Console.line(line) }
        switch try TraceDiff.compare(a, b) {
        case .identical(let events):
            guard headerDifferences.isEmpty else {
                Console.line("the same \(events) events")
                throw CheckFailed(message: "the traces' headers differ (\(headerDifferences.count) field\(headerDifferences.count == 1 ? "" : "s"))")
            }
            Console.line("identical (\(events) events)")
        case .differ(let seq, let x, let y):
            Console.line("\(printable(left)): " + (x.map(EventFormatter.line) ?? "(ends here)"))
            Console.line("\(printable(right)): " + (y.map(EventFormatter.line) ?? "(ends here)"))
            throw CheckFailed(message: "the traces differ at event #\(seq)")
        }
    }

    /// One line per header field that differs, in the header's order.
    static func headerDifferences(_ a: TraceHeader, _ b: TraceHeader) -> [String] {
        var out: [String] = []
        if a.toolVersion != b.toolVersion { out.append("tool: \(printable(a.toolVersion)) and \(printable(b.toolVersion))") }
        if a.seed != b.seed { out.append("seed: \(a.seed) and \(b.seed)") }
        if a.scenarioName != b.scenarioName { out.append("scenario name: \(printable(a.scenarioName)) and \(printable(b.scenarioName))") }
        if a.scenarioText != b.scenarioText {
            let la = a.scenarioText.split(separator: "\n", omittingEmptySubsequences: false)
            let lb = b.scenarioText.split(separator: "\n", omittingEmptySubsequences: false)
            let first = (0..<min(la.count, lb.count)).first { la[$0] != lb[$0] } ?? min(la.count, lb.count)
            out.append("scenario text: differs from line \(first + 1)")
        }
        if a.chunkBytes != b.chunkBytes { out.append("chunk size: \(a.chunkBytes) and \(b.chunkBytes)") }
        if a.compressionLevel != b.compressionLevel { out.append("compression level: \(a.compressionLevel) and \(b.compressionLevel)") }
        return out
    }
}
