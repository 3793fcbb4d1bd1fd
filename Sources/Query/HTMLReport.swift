import Foundation
import TraceFormat

/// A report of one trace that people can send: one self-contained HTML file (no network, no scripts, no
/// fonts to fetch; pictures are inline SVG) with the scenario and its seed, the trace's integrity, the
/// findings worst first (each with its flow on a small timeline and its preview), each VM's memory map
/// (its pages that became shared or unmapped, over time, with the findings marked), the firmware's
/// command log with the platform and guest state changes, and the hypervisor's exits per VM.
public struct HTMLReport {
    /// The most rows of the command log, and of pages in a memory map, a report shows.
    public static let maxCommands = 2000, maxPages = 64
    /// Time buckets of the memory maps and flow timelines.
    static let columns = 120

    public init() {}

    public func render(_ bundle: TraceBundle) throws -> String {
        let reader = try bundle.reader()
        let header = reader.header
        let total = try reader.eventCount()
        var integrity: String
        do {
            let r = try TraceVerifier.verify(bundle)
            integrity = "<p class=ok>Verified: \(r.chunks) chunk\(r.chunks == 1 ? "" : "s"), \(r.events) events, every checksum and event sound, the index consistent with the events, \(r.findings) stored finding\(r.findings == 1 ? "" : "s") from an analysis that ran to the end.</p>"
        } catch {
            integrity = "<p class=bad>Damaged: \(Self.h("\(error)"))</p>"
        }
        // The engine's connection: the index, and the tables decoded from the events (vm_exits).
        let engine = try QueryEngine(bundle: bundle)
        let index = engine.index
        let db = index.database
        func rows(_ sql: String) throws -> [[SQLiteValue]] { try db.prepare(sql).rows() }
        func text(_ v: SQLiteValue) -> String {
            switch v {
            case .integer(let i): String(i)
            case .text(let t): t
            case .real(let d): String(d)
            case .null: ""
            case .blob(let b): b.map { String(format: "%02x", $0) }.joined()
            }
        }
        func int(_ v: SQLiteValue) -> Int64 { if case .integer(let i) = v { i } else { 0 } }
        var names: [UInt16: (name: String, pages: Int64)] = [:]
        for r in try rows("SELECT vm, name, memory_bytes FROM vms ORDER BY vm") { names[UInt16(clamping: int(r[0]))] = (text(r[1]), int(r[2]) >> 12) }
        let findings = try index.findings().sorted { ($0.severity, $1.sourceSeq) > ($1.severity, $0.sourceSeq) }

        var out = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
            <title>sev-trace report: \(Self.h(header.scenarioName))</title>
            <style>
            body{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#1d1d1f}
            h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ddd}
            table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eee;vertical-align:top}
            code,.mono{font-family:ui-monospace,monospace;font-size:12px}.ok{color:#17662a}.bad{color:#a1110c}
            .sev-critical,.sev-high{color:#a1110c;font-weight:600}.sev-medium{color:#9a5b00;font-weight:600}.sev-low,.sev-info{color:#555}
            .legend span{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 1em;vertical-align:middle}
            </style></head><body>
            <h1>sev-trace report: \(Self.h(header.scenarioName))</h1>
            <p>Scenario <code>\(Self.h(header.scenarioName))</code>, seed <code>\(header.seed)</code>, \(total) events, recorded by sev-trace \(Self.h(ToolVersion.current)) (trace format \(TraceHeader.formatVersion)).</p>
            <h2 id="integrity">Integrity</h2>
            \(integrity)

            """
        // Findings, worst first.
        out += "<h2 id=\"findings\">Findings (\(findings.count))</h2>\n"
        if findings.isEmpty { out += "<p>No finding.</p>\n" }
        for (i, f) in findings.enumerated() {
            let vm = names[f.vm]?.name ?? (f.vm == MemoryAccess.noVM ? "—" : "VM \(f.vm)")
            out += "<div class=finding id=\"finding-\(i + 1)\"><p><span class=\"sev-\(f.severity)\">\(Self.h("\(f.severity)".uppercased()))</span> "
                + "<b>\(Self.h(f.detector))</b> · \(Self.h(vm)) · events #\(f.sourceSeq) → #\(f.sinkSeq)"
                + (f.occurrences > 1 ? " · \(f.occurrences) times" : "") + "<br>\(Self.h(f.summary))</p>\n"
            if !f.preview.isEmpty { out += "<p class=mono>\(Self.h(f.preview))</p>\n" }
            let steps = f.flow.isEmpty ? [FlowStep(seq: f.sourceSeq, role: .source), FlowStep(seq: f.sinkSeq, role: .sink)] : f.flow
            out += Self.flowTimeline(steps.map { ($0.seq, "\($0.role)") }, total: total) + "</div>\n"
        }
        // Memory maps.
        out += "<h2 id=\"memory\">Memory maps</h2>\n<p class=legend>Pages of each VM whose state changed, over the trace: <span style=\"background:#4a78c2\"></span>private <span style=\"background:#e3a21a\"></span>shared <span style=\"background:#999\"></span>unmapped; red ticks are findings.</p>\n"
        var changes: [UInt16: [(seq: Int64, page: Int64, state: Int)]] = [:]
        // Only the pages that were ever made shared (setting the C-bit at boot changes nothing to show).
        for r in try rows("""
            SELECT seq, vm, gpa, new_c FROM cbit_changes WHERE old_c != new_c AND (vm, gpa >> 12) IN
                (SELECT vm, gpa >> 12 FROM cbit_changes WHERE old_c = 1 AND new_c = 0) ORDER BY seq
            """) {
            changes[UInt16(clamping: int(r[1])), default: []].append((int(r[0]), int(r[2]) >> 12, int(r[3]) == 0 ? 1 : 0))
        }
        for r in try rows("SELECT seq, vm, gpa, op, pages FROM npt_changes ORDER BY seq") {
            let op = text(r[3])
            guard op == "unmap" || op == "map" else { continue }
            for p in 0..<min(int(r[4]), 64) { changes[UInt16(clamping: int(r[1])), default: []].append((int(r[0]), (int(r[2]) >> 12) + p, op == "unmap" ? 2 : 0)) }
        }
        let marks = findings.map { Int64($0.sinkSeq) }
        for vm in names.keys.sorted() {
            let list = changes[vm] ?? []
            out += "<h3>\(Self.h(names[vm]!.name))</h3>\n"
            out += Self.memoryMap(list, total: Int64(total), marks: marks)
        }
        // Firmware command log.
        let commands = try rows("SELECT seq, platform, command_name, status_name, handle, asid, platform_before, platform_after, guest_before, guest_after FROM psp_commands ORDER BY seq LIMIT \(Self.maxCommands + 1)")
        out += "<h2 id=\"firmware\">Firmware commands (\(commands.count > Self.maxCommands ? "first \(Self.maxCommands)" : "\(commands.count)"))</h2>\n"
        out += "<table><tr><th>event</th><th>platform</th><th>command</th><th>status</th><th>handle</th><th>ASID</th><th>platform state</th><th>guest state</th></tr>\n"
        for r in commands.prefix(Self.maxCommands) {
            let ok = text(r[3]) == "SUCCESS"
            out += "<tr><td>#\(text(r[0]))</td><td>\(text(r[1]))</td><td><code>\(Self.h(text(r[2])))</code></td><td class=\"\(ok ? "ok" : "bad")\">\(Self.h(text(r[3])))</td><td>\(text(r[4]))</td><td>\(text(r[5]))</td>"
                + "<td>\(Self.h(Self.arrow(text(r[6]), text(r[7]))))</td><td>\(Self.h(Self.arrow(text(r[8]), text(r[9]))))</td></tr>\n"
        }
        out += "</table>\n"
        // Hypervisor exits per VM.
        out += "<h2 id=\"exits\">Exits per VM</h2>\n<table><tr><th>VM</th><th>exit</th><th>count</th></tr>\n"
        for r in try rows("SELECT vm, exit_name, count(*) FROM vm_exits GROUP BY vm, exit_name ORDER BY vm, count(*) DESC") {
            let vm = UInt16(clamping: int(r[0]))
            out += "<tr><td>\(Self.h(names[vm]?.name ?? "VM \(vm)"))</td><td><code>\(Self.h(text(r[1])))</code></td><td>\(text(r[2]))</td></tr>\n"
        }
        out += "</table>\n<p><small>Generated by sev-trace from the trace alone; no network.</small></p>\n</body></html>\n"
        return out
    }

    static func arrow(_ a: String, _ b: String) -> String { a == b ? a : a + " → " + b }

    /// HTML text.
    static func h(_ s: String) -> String { MarkupText.xml(s) }

    /// A finding's flow: a dot per step on a line as long as the trace.
    static func flowTimeline(_ steps: [(seq: UInt64, role: String)], total: UInt64) -> String {
        let width = 600.0, height = 28.0
        func x(_ seq: UInt64) -> Double { 10 + (width - 20) * Double(seq) / Double(max(total, 1)) }
        var svg = "<svg width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\" aria-label=\"flow\"><line x1=\"10\" y1=\"14\" x2=\"\(Int(width) - 10)\" y2=\"14\" stroke=\"#ccc\"/>"
        for (a, b) in zip(steps, steps.dropFirst()) {
            svg += String(format: "<line x1=\"%.1f\" y1=\"14\" x2=\"%.1f\" y2=\"14\" stroke=\"#a1110c\" stroke-width=\"3\"/>", x(a.seq), x(b.seq))
        }
        for s in steps {
            let color = s.role == "sink" ? "#a1110c" : s.role == "source" ? "#17662a" : "#9a5b00"
            svg += String(format: "<circle cx=\"%.1f\" cy=\"14\" r=\"5\" fill=\"", x(s.seq)) + color + "\"><title>\(h(s.role)) #\(s.seq)</title></circle>"
        }
        return svg + "</svg>\n"
    }

    /// Pages × time: each page's state (0 private, 1 shared, 2 unmapped) from its changes.
    static func memoryMap(_ changes: [(seq: Int64, page: Int64, state: Int)], total: Int64, marks: [Int64]) -> String {
        var byPage: [Int64: [(Int64, Int)]] = [:]
        for c in changes { byPage[c.page, default: []].append((c.seq, c.state)) }
        // Only pages that were ever shared or unmapped: setting the C-bit (early boot) changes nothing here.
        byPage = byPage.filter { $0.value.contains { $0.1 != 0 } }
        guard !byPage.isEmpty else { return "<p>Every page stayed private (no C-bit cleared, nothing unmapped).</p>\n" }
        let pages = byPage.keys.sorted().prefix(maxPages)
        let cell = 5.0, left = 90.0
        let width = left + cell * Double(columns) + 10, height = cell * 1.6 * Double(pages.count) + 16
        var svg = "<svg width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\" aria-label=\"memory map\">"
        let colors = ["#4a78c2", "#e3a21a", "#999"]
        for (row, page) in pages.enumerated() {
            let y = Double(row) * cell * 1.6
            svg += String(format: "<text x=\"0\" y=\"%.1f\" font-size=\"9\" font-family=\"monospace\">gpa 0x%llx</text>", y + cell, UInt64(page) << 12)
            let list = byPage[page]!
            // One rectangle per run of columns in the same state.
            var state = 0, next = 0, runStart = 0
            var states: [Int] = []
            for column in 0..<columns {
                let end = (Int64(column) + 1) * max(total, 1) / Int64(columns)
                while next < list.count && list[next].0 < end {
                    state = list[next].1
                    next += 1
                }
                states.append(state)
            }
            for column in 1...columns where column == columns || states[column] != states[runStart] {
                svg += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"", left + Double(runStart) * cell, y,
                              cell * Double(column - runStart), cell) + colors[states[runStart]] + "\"/>"
                runStart = column
            }
        }
        let base = Double(pages.count) * cell * 1.6 + 2
        for m in marks {
            let x = left + cell * Double(columns) * Double(m) / Double(max(total, 1))
            svg += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#a1110c\" stroke-width=\"2\"/>", x, base, x, base + 10)
        }
        let more = byPage.count > maxPages ? "<p>… and \(byPage.count - maxPages) more pages.</p>\n" : ""
        return svg + "</svg>\n" + more
    }
}
