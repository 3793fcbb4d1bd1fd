import ArgumentParser
import TraceFormat

struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print decoded events, one per line.",
        discussion: "Each line is #SEQ @CYCLE TYPE, then the event's columns as name=value, named as the SQL tables name them.")

    @Argument(help: "The trace bundle.")
    var bundle: String

    @Option(help: "The first sequence number to print.")
    var from: UInt64 = 0

    @Option(help: "How many events to print (default: all).")
    var count: UInt64?

    func run() throws {
        let reader = try TraceBundle(existing: bundle).reader()
        var left = count ?? .max
        guard left > 0 else { return }
        var out = TextLine(capacity: 1 << 16 + 4096)
        try reader.forEachEvent(from: from) { e in
            EventFormatter.line(e, into: &out)
            out.byte(0x0A)
            if out.bytes.count > 1 << 16 {
                Console.write(out.string)
                out.removeAll()
            }
            left -= 1
            return left > 0
        }
        Console.write(out.string)
    }
}
