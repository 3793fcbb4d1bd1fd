import SEVMachine
import TraceFormat

/// Reads one scenario line by line: what has been declared so far, and a parser per statement (the
/// `ScenarioReader+…` extensions, one method per statement). ``ScenarioParser`` is its public face.
final class ScenarioReader {
    let file: String
    let limits: ScenarioLimits
    var script: ScenarioScript
    /// The scenario's lines; `n` is the index of the next one to read (a `program` block reads ahead).
    let lines: [Substring]
    var n = 0

    var platformNames: [String] = []
    var vms: [String: (launched: Bool, sev: Bool)] = [:]
    var devices: Set<String> = []
    var owners: Set<String> = []
    var constants: [String: UInt64] = [:]
    /// Bytes the hypervisor read `as NAME`, by name: their length.
    var captures: [String: Int] = [:]
    var sawStatement = false
    /// The `schedule … during` whose actions are being read: its statement index and where it is.
    var openSchedule: (index: Int, location: SourceLocation)?

    /// The line being read: its number and where its statement starts.
    var lineNumber = 0
    var here: SourceLocation

    /// The statements and the method that parses each, in the order the reference lists them.
    static let statements = ["platform", "vm", "device", "shared", "data", "program", "owner", "launch", "inject", "run",
                             "schedule", "destroy", "secret", "dma", "hv", "debug", "attest", "migrate", "psp", "kvm"]

    /// The statements `times=N` may repeat: actions, not declarations.
    static let repeatable = ["run", "schedule", "dma", "hv", "debug", "attest", "secret", "psp", "kvm"]

    init(file: String, limits: ScenarioLimits, text: String, body: Substring) {
        self.file = file
        self.limits = limits
        script = ScenarioScript(file: file, text: text, platforms: [], statements: [])
        script.limits = limits
        // Swift reads "\r\n" as one Character, so split on either kind of line end.
        lines = body.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
        here = SourceLocation(file: file, line: 1, column: 1)
    }

    /// Reads every line; the script, with a default platform when none was declared.
    func read() throws(ScenarioError) -> ScenarioScript {
        let lexer = Lexer(file: file)
        while n < lines.count {
            lineNumber = n + 1
            let raw = try lexer.tokenize(lines[n], lineNumber: lineNumber)
            n += 1
            if raw.first?.word == "let" {
                try constant(raw)
                continue
            }
            try statementLine(Lexer.substitute(raw, constants))
        }
        if let open = openSchedule { throw ScenarioError(open.location, "`schedule … during` without a closing `end`") }
        if script.platforms.isEmpty { script.platforms = [("host", PlatformConfig())] }
        return script
    }

    /// A cursor over `tokens` of the current line.
    func cursor(_ tokens: [Token]) -> TokenCursor {
        TokenCursor(tokens: tokens, file: file, line: lineNumber, endColumn: lines[lineNumber - 1].count + 1)
    }

    /// `let NAME = VALUE [+|- VALUE]…`: a constant usable wherever a number goes.
    private func constant(_ raw: [Token]) throws(ScenarioError) {
        var c = cursor(raw)
        _ = c.next()
        let nameToken = c.peek
        let name = try c.word("a constant name")
        guard constants[name] == nil, vms[name] == nil, !devices.contains(name), !owners.contains(name),
              !platformNames.contains(name), Assembler.registerNumber(name) == nil else {
            throw c.error(at: nameToken!, "'\(name)' is already a name")
        }
        try c.punct("=")
        var value = cursor(Lexer.substitute(Array(raw[c.index...]), constants))
        var total = try value.number("a number or a constant")
        while !value.isAtEnd {
            let plus = value.accept("+")
            if !plus { try value.punct("-") }
            let operand = try value.number("a number or a constant")
            total = plus ? total &+ operand : total &- operand
        }
        constants[name] = total
    }

    /// One statement, with `times=N` at its end repeating it.
    private func statementLine(_ line: [Token]) throws(ScenarioError) {
        var tokens = line
        var times: (count: Int, token: Token)?
        if tokens.count >= 4, tokens[tokens.count - 3].word == "times", tokens[tokens.count - 2].kind == .punct("=") {
            let t = tokens[tokens.count - 1]
            guard let count = t.number, count >= 1, count <= limits.maxTimes else {
                throw ScenarioError(SourceLocation(file: file, line: lineNumber, column: t.column),
                                    "times takes 1 to \(limits.maxTimes) (raise the limit with --max-times)")
            }
            times = (Int(count), tokens[tokens.count - 3])
            tokens.removeLast(3)
        }
        guard !tokens.isEmpty else { return }
        let statementsBefore = script.statements.count
        var c = cursor(tokens)
        here = c.location
        let keywordToken = c.peek!
        let keyword = try c.word("a statement")
        if openSchedule != nil, !["dma", "hv", "end"].contains(keyword) {
            throw c.error(at: keywordToken, "only dma and hv actions go inside `schedule … during`, until `end`")
        }
        if let times, !Self.repeatable.contains(keyword) {
            throw ScenarioError(SourceLocation(file: file, line: lineNumber, column: times.token.column),
                                "times= repeats an action (\(Self.repeatable.joined(separator: ", "))), not `\(keyword)`")
        }
        try statement(keyword, at: keywordToken, &c)
        if let times, script.statements.count == statementsBefore + 1, times.count > 1 {
            let last = script.statements.removeLast()
            script.statements.append(.init(location: last.location, statement: .repeated(count: times.count, statement: last.statement)))
        }
    }

    /// Hands the rest of the line to the statement's parser.
    private func statement(_ keyword: String, at keywordToken: Token, _ c: inout TokenCursor) throws(ScenarioError) {
        switch keyword {
        case "platform": try platform(&c)
        case "vm": try vm(&c)
        case "device": try device(&c)
        case "owner": try owner(&c)
        case "shared": try shared(&c)
        case "data": try data(&c)
        case "program": try program(&c)
        case "launch": try launch(&c)
        case "inject": try inject(&c)
        case "debug": try debug(&c)
        case "attest": try attest(&c)
        case "migrate": try migrate(&c)
        case "run": try run(&c)
        case "destroy": try destroy(&c)
        case "schedule": try schedule(&c)
        case "end": try endBlock(&c)
        case "secret": try secret(&c)
        case "dma": try dma(&c)
        case "hv": try hv(&c)
        case "psp": try psp(&c)
        case "kvm": try kvm(&c)
        default:
            throw ScenarioError(SourceLocation(file: file, line: lineNumber, column: keywordToken.column),
                                "unknown statement '\(keyword)'; expected \(Self.choices(Self.statements))")
        }
    }

    /// `a, b or c`.
    static func choices(_ words: [String]) -> String {
        words.count < 2 ? words.joined() : words.dropLast().joined(separator: ", ") + " or " + words.last!
    }

    // MARK: - Names

    /// Adds a statement at the current line's place.
    func add(_ s: ScenarioScript.Statement) {
        script.statements.append(.init(location: here, statement: s))
        sawStatement = true
        if platformNames.isEmpty { platformNames.append("host") }
    }

    /// The `owner=NAME` option, checked.
    func knownOwner(_ o: TokenCursor.Options, _ c: TokenCursor) throws(ScenarioError) -> String? {
        guard let t = o.values["owner"] else { return nil }
        guard let name = t.word, owners.contains(name) else {
            throw c.error(at: t, "no owner named '\(t.spelling)' (declare it with `owner NAME`)")
        }
        return name
    }

    /// A declared VM's name.
    func knownVM(_ c: inout TokenCursor) throws(ScenarioError) -> String {
        let t = c.peek
        let name = try c.word("a VM name")
        guard vms[name] != nil else { throw c.error(at: t!, "no VM named '\(name)' (declare it with `vm \(name)`)") }
        return name
    }

    /// Refuses what must come before the VM's launch once it is launched.
    func notLaunched(_ vm: String, _ what: String) throws(ScenarioError) {
        if vms[vm]?.launched == true {
            throw ScenarioError(here, "\(what) for '\(vm)' must come before `launch \(vm)`: it is loaded and measured at launch")
        }
    }

    /// The `platform=NAME` option, or the first platform.
    func platformOption(_ o: TokenCursor.Options, _ c: TokenCursor) throws(ScenarioError) -> String {
        guard let t = o.values["platform"] else { return platformNames.first ?? "host" }
        guard let name = t.word, platformNames.contains(name) else {
            throw c.error(at: t, "no platform named '\(t.spelling)'")
        }
        return name
    }
}
