import Foundation
@testable import Scenario
import SEVMachine
import TestSupport
import Testing
import TraceFormat

/// `mem` and ``MemoryTimeTravel``: the data the trace's writes left agrees with the memory the
/// re-simulated machine holds at sampled points of every golden trace.
struct MemoryTimeTravelTests {
    static let traces = GoldenTraces.directory(from: #filePath)
    static let bundles = GoldenTraces.bundles(in: traces)

    @Test("at sampled private writes of every golden trace, DRAM decrypts to the data the trace's writes left",
          arguments: bundles)
    func agreesWithTheMachine(bundle name: String) throws {
        let bundle = try TraceBundle(existing: Self.traces.appendingPathComponent(name).path)
        let reader = try bundle.reader()
        let vms = try bundle.index().database.prepare("SELECT vm, name FROM vms").rows()
        var names: [UInt16: String] = [:]
        for row in vms { if case .integer(let id) = row[0], case .text(let n) = row[1] { names[UInt16(id)] = n } }
        var cached = Set<UInt8>(), sme = Set<UInt8>()
        var candidates: [(seq: UInt64, vm: String, gpa: UInt64)] = []
        try reader.forEachEvent { e in
            switch e.body {
            case .platformInfo(let p):
                if p.cacheBytes > 0 { cached.insert(p.platform) }
                if p.sme { sme.insert(p.platform) }
            case .memoryAccess(let a) where a.kind == .write && a.cbit && a.size == 8:
                if let n = names[a.vm], !cached.contains(UInt8(a.spa >> 40)), !sme.contains(UInt8(a.spa >> 40)) {
                    candidates.append((e.seq, n, a.gpa & ~15))
                }
            default: break
            }
            return true
        }
        guard !candidates.isEmpty else { return }
        var checked = 0, otherKeys = 0
        for pick in [candidates[candidates.count / 3], candidates[candidates.count - 1]] {
            let v = try MemoryTimeTravel.view(bundle, at: pick.seq, .gpa(vm: pick.vm, pick.gpa), length: 16)
            #expect(v.lastWrite.contains(pick.seq), "\(name) #\(pick.seq): the write itself is in the view")
            // One 16-byte block, encrypted as a whole: it decrypts to the data when every byte written was
            // written through the VM's key, and holds the data as it is when none was written through a key.
            let written = v.data.indices.filter { v.lastWrite[$0] != nil }
            if written.allSatisfy({ v.cbit[$0] && v.writeASID[$0] == v.asid }), let decrypted = v.decrypted {
                for i in written { #expect(decrypted[i] == v.data[i], "\(name) #\(pick.seq) byte \(i): DRAM decrypts to \(decrypted[i]), the write left \(v.data[i])") }
                checked += written.count
            } else if written.allSatisfy({ !v.cbit[$0] }) {
                for i in written { #expect(v.dram[i] == v.data[i], "\(name) #\(pick.seq) byte \(i): DRAM holds \(v.dram[i]), the write left \(v.data[i])") }
                checked += written.count
            } else {
                otherKeys += 1
            }
        }
        #expect(checked > 0 || otherKeys > 0, "\(name): nothing compared")
    }

    @Test("the shortcut (re-run to the last control event, replay the writes since) gives exactly what re-running to the event gives",
          arguments: bundles)
    func shortcutAgreesWithRerun(bundle name: String) throws {
        let bundle = try TraceBundle(existing: Self.traces.appendingPathComponent(name).path)
        let reader = try bundle.reader()
        var names: [UInt16: String] = [:]
        for row in try bundle.index().database.prepare("SELECT vm, name FROM vms").rows() {
            if case .integer(let id) = row[0], case .text(let n) = row[1] { names[UInt16(id)] = n }
        }
        // Places that writes touch, at points spread over the trace (and the writes themselves).
        var writes: [(seq: UInt64, place: MemoryTimeTravel.Place)] = []
        try reader.forEachEvent { e in
            if case .memoryAccess(let a) = e.body, !a.kind.isRead {
                if let n = names[a.vm], a.actor != .hypervisor {
                    writes.append((e.seq, .gpa(vm: n, a.gpa & ~31)))
                } else {
                    writes.append((e.seq, .spa(a.spa & ~15)))
                }
            }
            return true
        }
        guard !writes.isEmpty else { return }
        let total = try reader.eventCount()
        var rng = SplitMix(seed: UInt64(name.utf8.reduce(11) { $0 &* 31 &+ UInt64($1) }))
        var shortcuts = 0
        for i in 0..<4 {
            let w = writes[Int(rng.next() % UInt64(writes.count))]
            // At the write or just after it, and at a random later point.
            let later = w.seq + rng.next() % max(1, total - w.seq)
            for seq in [min(total - 1, w.seq + UInt64(i % 2)), later] {
                let rerun = try? MemoryTimeTravel.view(bundle, at: seq, w.place, length: 48, method: .rerun)
                let limits = ScenarioLimits(machine: MachineLimits(maxSteps: .max))
                guard let fast = try? MemoryTimeTravel.shortcut(bundle, reader, at: seq, w.place, length: 48, limits: limits) else { continue }
                shortcuts += 1
                #expect(fast == rerun, "\(name) #\(seq) \(w.place)")
                if shortcuts == 1 { #expect(try MemoryTimeTravel.view(bundle, at: seq, w.place, length: 48) == rerun, "\(name) #\(seq)") }
            }
        }
        if name == "smp.sevtrace" || name == "default.sevtrace" { #expect(shortcuts > 0, "\(name): the shortcut never applied") }
        // Write-backs move data the trace does not name: with caches the shortcut must step aside.
        if name == "core-caches.sevtrace" { #expect(shortcuts == 0) }
    }

    @Test("the re-run may take the steps the recording took to reach the event, whatever the step limit says")
    func stepsOfTheRecording() throws {
        let bundle = try TraceBundle(existing: Self.traces.appendingPathComponent("conformance/guest-states.sevtrace").path)
        // 100 steps are far fewer than reaching event 8000 takes (the recording may have used --max-steps).
        let tight = ScenarioLimits(machine: MachineLimits(maxSteps: 100))
        let v = try MemoryTimeTravel.view(bundle, at: 8000, .gpa(vm: "guest", 0x110000), length: 16, limits: tight)
        #expect(v.data == Array("conformance-data".utf8))
    }

    @Test("asking for what is not there is an error that says why")
    func refusals() throws {
        let bundle = try TraceBundle(existing: Self.traces.appendingPathComponent("conformance/guest-states.sevtrace").path)
        let total = try bundle.reader().eventCount()
        #expect(throws: MemoryTimeTravel.Failure.self) { try MemoryTimeTravel.view(bundle, at: total, .spa(0), length: 16) }
        #expect(throws: MemoryTimeTravel.Failure.self) { try MemoryTimeTravel.view(bundle, at: 10, .spa(0), length: 0) }
        #expect(throws: MemoryTimeTravel.Failure.self) { try MemoryTimeTravel.view(bundle, at: 10, .gpa(vm: "nobody", 0), length: 16) }
        #expect(throws: MemoryTimeTravel.Failure.self) { try MemoryTimeTravel.view(bundle, at: 10, .spa(9 << 40), length: 16) }
        // Before the launch image is encrypted, the data is in the clear in DRAM; after, only the key reads it.
        let v = try MemoryTimeTravel.view(bundle, at: 8000, .gpa(vm: "guest", 0x110000), length: 16)
        #expect(v.data == Array("conformance-data".utf8) && v.decrypted == v.data && v.dram != v.data && v.cbit.allSatisfy { $0 })
    }
}
