import SEVMachine
import Testing
import TraceFormat
@testable import Scenario

/// Scenario input as strangers write it: other line ends, and requests past the limits, each refused
/// with an error that names the place and the option that raises the limit.
struct LimitTests {
    static let text = "platform memory=64M\nvm guest memory=4M\nprogram guest at=0x100000\n    mov r1, 2\n    hlt\nend\nlaunch guest\nrun guest\n"

    @Test("CRLF, lone CR, a UTF-8 BOM and a missing final newline parse as the same scenario",
          arguments: ["\r\n", "\r", "\n"], [false, true])
    func lineEnds(_ newline: String, _ bom: Bool) throws {
        let reference = try ScenarioParser(file: "t").parse(Self.text)
        var variant = Self.text.replacingOccurrences(of: "\n", with: newline)
        if bom { variant = "\u{FEFF}" + variant }
        for candidate in [variant, String(variant.dropLast(newline.count))] {
            let script = try ScenarioParser(file: "t").parse(candidate)
            #expect(script.statements.map(\.location.line) == reference.statements.map(\.location.line))
            let a = CollectingSink(), b = CollectingSink()
            try ScenarioRunner(script: reference, seed: 1).run(into: a)
            try ScenarioRunner(script: script, seed: 1).run(into: b)
            #expect(a.events == b.events)
        }
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var text: String
        var limits: ScenarioLimits
        var line: Int
        var column: Int
        var option: String
        var testDescription: String { option }
    }

    static let cases: [Case] = [
        Case(text: "vm guest memory=4M\nhv read guest 0 8 times=2000001\n", limits: ScenarioLimits(), line: 2, column: 25, option: "--max-times"),
        Case(text: "vm guest memory=4M\ndevice nic0\ndma nic0 read guest 0 17000000\n", limits: ScenarioLimits(), line: 3, column: 23,
             option: "--max-statement-bytes"),
        Case(text: "vm guest memory=4M\nsecret guest 0 k fill=1 len=0xFFFFFFFFFFFFFFFF\n", limits: ScenarioLimits(), line: 2, column: 29,
             option: "--max-statement-bytes"),
        Case(text: "platform memory=16G\n", limits: ScenarioLimits(), line: 1, column: 17, option: "--max-memory"),
        Case(text: "platform a memory=2G\nplatform b memory=4G\n", limits: ScenarioLimits(), line: 2, column: 19, option: "--max-memory"),
        Case(text: "# " + String(repeating: "x", count: 2000) + "\n", limits: ScenarioLimits(maxScenarioBytes: 1000), line: 1, column: 1,
             option: "--max-scenario-bytes"),
    ]

    @Test("a request past a limit names its line, column and the option that raises the limit", arguments: cases)
    func overLimit(_ c: Case) {
        do {
            _ = try ScenarioParser(file: "t.sev", limits: c.limits).parse(c.text)
            Issue.record("parsed")
        } catch {
            #expect(error.location == SourceLocation(file: "t.sev", line: c.line, column: c.column), "\(error)")
            #expect(error.message.contains(c.option), "\(error)")
        }
    }

    @Test("numbers that do not fit are errors, never traps", arguments: [
        "run guest vcpu=0xFFFFFFFFFFFFFFFF", "platform cbit=0xFFFFFFFFFFFFFFFF", "platform phys_bits=18446744073709551615",
        "hv unmap guest 0x1000 pages=0xFFFFFFFFFFFFFFFF", "hv swap-out guest 0 pages=0", "hv read guest 0xFFFFFFFFFFFFFFF8 16",
        "hv write guest 0xFFFFFFFFFFFFFFFF hex=\"00 11\"", "debug decrypt guest 0xFFFFFFFFFFFFFFFF 16",
        "debug encrypt guest 18446744073709551615 hex=\"f0 00\"",
    ])
    func hugeNumbers(_ line: String) throws {
        let text = line.hasPrefix("platform") ? line + "\nvm guest memory=4M\n" : "vm guest memory=4M\nlaunch guest\n" + line + "\n"
        // Refused where it is written, or when it runs: an error either way, never a trap.
        guard let script = try? ScenarioParser(file: "t").parse(text) else { return }
        #expect(throws: ScenarioError.self) { try ScenarioRunner(script: script, seed: 1).run(into: CountingSink()) }
    }

    @Test("a guest that never halts stops at --max-steps, and a run that makes too many events stops at the sink's request")
    func runLimits() throws {
        let spin = "vm guest memory=4M\nprogram guest at=0x100000\nloop:\n    jmp loop\nend\nlaunch guest\nrun guest\n"
        let limits = ScenarioLimits(machine: MachineLimits(maxSteps: 10_000))
        let script = try ScenarioParser(file: "t.sev", limits: limits).parse(spin)
        #expect(throws: ScenarioError.self) { try ScenarioRunner(script: script, seed: 1).run(into: CountingSink()) }
        do {
            try ScenarioRunner(script: script, seed: 1).run(into: CountingSink())
        } catch {
            #expect(error.location.line == 7)
            #expect(error.message.contains("--max-steps"))
        }
        final class Stopper: EventSink {
            var count = 0
            func record(cycle: UInt64, _ body: EventBody) { count += 1 }
            var stopRequest: String? { count > 5000 ? "enough (--max-events)" : nil }
        }
        let unlimited = try ScenarioParser(file: "t.sev").parse(spin)
        let stopper = Stopper()
        #expect(throws: ScenarioError.self) { try ScenarioRunner(script: unlimited, seed: 1).run(into: stopper) }
        #expect(stopper.count < 5000 + 4096 + 3 * 4096)  // checked every 4096 events and every 4096 steps
    }
}

extension LimitTests {
    @Test("guest registers that ask for endless work end at a clean error: string I/O, copies, bounces, C-bit flips",
          arguments: ["mov r6, 0x180000\n    mov r1, 0xFFFFFFFFFFFFFFFF\n    outs 0x3f8, r6, r1",
                      "mov r6, 0x180000\n    mov r1, 4G\n    ins 0x3f8, r6, r1",
                      "mov r1, 0x180000\n    mov r2, 0x190000\n    mov r3, 0xFFFFFFFFFFFFFFFF\n    copy r1, r2, r3",
                      "mov r1, 0x180000\n    mov r2, 0x190000\n    mov r3, 0xFFFFFFFFFFFFFFF0\n    dma_map_single r1, r2, r3",
                      "mov r1, 0xFFFFFFFFFFFFF000\n    set_memory_decrypted r1, 0xFFFFFFFFFFFF"])
    func endlessWork(_ body: String) throws {
        let text = "vm guest memory=4M\nprogram guest at=0x100000\n    \(body)\n    hlt\nend\nlaunch guest\nrun guest\n"
        let limits = ScenarioLimits(machine: MachineLimits(maxSteps: 100_000))
        let script = try ScenarioParser(file: "t.sev", limits: limits).parse(text)
        #expect(throws: ScenarioError.self) { try ScenarioRunner(script: script, seed: 1).run(into: CountingSink()) }
    }
}

extension LimitTests {
    static let spinScheduled = """
        vm guest memory=4M
        device nic0
        program guest at=0x100000
        loop:
            jmp loop
        end
        launch guest

        """

    /// Runs `text` under a budget of `steps` and returns the events it made before the error it must end in.
    private func eventsBeforeStepLimit(_ text: String, steps: UInt64) throws -> Int {
        let script = try ScenarioParser(file: "t.sev", limits: ScenarioLimits(machine: MachineLimits(maxSteps: steps))).parse(text)
        let sink = CountingSink()
        do {
            try ScenarioRunner(script: script, seed: 1).run(into: sink)
            Issue.record("the scenario ran to its end under a budget of \(steps) steps")
        } catch {
            #expect(error.message.contains("--max-steps"))
        }
        return Int(sink.count)
    }

    /// The events of the launch that every scenario here starts with.
    private func launchEvents() throws -> Int {
        let sink = CountingSink()
        try ScenarioRunner(script: try ScenarioParser(file: "t.sev").parse(Self.spinScheduled), seed: 1).run(into: sink)
        return Int(sink.count)
    }

    @Test("a guest preempted after every instruction pays for its world switches: the step budget bounds the work")
    func worldSwitchesCount() throws {
        let events = try eventsBeforeStepLimit(Self.spinScheduled + "schedule guest quantum=1\n", steps: 10_000) - launchEvents()
        // Each one-instruction slice costs 1 + Machine.worldSwitchSteps steps and makes about five events.
        #expect(events < 10_000 / Int(Machine.worldSwitchSteps) * 8)
        #expect(events > 10_000 / Int(Machine.worldSwitchSteps))
    }

    @Test("DMA and hypervisor accesses count as steps, also between a scheduled guest's slices",
          arguments: ["schedule guest quantum=3 during\n    dma nic0 read guest 0x0 4096 times=1000\nend\n",
                      "hv read guest 0x0 4096 times=1000\n",
                      "dma nic0 write guest 0x0 hex=\"00 11 22 33 44 55 66 77\" times=100000\n"])
    func hostAccessesCount(_ tail: String) throws {
        let text = Self.spinScheduled.replacingOccurrences(of: "    jmp loop", with: "    hlt") + tail
        let events = try eventsBeforeStepLimit(text, steps: 10_000) - launchEvents()
        #expect(events < 10_000)
    }

    @Test("a recording limit stops device work scheduled between a guest's slices")
    func scheduledActionsStop() throws {
        final class Stopper: EventSink {
            var count = 0
            func record(cycle: UInt64, _ body: EventBody) { count += 1 }
            var stopRequest: String? { count > 5000 ? "enough (--max-events)" : nil }
        }
        let text = Self.spinScheduled.replacingOccurrences(of: "    jmp loop", with: "    hlt")
            + "schedule guest quantum=3 during\n    dma nic0 read guest 0x0 4096 times=1000\nend\n"
        let script = try ScenarioParser(file: "t.sev", limits: ScenarioLimits(machine: MachineLimits(maxSteps: .max))).parse(text)
        let stopper = Stopper()
        #expect(throws: ScenarioError.self) { try ScenarioRunner(script: script, seed: 1).run(into: stopper) }
        #expect(stopper.count < 5000 + 2 * 4096 + 512)
    }
}
