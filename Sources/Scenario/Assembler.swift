import SEVMachine

/// Assembles a `program … end` block into guest instructions. Labels (`name:`) may be used before they
/// are defined; they stand for the guest address of the instruction that follows them.
struct Assembler {
    let file: String
    /// Where the program is loaded (its guest addresses are identity-mapped).
    let base: UInt64
    /// The scenario's constants, usable as immediates.
    var constants: [String: UInt64] = [:]

    private enum Operand {
        case register(UInt8)
        case immediate(UInt64)
        case label(String, Token)
    }

    func assemble(_ lines: [(Int, Substring)]) throws(ScenarioError) -> [Instruction] {
        let lexer = Lexer(file: file)
        var labels: [String: UInt64] = [:]
        var pending: [(TokenCursor, SourceLocation)] = []
        for (lineNumber, text) in lines {
            var c = TokenCursor(tokens: Lexer.substitute(try lexer.tokenize(text, lineNumber: lineNumber), constants),
                                file: file, line: lineNumber,
                                endColumn: text.count + 1)
            while c.tokens.count >= c.index + 2, let w = c.peek?.word, c.tokens[c.index + 1].kind == .punct(":") {
                guard labels[w] == nil else { throw c.error("label '\(w)' is defined twice") }
                labels[w] = base + UInt64(pending.count * Instruction.size)
                _ = c.next()
                _ = c.next()
            }
            if !c.isAtEnd { pending.append((c, c.location)) }
        }
        var out: [Instruction] = []
        for (cursor, _) in pending {
            var c = cursor
            out.append(try instruction(&c, labels: labels))
        }
        return out
    }

    private func register(_ c: inout TokenCursor) throws(ScenarioError) -> UInt8 {
        guard let t = c.peek, let w = t.word, let r = Self.registerNumber(w) else {
            throw c.error("expected a register r0-r15, found \(c.found)")
        }
        _ = c.next()
        return r
    }

    static func registerNumber(_ w: String) -> UInt8? {
        guard w.hasPrefix("r"), let n = UInt8(w.dropFirst()), n < Instruction.registerCount else { return nil }
        return n
    }

    private func operand(_ c: inout TokenCursor) throws(ScenarioError) -> Operand {
        if c.accept("-") { return .immediate(0 &- (try c.number("a number"))) }
        guard let t = c.peek else { throw c.error("expected a register, number or label, found end of line") }
        if let n = t.number {
            _ = c.next()
            return .immediate(n)
        }
        if let w = t.word {
            _ = c.next()
            if let r = Self.registerNumber(w) { return .register(r) }
            return .label(w, t)
        }
        throw c.error("expected a register, number or label, found \(c.found)")
    }

    private func value(_ o: Operand, _ c: TokenCursor, labels: [String: UInt64]) throws(ScenarioError) -> UInt64 {
        switch o {
        case .immediate(let n): return n
        case .label(let name, let t):
            guard let v = labels[name] else { throw c.error(at: t, "undefined label '\(name)'") }
            return v
        case .register: throw c.error("expected a number or label, not a register")
        }
    }

    /// `[rB]`, `[rB + imm]`, `[rB - imm]`.
    private func memory(_ c: inout TokenCursor) throws(ScenarioError) -> (UInt8, UInt64) {
        try c.punct("[")
        let r = try register(&c)
        var offset: UInt64 = 0
        if c.accept("+") {
            offset = try c.number("an offset")
        } else if c.accept("-") {
            offset = 0 &- (try c.number("an offset"))
        }
        try c.punct("]")
        return (r, offset)
    }

    private func width(_ mnemonic: String, _ c: TokenCursor, _ t: Token) throws(ScenarioError) -> UInt8 {
        let parts = mnemonic.split(separator: ".")
        guard parts.count == 2 else { return 8 }
        guard let w = UInt8(parts[1]), [1, 2, 4, 8].contains(w) else {
            throw c.error(at: t, "access width must be .1, .2, .4 or .8 (bytes)")
        }
        return w
    }

    /// OUT and IN move data through RAX (r0), as on x86.
    private func rax(_ c: inout TokenCursor) throws(ScenarioError) {
        let at = c.peek
        let r = try register(&c)
        guard r == 0 else { throw c.error(at: at!, "port I/O goes through r0 (RAX)") }
    }

    private func ioWidth(_ mnemonic: String, _ c: TokenCursor, _ t: Token) throws(ScenarioError) -> UInt8 {
        let parts = mnemonic.split(separator: ".")
        guard parts.count == 2 else { return 1 }
        guard let w = UInt8(parts[1]), [1, 2, 4].contains(w) else {
            throw c.error(at: t, "port access width must be .1, .2 or .4 (bytes)")
        }
        return w
    }

    private func instruction(_ c: inout TokenCursor, labels: [String: UInt64]) throws(ScenarioError) -> Instruction {
        let t = c.peek!
        let mnemonic = try c.word("an instruction")
        let base = mnemonic.split(separator: ".").first.map(String.init) ?? mnemonic
        let insn: Instruction
        switch base {
        case "mov":
            let a = try register(&c)
            try c.punct(",")
            let o = try operand(&c)
            if case .register(let b) = o {
                insn = Instruction(.move, a: a, b: b)
            } else {
                insn = Instruction(.movImmediate, a: a, immediate: try value(o, c, labels: labels))
            }
        case "add", "sub":
            let a = try register(&c)
            try c.punct(",")
            let o = try operand(&c)
            if case .register(let b) = o {
                insn = Instruction(base == "add" ? .add : .sub, a: a, b: b)
            } else {
                let v = try value(o, c, labels: labels)
                insn = Instruction(.addImmediate, a: a, immediate: base == "add" ? v : 0 &- v)
            }
        case "xor", "and", "or":
            let a = try register(&c)
            try c.punct(",")
            let b = try register(&c)
            insn = Instruction(base == "xor" ? .xor : base == "and" ? .and : .or, a: a, b: b)
        case "load":
            let w = try width(mnemonic, c, t)
            let a = try register(&c)
            try c.punct(",")
            let (b, off) = try memory(&c)
            insn = Instruction(.load, a: a, b: b, width: w, immediate: off)
        case "store":
            let w = try width(mnemonic, c, t)
            let (a, off) = try memory(&c)
            try c.punct(",")
            let b = try register(&c)
            insn = Instruction(.store, a: a, b: b, width: w, immediate: off)
        case "copy":
            let a = try register(&c)
            try c.punct(",")
            let b = try register(&c)
            try c.punct(",")
            let n = try register(&c)
            insn = Instruction(.copy, a: a, b: b, c: n)
        case "jmp":
            insn = Instruction(.jump, immediate: try value(try operand(&c), c, labels: labels))
        case "jnz", "jz":
            let a = try register(&c)
            try c.punct(",")
            insn = Instruction(base == "jnz" ? .jumpIfNotZero : .jumpIfZero, a: a,
                               immediate: try value(try operand(&c), c, labels: labels))
        case "dma_map_single", "dma_unmap_single":
            let a = try register(&c)
            try c.punct(",")
            let b = try register(&c)
            try c.punct(",")
            insn = Instruction(base == "dma_map_single" ? .dmaMapSingle : .dmaUnmapSingle, a: a, b: b, c: try register(&c))
        case "set_memory_decrypted", "set_memory_encrypted", "set_memory_decrypted_noflush":
            let a = try register(&c)
            try c.punct(",")
            let pages = try c.number("a page count")
            let op: Instruction.Opcode = base == "set_memory_decrypted" ? .setMemoryDecrypted
                : base == "set_memory_encrypted" ? .setMemoryEncrypted : .setMemoryDecryptedNoFlush
            insn = Instruction(op, a: a, immediate: pages)
        case "out":
            let w = try ioWidth(mnemonic, c, t)
            let port = try c.number("a port number")
            try c.punct(",")
            try rax(&c)
            insn = Instruction(.out, a: 0, width: w, immediate: port & 0xFFFF)
        case "in":
            let w = try ioWidth(mnemonic, c, t)
            try rax(&c)
            try c.punct(",")
            insn = Instruction(.input, a: 0, width: w, immediate: try c.number("a port number") & 0xFFFF)
        case "outs", "ins":
            let port = try c.number("a port number")
            try c.punct(",")
            let a = try register(&c)
            try c.punct(",")
            insn = Instruction(base == "outs" ? .outs : .ins, a: a, c: try register(&c), immediate: port & 0xFFFF)
        case "vmmcall":
            insn = Instruction(.vmmcall)
        case "cpuid":
            insn = Instruction(.cpuid)
        case "rdmsr":
            insn = Instruction(.rdmsr)
        case "wrmsr":
            insn = Instruction(.wrmsr)
        case "hlt":
            insn = Instruction(.halt)
        default:
            throw c.error(at: t, "unknown instruction '\(mnemonic)'; expected mov, add, sub, xor, and, or, load, store, copy, jmp, jnz, jz, out, in, outs, ins, vmmcall, cpuid, rdmsr, wrmsr, dma_map_single, dma_unmap_single, set_memory_decrypted, set_memory_decrypted_noflush, set_memory_encrypted or hlt")
        }
        if !["load", "store", "out", "in"].contains(base) && mnemonic != base {
            throw c.error(at: t, "only load, store, out and in take a width suffix")
        }
        try c.expectEnd()
        return insn
    }
}
