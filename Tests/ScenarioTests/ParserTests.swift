import SEVMachine
import TraceFormat
import Testing
@testable import Scenario

struct ParserTests {
    static let header = "platform memory=64M\nvm guest memory=4M\n"

    struct BadCase: Sendable, CustomTestStringConvertible {
        var text: String
        var line: Int
        var column: Int
        var message: String
        var testDescription: String { message }
    }

    static let bad: [BadCase] = [
        BadCase(text: header + "program guest\n    mov r1, 1\n    lod r2, [r1]\n    hlt\nend\n", line: 5, column: 5,
                message: "unknown instruction 'lod'"),
        BadCase(text: header + "lanch guest\n", line: 3, column: 1, message: "unknown statement 'lanch'"),
        BadCase(text: header + "run gest\n", line: 3, column: 5, message: "no VM named 'gest'"),
        BadCase(text: header + "vm guest\n", line: 3, column: 4, message: "VM 'guest' is already declared"),
        BadCase(text: header + "hv read guest 0x1000 12x\n", line: 3, column: 22, message: "invalid number '12x'"),
        BadCase(text: header + "data guest 0x1000 text=\"abc\n", line: 3, column: 24, message: "unterminated string"),
        BadCase(text: header + "program guest\n    jmp nowhere\nend\n", line: 4, column: 9, message: "undefined label 'nowhere'"),
        BadCase(text: header + "program guest\n    mov r16, 1\nend\n", line: 4, column: 9, message: "expected a register r0-r15"),
        BadCase(text: header + "program guest\n    hlt\n", line: 3, column: 1, message: "`program` without a closing `end`"),
        BadCase(text: header + "dma nic0 read guest 0 8\n", line: 3, column: 5, message: "no device named 'nic0'"),
        BadCase(text: header + "vm other memory=3M\n", line: 3, column: 1, message: "VM memory must be a multiple of 2M"),
        BadCase(text: header + "launch guest\nprogram guest\n    hlt\nend\n", line: 4, column: 1, message: "`program` for 'guest' must come before"),
        BadCase(text: header + "platform cbit=47\n", line: 3, column: 1, message: "`platform` must come before"),
        BadCase(text: header + "secret guest 0x300000 key hex=\"abc\"\n", line: 3, column: 31, message: "hex needs an even"),
        BadCase(text: header + "vm x memory=4M colour=red\n", line: 3, column: 16, message: "unknown option 'colour'"),
        BadCase(text: header + "program guest\n    load.3 r1, [r2]\nend\n", line: 4, column: 5, message: "access width must be"),
        BadCase(text: header + "program guest\n    out 0x3f8, r3\nend\n", line: 4, column: 16, message: "port I/O goes through r0 (RAX)"),
        BadCase(text: header + "hv remap guest 0x1000 to=0x2000 of=ghost\n", line: 3, column: 36, message: "no VM named 'ghost'"),
        BadCase(text: header + "migrate guest to=nowhere as=x\n", line: 3, column: 1, message: "migrate needs to=PLATFORM"),
        BadCase(text: header + "inject guest 0x1000 k hex=\"00\"\n", line: 3, column: 23, message: "inject needs owner=NAME"),
        BadCase(text: header + "launch guest pin=maybe\n", line: 3, column: 18, message: "pin takes yes or no"),
        BadCase(text: header + "hv migrate guest\n", line: 3, column: 17, message: "expected a guest physical address"),
        BadCase(text: header + "vm x memory=6M slots=2\n", line: 3, column: 22, message: "slots is 1 to 8"),
        BadCase(text: header + "hv wbinvd core=1\n", line: 3, column: 16, message: "core must be below the platform's 1 cores"),
        BadCase(text: "platform sme=yes memenc=no\n", line: 1, column: 14, message: "sme=yes needs memory encryption"),
        BadCase(text: header + "hv cpuid guest cbit=64\n", line: 3, column: 21, message: "cbit is a bit position"),
        BadCase(text: header + "vm x memory=4M paging=legacy verify_cbit=yes\n", line: 3, column: 42, message: "a 32-bit guest has no C-bit"),
        BadCase(text: "platform phys_bits=56\n", line: 1, column: 20, message: "option 'phys_bits' takes a number from 40 to 52"),
        BadCase(text: "platform cache=64K cores=65\n", line: 1, column: 26, message: "cores must be 1 to 64"),
        BadCase(text: "platform sme=on\n", line: 1, column: 14, message: "sme takes yes or no"),
        BadCase(text: header + "vm x memory=4M paging=flat\n", line: 3, column: 23, message: "paging is long, pae or legacy"),
        BadCase(text: header + "vm x memory=4M paging=pae mmio=0x100000000\n", line: 3, column: 32, message: "below 4G with pae paging"),
        BadCase(text: header + "vm x memory=6M paging=legacy\n", line: 3, column: 13, message: "multiple of 4M"),
        BadCase(text: header + "vm x memory=4M paging=legacy pages=2M\n", line: 3, column: 36, message: "4M with paging=legacy"),
        BadCase(text: header + "end\n", line: 3, column: 1, message: "`end` without a `schedule … during`"),
        BadCase(text: header + "schedule guest during\n    hv read guest 0 8\n", line: 3, column: 1,
                message: "`schedule … during` without a closing `end`"),
        BadCase(text: header + "schedule guest during\n    launch guest\nend\n", line: 4, column: 5,
                message: "only dma and hv actions go inside"),
        BadCase(text: header + "vm x memory=4M mmio=0x1000\n", line: 3, column: 21, message: "mmio must be a 4K-aligned address above"),
        BadCase(text: header + "vm x memory=4M mmio=0xfeb00010\n", line: 3, column: 21, message: "mmio must be a 4K-aligned"),
        BadCase(text: header + "debug decrypt guest 0x1000 16 expect=MAYBE\n", line: 3, column: 38, message: "unknown outcome 'MAYBE'"),
        BadCase(text: header + "hv write guest 0x1000 snap\n", line: 3, column: 23, message: "no bytes were captured as 'snap'"),
        BadCase(text: header + "hv read guest 0x1000 16 as\n", line: 3, column: 27, message: "expected a name for the bytes read"),
        BadCase(text: header + "hv read guest 0x1000 16 as snap extra\n", line: 3, column: 33, message: "unexpected 'extra'"),
        BadCase(text: header + "kvm guest launch_begin\n", line: 3, column: 11, message: "unknown KVM_SEV sub-command 'launch_begin'"),
        BadCase(text: header + "kvm guest id=x\n", line: 3, column: 14, message: "expected a sub-command number"),
        BadCase(text: header + "kvm guest id=4294967296\n", line: 3, column: 14, message: "id takes a sub-command number"),
        BadCase(text: header + "kvm guest init expect=EWHAT\n", line: 3, column: 23, message: "unknown outcome 'EWHAT'"),
        BadCase(text: header + "kvm guest init colour=red\n", line: 3, column: 16, message: "unknown option 'colour'"),
        BadCase(text: header + "kvm ghost init\n", line: 3, column: 5, message: "no VM named 'ghost'"),
    ]

    @Test("expect-hex= passes on the bytes a command gave back and names both when they differ",
          arguments: [("636f6e666f726d616e63652d64617461", nil), ("00", "expected bytes 00, got 636f6e66")] as [(String, String?)])
    func expectHex(_ hex: String, _ failure: String?) throws {
        let text = """
            platform memory=64M
            vm guest memory=4M policy=0x0
            data guest 0x110000 text="conformance-data"
            launch guest
            debug decrypt guest 0x110000 \(hex.count / 2 == 16 ? 16 : 4) expect-hex="\(hex)"
            """
        let script = try ScenarioParser(file: "t").parse(text)
        do {
            try ScenarioRunner(script: script, seed: 1).run(into: CountingSink())
            #expect(failure == nil)
        } catch {
            #expect(failure.map { "\(error)".contains($0) } == true, "\(error)")
        }
    }

    @Test("hv answer: IN, MMIO loads, CPUID and RDMSR get the values the hypervisor chose; other ports and leaves keep KVM's")
    func hypervisorAnswers() throws {
        let text = """
            platform memory=64M
            vm guest memory=4M policy=0x0 mmio=0xfeb00000
            hv answer guest in 0x60 0x1234
            hv answer guest mmio 0xfeb00010 0xdead
            hv answer guest cpuid 0x40000000 eax=0x40000001 ebx=0x4b4d564b
            hv answer guest msr 0xc0010131 0
            program guest at=0x100000
                in.2 r0, 0x60
                mov r8, r0
                in.1 r0, 0x61
                mov r9, r0
                mov r1, 0xfeb00010
                load r10, [r1]
                mov r0, 0x40000000
                cpuid
                mov r11, r0
                mov r12, r3
                mov r1, 0xc0010131
                rdmsr
                mov r13, r0
                hlt
            end
            launch guest
            run guest
            """
        let sink = CollectingSink()
        try ScenarioRunner(script: try ScenarioParser(file: "t").parse(text), seed: 1).run(into: sink)
        let hlt = try #require(sink.events.compactMap { if case .vmExit(let x) = $0.body, x.exitCode == VMExit.hlt { x } else { nil } }.last)
        #expect(hlt.registers[8] == 0x1234 && hlt.registers[9] == 0xFF, "port 0x60 answered; 0x61 reads the default 0xFF")
        #expect(hlt.registers[10] == 0xdead, "the MMIO load got the chosen value")
        #expect(hlt.registers[11] == 0x4000_0001 && hlt.registers[12] == 0x4b4d_564b, "CPUID leaf 0x40000000 answered")
        #expect(hlt.registers[13] == 0, "SEV_STATUS answered 0: the hypervisor says SEV is off")
        #expect(throws: ScenarioError.self) { _ = try ScenarioParser(file: "t").parse("vm g memory=2M\nhv answer g in 0x10000 1\n") }
        #expect(throws: ScenarioError.self) { _ = try ScenarioParser(file: "t").parse("vm g memory=2M\nhv answer g port 1 1\n") }
    }

    @Test("expect= takes ok, REFUSED, a firmware status or an errno by name or number, and matches only its outcome",
          arguments: [
            ("ok", Outcome.ok, true), ("SUCCESS", Outcome.ok, true), ("EINVAL", Outcome(errno: 22), true),
            ("einval", Outcome(errno: 22), true), ("errno22", Outcome(errno: 22), true), ("errno 22", Outcome(errno: 22), true),
            ("EIO", Outcome(errno: 5, firmware: .invalidGuestState), true),
            ("INVALID_GUEST_STATE", Outcome(errno: 5, firmware: .invalidGuestState), true),
            ("ok", Outcome(errno: 22), false), ("EINVAL", Outcome(errno: 9), false), ("EINVAL", Outcome.ok, false),
            ("INVALID_GUEST", Outcome(errno: 5, firmware: .invalidGuestState), false),
            ("REFUSED", Outcome(refused: true), true), ("ok", Outcome(refused: true), false),
            ("WBINVD_REQUIRED", Outcome(firmware: .wbinvdRequired), true), ("ok", Outcome(firmware: .success), true),
          ] as [(String, Outcome, Bool)])
    func expectations(_ expect: String, _ outcome: Outcome, _ matches: Bool) {
        #expect(Outcome.isKnown(expect))
        #expect(outcome.matches(expect) == matches, "\(expect) against \(outcome)")
    }

    @Test("errors point at the line and column of the mistake", arguments: bad)
    func errors(_ c: BadCase) {
        do {
            _ = try ScenarioParser(file: "t.sev").parse(c.text)
            Issue.record("parsed without error")
        } catch {
            #expect(error.location == SourceLocation(file: "t.sev", line: c.line, column: c.column), "\(error)")
            #expect(error.message.contains(c.message), "\(error)")
            #expect(error.description.hasPrefix("t.sev:\(c.line):\(c.column): error: "))
        }
    }

    @Test("the default scenario parses, and declares what the walking skeleton needs")
    func defaultScenario() throws {
        let s = try ScenarioParser(file: "default").parse(DefaultScenario.text)
        #expect(s.platform.cbitPosition == 47 && s.platform.apiMinor == 17)
        #expect(s.statements.count == 10)
    }

    @Test("constants name addresses anywhere a number goes, and times= repeats an action")
    func constantsAndRepetition() throws {
        let text = """
            let TX = 0x200000
            let RX = TX + 0x1000
            vm guest memory=4M
            device nic0
            shared guest TX pages=2
            program guest at=0x100000
                mov r1, RX
                hlt
            end
            dma nic0 read guest RX 64 times=1000
            """
        let s = try ScenarioParser(file: "t").parse(text)
        guard case .shared(_, let gpa, let pages) = s.statements[2].statement, gpa == 0x200000, pages == 2 else {
            Issue.record("\(s.statements[2].statement)")
            return
        }
        guard case .program(_, _, let insns) = s.statements[3].statement else { return }
        #expect(insns[0].immediate == 0x201000)
        guard case .repeated(let count, .dmaRead(_, _, let rx, let length)) = s.statements[4].statement else {
            Issue.record("not repeated: \(s.statements[4].statement)")
            return
        }
        #expect(count == 1000 && rx == 0x201000 && length == 64)
        #expect(throws: ScenarioError.self) { _ = try ScenarioParser(file: "t").parse("vm guest\nvm other times=3\n") }
        #expect(throws: ScenarioError.self) { _ = try ScenarioParser(file: "t").parse("let guest = 1\nlet guest = 2\n") }
    }

    @Test("sums and differences work wherever a number goes: statements, options and guest programs")
    func expressions() throws {
        let text = """
            let TX = 0x200000
            vm guest memory=4M
            device nic0
            shared guest TX+0x1000 pages=1+1
            program guest at=0x100000
                mov r1, TX + 0x10 - 8
                hlt
            end
            dma nic0 read guest TX+0x1000 64-32
            kvm guest launch_update_data gpa=0x100000+0x10 len=8+8
            """
        let s = try ScenarioParser(file: "t").parse(text)
        guard case .shared(_, let gpa, let pages) = s.statements[2].statement else { Issue.record("\(s.statements[2])"); return }
        #expect(gpa == 0x201000 && pages == 2)
        guard case .program(_, _, let insns) = s.statements[3].statement else { Issue.record("\(s.statements[3])"); return }
        #expect(insns[0].immediate == 0x200008)
        guard case .dmaRead(_, _, let rx, let length) = s.statements[4].statement else { Issue.record("\(s.statements[4])"); return }
        #expect(rx == 0x201000 && length == 32)
        guard case .kvm(let k) = s.statements[5].statement else { Issue.record("\(s.statements[5])"); return }
        #expect(k.gpa == 0x100010 && k.length == 16)
    }

    @Test("numbers: decimal, hex, binary, size suffixes, separators")
    func numbers() {
        #expect(Lexer.parseNumber("42") == 42)
        #expect(Lexer.parseNumber("0x1F") == 31)
        #expect(Lexer.parseNumber("0b101") == 5)
        #expect(Lexer.parseNumber("4K") == 4096)
        #expect(Lexer.parseNumber("2M") == 2 << 20)
        #expect(Lexer.parseNumber("1_000") == 1000)
        #expect(Lexer.parseNumber("0x") == nil)
        #expect(Lexer.parseNumber("99999999999999999999") == nil)
    }

    @Test("the assembler resolves labels forward and backward and encodes operands")
    func assembler() throws {
        let text = Self.header + """
            program guest at=0x100000
            top:
                mov r1, 0x200000
                load.4 r2, [r1+8]
                store.1 [r1-1], r2
                sub r3, 1
                jnz r3, top
                jz r3, done
                copy r1, r2, r3
            done: hlt
            end
            """
        let s = try ScenarioParser(file: "t").parse(text)
        guard case .program(_, let gpa, let insns) = s.statements.last!.statement else {
            Issue.record("no program")
            return
        }
        #expect(gpa == 0x100000)
        #expect(insns.count == 8)
        #expect(insns[1] == Instruction(.load, a: 2, b: 1, width: 4, immediate: 8))
        #expect(insns[2] == Instruction(.store, a: 1, b: 2, width: 1, immediate: UInt64.max))
        #expect(insns[3] == Instruction(.addImmediate, a: 3, immediate: UInt64.max))
        #expect(insns[4].immediate == 0x100000)
        #expect(insns[5].immediate == 0x100000 + 7 * 16)
        for i in insns { #expect(Instruction.decode(lo(i), hi(i)) == i) }
    }

    func lo(_ i: Instruction) -> UInt64 { i.encoded[0..<8].enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) } }
    func hi(_ i: Instruction) -> UInt64 { i.encoded[8..<16].enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) } }
}
