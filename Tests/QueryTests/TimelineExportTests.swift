import Foundation
import TestSupport
import Testing
import TraceFormat
@testable import Query

/// The Perfetto timeline of every golden trace is valid Trace Event Format: JSON with the fields each
/// phase needs, slices that nest on their track, timestamps in order per track, flows that connect.
struct TimelineExportTests {
    static let traces = GoldenTraces.directory(from: #filePath)
    static let bundles = GoldenTraces.bundles(in: traces)

    static func export(_ name: String, from: UInt64 = 0, to: UInt64 = .max) throws -> [[String: Any]] {
        var text = ""
        try TimelineExport(from: from, to: to).write(try TraceBundle(existing: traces.appendingPathComponent(name).path)) { text += $0 }
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(doc["displayTimeUnit"] as? String == "ns")
        return try #require(doc["traceEvents"] as? [[String: Any]])
    }

    @Test("every golden trace exports as a timeline Perfetto can load", arguments: bundles)
    func valid(name: String) throws {
        let events = try Self.export(name)
        var last: [String: Double] = [:]
        var open: [String: [Double]] = [:]  // per track: the ends of the slices enclosing the current time
        var begins: [String: Int] = [:], ends: [String: Int] = [:]
        var flows: [Int: [(ph: String, ts: Double)]] = [:]
        var slicesAt: [String: Set<Double>] = [:]
        for e in events {
            let ph = try #require(e["ph"] as? String)
            #expect(e["pid"] is Int, "\(name): \(e)")
            if ph == "M" { continue }
            let ts = try #require(e["ts"] as? Double ?? (e["ts"] as? Int).map(Double.init), "\(name): \(e)")
            #expect(ts >= 0)
            if ph == "C" {
                #expect((e["args"] as? [String: Any])?.values.allSatisfy { $0 is Int || $0 is Double } == true)
                continue
            }
            let track = "\(e["pid"]!)/\(e["tid"] ?? "-")"
            #expect(ts >= (last[track] ?? 0), "\(name): time goes back on track \(track): \(e)")
            last[track] = ts
            switch ph {
            case "X":
                let dur = try #require(e["dur"] as? Double ?? (e["dur"] as? Int).map(Double.init))
                #expect(dur >= 0 && e["name"] is String)
                var stack = open[track, default: []]
                while let top = stack.last, top <= ts + 1e-9 { stack.removeLast() }
                #expect(stack.last.map { ts + dur <= $0 + 1e-9 } ?? true, "\(name): a slice overlaps its parent on \(track): \(e)")
                stack.append(ts + dur)
                open[track] = stack
                slicesAt[track, default: []].insert(ts)
            case "B": begins[track, default: 0] += 1
            case "E": ends[track, default: 0] += 1
            case "s", "t", "f":
                flows[try #require(e["id"] as? Int), default: []].append((ph, ts))
                #expect(slicesAt[track, default: []].contains(ts), "\(name): a flow step with no slice to bind to: \(e)")
            case "i": #expect(e["s"] as? String == "t")
            default: Issue.record("\(name): unexpected phase \(ph)")
            }
        }
        #expect(begins == ends, "every B has its E")
        for (id, steps) in flows {
            #expect(steps.first?.ph == "s" && steps.last?.ph == "f" && steps.filter { $0.ph == "s" || $0.ph == "f" }.count == 2,
                    "\(name): flow \(id) is \(steps.map(\.ph))")
            #expect(zip(steps, steps.dropFirst()).allSatisfy { $0.ts <= $1.ts }, "\(name): flow \(id) goes back in time")
        }
    }

    @Test("runs, firmware commands and findings land on their tracks; a window keeps only its events")
    func content() throws {
        let events = try Self.export("default.sevtrace")
        let names = Set(events.compactMap { $0["ph"] as? String == "X" ? $0["name"] as? String : nil })
        #expect(names.contains("HLT") && names.contains("LAUNCH_START") && names.contains { $0.hasPrefix("PRIVATE_TO_SHARED") })
        let threads = events.filter { $0["ph"] as? String == "M" && $0["name"] as? String == "thread_name" }
            .compactMap { ($0["args"] as? [String: Any])?["name"] as? String }
        #expect(threads.contains("guest vCPU 0") && threads.contains("PSP (SEV firmware)") && threads.contains("hypervisor (KVM)"))
        let psp = events.first { $0["name"] as? String == "LAUNCH_START" }
        #expect((psp?["args"] as? [String: Any])?["status"] as? String == "SUCCESS")
        // Each VM's pages: private, shared and unmapped, adding up to its memory.
        let counters = events.filter { $0["ph"] as? String == "C" && $0["name"] as? String == "guest pages" }
        #expect(!counters.isEmpty)
        for c in counters {
            let a = try #require(c["args"] as? [String: Int])
            #expect(a.keys.sorted() == ["private", "shared", "unmapped"] && a.values.reduce(0, +) == 1024, "\(a)")
        }
        #expect(counters.contains { ($0["args"] as? [String: Int])?["shared"] ?? 0 > 0 }, "the default scenario shares pages")
        let window = try Self.export("default.sevtrace", from: 0, to: 50)
        #expect(window.filter { $0["ph"] as? String == "X" }.count < events.filter { $0["ph"] as? String == "X" }.count)
    }
}
