import ArgumentParser
import Foundation
import Scenario
import TraceFormat

/// `sev-trace mem`: memory time travel.
struct Mem: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show memory as it was right after an event: the data as last written, what DRAM held, the C-bit and the last write.",
        discussion: """
            The data comes from the trace's write events; DRAM (ciphertext where the last write went through \
            a key) comes from re-running the trace's scenario: only as far as the last event before this one \
            that changed keys, nested page tables or VMs (a firmware command, a nested-page-table change, a \
            VM created), after which the trace's writes are replayed through that machine's memory \
            controller. On a platform with caches, or inside such an operation, the scenario is re-run to \
            the event itself, which takes as long as recording that far did. Each line shows 16 bytes: the \
            address, the data, DRAM, the C-bit of their last writes (1, 0, - never written, * mixed) and the \
            latest of those writes.
            """)

    @Argument(help: "The trace bundle.")
    var bundle: String

    @Option(help: "The event after which to look (its seq).")
    var at: FlexibleNumber

    @Option(help: "The VM whose guest physical address --gpa is.")
    var vm: String?

    @Option(help: "A guest physical address of --vm (decimal or 0x hex).")
    var gpa: FlexibleNumber?

    @Option(help: "A system physical address as the trace numbers them (platform in bits 40 and up).")
    var spa: FlexibleNumber?

    @Option(help: "How many bytes (1 to 65536).")
    var length: Int = 64

    @Flag(help: "Re-run the scenario all the way to the event, without the shortcut (to check it).")
    var rerun = false

    func validate() throws {
        switch (vm, gpa, spa) {
        case (.some, .some, nil), (nil, nil, .some): break
        default: throw ValidationError("give --vm NAME --gpa ADDR, or --spa ADDR")
        }
    }

    func run() throws {
        let b = try TraceBundle(existing: bundle)
        let place: MemoryTimeTravel.Place = if let spa { .spa(spa.value) } else { .gpa(vm: vm!, gpa!.value) }
        let v = try MemoryTimeTravel.view(b, at: at.value, place, length: length, method: rerun ? .rerun : .shortcut)
        Console.write(Self.render(v))
    }

    static func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

    /// The hex dump.
    static func render(_ v: MemoryTimeTravel.View) -> String {
        var out = "after event #\(v.seq), platform \(v.platform)"
        if let vm = v.vm, let gpa = v.gpa { out += ", \(vm) gpa \(hex(gpa)) at spa \(hex(v.spa.first ?? 0))" } else { out += ", spa \(hex(v.spa.first ?? 0))" }
        out += v.cached ? " (the platform caches lines: DRAM may not hold the latest writes yet)\n" : "\n"
        let width = 18
        out += "address".padding(toLength: width, withPad: " ", startingAt: 0) + "data as last written".padding(toLength: 48, withPad: " ", startingAt: 0)
            + " DRAM".padding(toLength: 49, withPad: " ", startingAt: 0) + " C  last write\n"
        let base = v.gpa ?? (v.spa.first ?? 0)
        var i = 0
        while i < v.data.count {
            let n = min(16, v.data.count - i)
            let row = i..<(i + n)
            func bytes(_ b: [UInt8]) -> String {
                row.map { (b[$0] < 16 ? "0" : "") + String(b[$0], radix: 16) }.joined(separator: " ").padding(toLength: 47, withPad: " ", startingAt: 0)
            }
            let writes = row.compactMap { v.lastWrite[$0] }
            let written = row.filter { v.lastWrite[$0] != nil }
            let c: String
            if written.isEmpty { c = "-" } else if written.allSatisfy({ v.cbit[$0] }) { c = "1" } else if written.contains(where: { v.cbit[$0] }) { c = "*" } else { c = "0" }
            let last = writes.max().map { "#\($0)" } ?? "-"
            out += hex(base + UInt64(i)).padding(toLength: width, withPad: " ", startingAt: 0) + bytes(v.data) + "  " + bytes(v.dram)
                + "  \(c)  \(last)\n"
            i += n
        }
        return out
    }
}
