import Foundation
import SEVMachine
import Testing
import TraceFormat
@testable import Scenario

struct DeterminismTests {
    func events(_ text: String, seed: UInt64) throws -> [TraceEvent] {
        let sink = CollectingSink()
        try ScenarioRunner(script: try ScenarioParser(file: "t").parse(text), seed: seed).run(into: sink)
        return sink.events
    }

    @Test("the same scenario and seed give the same events")
    func sameSeed() throws {
        #expect(try events(DefaultScenario.text, seed: 3) == events(DefaultScenario.text, seed: 3))
    }

    @Test("another seed gives other keys, so other ciphertext, and the same plaintext behaviour")
    func otherSeed() throws {
        let a = try events(DefaultScenario.text, seed: 1), b = try events(DefaultScenario.text, seed: 2)
        #expect(a.count == b.count)
        #expect(a != b)
        let plain = { (e: [TraceEvent]) in
            e.compactMap { ev -> UInt64? in
                if case .memoryAccess(let m) = ev.body, m.actor != .hypervisor, m.actor != .psp { m.value } else { nil }
            }
        }
        #expect(plain(a) == plain(b), "guest-visible values do not depend on the keys")
    }

    @Test("psp … expect= holds a raw firmware command to its status", arguments: [
        ("psp df_flush expect=ok\n", true),
        ("psp df_flush expect=SUCCESS\n", true),
        ("psp df_flush expect=WBINVD_REQUIRED\n", false),
        ("psp deactivate guest\npsp df_flush expect=WBINVD_REQUIRED\n", true),
        ("psp deactivate guest\npsp df_flush\n", true),
    ])
    func pspExpectation(tail: String, holds: Bool) throws {
        let text = "vm guest memory=2M\nprogram guest\n    hlt\nend\nlaunch guest\n" + tail
        if holds {
            _ = try events(text, seed: 1)
        } else {
            #expect(throws: ScenarioError.self) { _ = try self.events(text, seed: 1) }
        }
    }

    @Test("run expect=shutdown records a crash as a SHUTDOWN exit; a run that halts instead is an error")
    func expectedShutdown() throws {
        let base = "vm guest memory=4M\nprogram guest\n    mov r1, 0x7000000\n    load r2, [r1]\n    hlt\nend\nlaunch guest\n"
        let crashed = try events(base + "run guest expect=shutdown\n", seed: 1)
        let exits = crashed.compactMap { if case .vmExit(let x) = $0.body { x.exitCode } else { nil } }
        #expect(exits == [VMExit.cpuid, VMExit.msr, VMExit.shutdown], "early boot's SEV detection, then the crash")
        let fine = "vm guest memory=4M\nprogram guest\n    hlt\nend\nlaunch guest\nrun guest expect=shutdown\n"
        #expect(throws: ScenarioError.self) { _ = try self.events(fine, seed: 1) }
    }

    static let smp: String = {
        var text = "platform memory=128M\n"
        for v in ["a", "b", "c", "d"] {
            text += "vm \(v) memory=2M vcpus=2\ndata \(v) 0x180000 fill=0 len=16\n"
            text += "program \(v) at=0x100000\n    mov r1, r7\n    add r1, 0x180000\n    mov r3, 30\nagain:\n"
            text += "    load.1 r4, [r1]\n    add r4, 1\n    store.1 [r1], r4\n    sub r3, 1\n    jnz r3, again\n    hlt\nend\n"
            text += "launch \(v)\n"
        }
        return text + "schedule a b c d quantum=6\n"
    }()

    @Test("4 VMs × 2 vCPUs: the same seed interleaves identically, another seed differently, and every vCPU finishes")
    func scheduler() throws {
        let one = try events(Self.smp, seed: 1), again = try events(Self.smp, seed: 1), other = try events(Self.smp, seed: 2)
        #expect(one == again)
        let order = { (e: [TraceEvent]) in e.compactMap { ev -> String? in if case .vmRun(let r) = ev.body { "\(r.vm).\(r.vcpu)" } else { nil } } }
        #expect(order(one) != order(other))
        #expect(Set(order(one)) == ["0.0", "0.1", "1.0", "1.1", "2.0", "2.1", "3.0", "3.1"])
        let halts = { (e: [TraceEvent]) in e.filter { if case .vcpuHalt = $0.body { true } else { false } }.count }
        #expect(halts(one) == 8 && halts(other) == 8)
        let preemptions = one.filter { if case .vmExit(let x) = $0.body { x.exitCode == VMExit.interrupt } else { false } }
        #expect(!preemptions.isEmpty)
    }

    @Test("a runtime error names the statement that caused it")
    func runtimeError() throws {
        let text = "vm guest memory=4M\nprogram guest\n    mov r1, 0x7000000\n    load r2, [r1]\n    hlt\nend\nlaunch guest\nrun guest\n"
        let script = try ScenarioParser(file: "t.sev").parse(text)
        do {
            try ScenarioRunner(script: script, seed: 1).run(into: CountingSink())
            Issue.record("ran")
        } catch {
            #expect(error.location.line == 8)
            #expect(error.message.contains("page fault at 0x7000000"))
        }
    }

    static let race = try! String(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Traces/scenarios/race.sev"), encoding: .utf8)

    /// How many of the NIC's reads in the race scenario saw the key (its first byte, 0xd1) rather than zeros.
    func keyReads(seed: UInt64) throws -> Int {
        try events(Self.race, seed: seed).filter {
            if case .memoryAccess(let m) = $0.body, case .device = m.actor { m.value & 0xFF == 0xd1 } else { false }
        }.count
    }

    @Test("schedule … during places device actions between guest slices by the seed: seed 1 catches the key, seed 8 does not")
    func actionsDuringSchedule() throws {
        #expect(try keyReads(seed: 1) > 0)
        #expect(try keyReads(seed: 8) == 0)
        #expect(try events(Self.race, seed: 8) == events(Self.race, seed: 8))
    }
}
