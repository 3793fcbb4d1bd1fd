import Foundation
import SEVMachine
import TraceFormat

/// Parses the scenario language (v1); the reference is Traces/README.md.
public struct ScenarioParser {
    public let file: String
    public let limits: ScenarioLimits

    public init(file: String, limits: ScenarioLimits = ScenarioLimits()) {
        self.file = file
        self.limits = limits
    }

    /// Parses `text`, checking every name it refers to. Line ends may be LF or CRLF, a UTF-8 byte-order
    /// mark is skipped, and the last line needs no line end: all parse as the same scenario.
    public func parse(_ text: String) throws(ScenarioError) -> ScenarioScript {
        guard text.utf8.count <= limits.maxScenarioBytes else {
            throw ScenarioError(SourceLocation(file: file, line: 1, column: 1),
                                "the scenario is \(text.utf8.count) bytes, over the limit of \(limits.maxScenarioBytes) (raise it with --max-scenario-bytes)")
        }
        let lexer = Lexer(file: file)
        var script = ScenarioScript(file: file, text: text, platforms: [], statements: [])
        script.limits = limits
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
        var body = Substring(text)
        if body.first == "\u{FEFF}" { body = body.dropFirst() }
        // Swift reads "\r\n" as one Character, so split on either kind of line end.
        let lines = body.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
        var n = 0
        while n < lines.count {
            let lineNumber = n + 1
            let raw = try lexer.tokenize(lines[n], lineNumber: lineNumber)
            // `let NAME = VALUE [+|- VALUE]`: a constant usable wherever a number goes.
            if raw.first?.word == "let" {
                var c = TokenCursor(tokens: raw, file: file, line: lineNumber, endColumn: lines[n].count + 1)
                _ = c.next()
                let nameToken = c.peek
                let name = try c.word("a constant name")
                guard constants[name] == nil, vms[name] == nil, !devices.contains(name), !owners.contains(name),
                      !platformNames.contains(name), Assembler.registerNumber(name) == nil else {
                    throw c.error(at: nameToken!, "'\(name)' is already a name")
                }
                try c.punct("=")
                var cursor = TokenCursor(tokens: Lexer.substitute(Array(raw[c.index...]), constants), file: file,
                                         line: lineNumber, endColumn: lines[n].count + 1)
                var value = try cursor.number("a number or a constant")
                while !cursor.isAtEnd {
                    let plus = cursor.accept("+")
                    if !plus { try cursor.punct("-") }
                    let operand = try cursor.number("a number or a constant")
                    value = plus ? value &+ operand : value &- operand
                }
                constants[name] = value
                n += 1
                continue
            }
            var tokens = Lexer.substitute(raw, constants)
            // `times=N` at the end of an action repeats it: one line, as many accesses as wanted.
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
            let statementsBefore = script.statements.count
            defer {
                if let times, script.statements.count == statementsBefore + 1, times.count > 1 {
                    let last = script.statements.removeLast()
                    script.statements.append(.init(location: last.location,
                                                   statement: .repeated(count: times.count, statement: last.statement)))
                }
            }
            n += 1
            guard !tokens.isEmpty else { continue }
            var c = TokenCursor(tokens: tokens, file: file, line: lineNumber, endColumn: lines[n - 1].count + 1)
            let here = c.location
            let keywordToken = c.peek!
            let keyword = try c.word("a statement")
            if openSchedule != nil, !["dma", "hv", "end"].contains(keyword) {
                throw c.error(at: keywordToken, "only dma and hv actions go inside `schedule … during`, until `end`")
            }
            if let times, !["run", "schedule", "dma", "hv", "debug", "attest", "secret", "psp", "kvm"].contains(keyword) {
                throw ScenarioError(SourceLocation(file: file, line: lineNumber, column: times.token.column),
                                    "times= repeats an action (run, schedule, dma, hv, debug, attest, secret, psp, kvm), not `\(keyword)`")
            }

            func knownOwner(_ o: TokenCursor.Options, _ c: TokenCursor) throws(ScenarioError) -> String? {
                guard let t = o.values["owner"] else { return nil }
                guard let name = t.word, owners.contains(name) else {
                    throw c.error(at: t, "no owner named '\(t.spelling)' (declare it with `owner NAME`)")
                }
                return name
            }
            func knownVM(_ c: inout TokenCursor) throws(ScenarioError) -> String {
                let t = c.peek
                let name = try c.word("a VM name")
                guard vms[name] != nil else { throw c.error(at: t!, "no VM named '\(name)' (declare it with `vm \(name)`)") }
                return name
            }
            func notLaunched(_ vm: String, _ what: String) throws(ScenarioError) {
                if vms[vm]?.launched == true {
                    throw ScenarioError(here, "\(what) for '\(vm)' must come before `launch \(vm)`: it is loaded and measured at launch")
                }
            }
            func add(_ s: ScenarioScript.Statement) {
                script.statements.append(.init(location: here, statement: s))
                sawStatement = true
                if platformNames.isEmpty { platformNames.append("host") }
            }
            /// The `platform=NAME` option, or the first platform.
            func platformOption(_ o: TokenCursor.Options, _ c: TokenCursor) throws(ScenarioError) -> String {
                guard let t = o.values["platform"] else { return platformNames.first ?? "host" }
                guard let name = t.word, platformNames.contains(name) else {
                    throw c.error(at: t, "no platform named '\(t.spelling)'")
                }
                return name
            }

            switch keyword {
            case "platform":
                guard !sawStatement else { throw ScenarioError(here, "`platform` must come before every other statement") }
                var name = "host"
                if let t = c.peek, let w = t.word, c.tokens.count == c.index + 1 || c.tokens[c.index + 1].kind != .punct("=") {
                    _ = c.next()
                    guard !platformNames.contains(w) else { throw c.error(at: t, "platform '\(w)' is already declared") }
                    name = w
                } else if platformNames.contains(name) {
                    throw ScenarioError(here, "a second platform needs a name: `platform NAME …`")
                }
                let o = try c.options(allowed: ["cbit", "asids", "min_asid", "memory", "api", "build", "cache", "sme", "cores", "memenc",
                                                      "phys_bits", "reduction"])
                var p = PlatformConfig()
                p.cbitPosition = try o.int("cbit", default: 47, in: 32...51, c)
                p.maxSEVASID = UInt16(clamping: try o.number("asids", default: 15, c))
                p.minSEVASID = UInt16(clamping: try o.number("min_asid", default: 1, c))
                guard p.minSEVASID >= 1, p.minSEVASID <= p.maxSEVASID, p.maxSEVASID <= 1024 else {
                    throw ScenarioError(here, "need 1 <= min_asid <= asids <= 1024")
                }
                p.memoryBytes = try o.number("memory", default: 64 << 20, c)
                guard p.memoryBytes >= 32 << 20, p.memoryBytes <= 16 << 30, p.memoryBytes % (2 << 20) == 0 else {
                    throw ScenarioError(here, "platform memory must be a multiple of 2M from 32M to 16G")
                }
                let total = script.platforms.reduce(p.memoryBytes) { $0 + $1.config.memoryBytes }
                guard total <= limits.machine.maxMemoryBytes else {
                    throw c.error(at: o.values["memory"] ?? keywordToken,
                                  "the platforms' memory comes to \(total) bytes, over the limit of \(limits.machine.maxMemoryBytes) (raise it with --max-memory)")
                }
                if let t = o.values["api"] {
                    guard case .word(let w) = t.kind, let v = Self.apiVersion(w) else {
                        throw c.error(at: t, "api takes MAJOR.MINOR, for example api=0.17")
                    }
                    (p.apiMajor, p.apiMinor) = v
                }
                p.build = UInt8(clamping: try o.number("build", default: 48, c))
                let cache = try o.number("cache", default: 0, c)
                guard cache == 0 || (cache >= 4096 && cache <= 64 << 20 && cache % 512 == 0) else {
                    throw c.error(at: o.values["cache"]!, "cache must be 0 (none) or 4K to 64M, a multiple of 512 bytes")
                }
                p.cacheBytes = Int(cache)
                let cores = try o.number("cores", default: 1, c)
                guard (1...64).contains(cores) else { throw c.error(at: o.values["cores"]!, "cores must be 1 to 64") }
                p.cores = Int(cores)
                p.sme = try o.flag("sme", default: false, c)
                p.physAddrBits = try o.int("phys_bits", default: 48, in: 40...52, c)
                p.physAddrReduction = try o.int("reduction", default: 5, in: 0...12, c)
                guard (40...52).contains(p.physAddrBits), p.physAddrReduction <= 12, p.physAddrBits - p.physAddrReduction >= 40 else {
                    throw ScenarioError(here, "need 40 <= phys_bits <= 52 and phys_bits - reduction >= 40")
                }
                p.memoryEncryptionEnabled = try o.flag("memenc", default: true, c)
                if p.sme && !p.memoryEncryptionEnabled {
                    throw c.error(at: o.values["sme"]!, "sme=yes needs memory encryption enabled in SYSCFG (memenc=yes)")
                }
                script.platforms.append((name, p))
                platformNames.append(name)
            case "vm":
                let nameToken = c.peek
                let name = try c.word("a VM name")
                guard vms[name] == nil else { throw c.error(at: nameToken!, "VM '\(name)' is already declared") }
                let o = try c.options(allowed: ["memory", "policy", "sev", "vcpus", "platform", "kvmclock", "pages", "mmio", "paging",
                                                      "slots", "verify_cbit"])
                let pageSize = try o.number("pages", default: 4096, c)
                guard pageSize == 4096 || pageSize == 2 << 20 || pageSize == 4 << 20 else {
                    throw c.error(at: o.values["pages"]!, "pages is 4K, 2M or (with paging=legacy) 4M (the guest kernel's page size)")
                }
                let memory = try o.number("memory", default: 4 << 20, c)
                guard memory >= 2 << 20, memory % (2 << 20) == 0 else {
                    throw ScenarioError(here, "VM memory must be a multiple of 2M")
                }
                let policy = try o.number("policy", default: 0x1, c)
                guard policy <= UInt64(UInt32.max) else { throw ScenarioError(here, "policy is a 32-bit value") }
                let sev = try o.flag("sev", default: true, c)
                let vcpus = try o.number("vcpus", default: 1, c)
                guard (1...64).contains(vcpus) else { throw ScenarioError(here, "vcpus must be 1 to 64") }
                vms[name] = (false, sev)
                let platform = try platformOption(o, c)
                let kvmclock = o.values["kvmclock"] == nil ? nil : try o.number("kvmclock", default: 0, c)
                if let k = kvmclock, k % 32 != 0 || k + 32 * vcpus > memory {
                    throw c.error(at: o.values["kvmclock"]!, "kvmclock must be 32-byte aligned and inside the VM's memory")
                }
                let mmio = o.values["mmio"] == nil ? nil : try o.number("mmio", default: 0, c)
                let pagingWord = try o.word("paging", c) ?? "long"
                let modes: [String: PagingMode] = ["long": .long, "pae": .pae, "legacy": .legacy]
                guard let paging = modes[pagingWord] else {
                    throw c.error(at: o.values["paging"]!, "paging is long, pae or legacy (the guest kernel's paging mode)")
                }
                let limit: UInt64 = paging == .long ? 1 << 39 : 1 << 32
                guard memory <= limit else { throw ScenarioError(here, "a \(pagingWord) guest has at most 4G of memory") }
                if paging == .legacy && memory % (4 << 20) != 0 {
                    throw c.error(at: o.values["memory"]!, "with 32-bit paging memory is a multiple of 4M")
                }
                if pageSize > 4096 && (pageSize == 4 << 20) != (paging == .legacy) {
                    throw c.error(at: o.values["pages"]!, "large pages are 2M with paging=long or pae, 4M with paging=legacy")
                }
                if let m = mmio, m % 4096 != 0 || m < memory || m >= limit {
                    throw c.error(at: o.values["mmio"]!, "mmio must be a 4K-aligned address above the VM's memory and below \(paging == .long ? "512G" : "4G with \(pagingWord) paging")")
                }
                let verify = try o.flag("verify_cbit", default: false, c)
                if verify && paging == .legacy {
                    throw c.error(at: o.values["verify_cbit"]!, "sev_verify_cbit is a 64-bit kernel's check; a 32-bit guest has no C-bit to verify")
                }
                let slots = try o.number("slots", default: 1, c)
                guard (1...8).contains(slots), memory % (slots * (2 << 20)) == 0 else {
                    throw c.error(at: o.values["slots"]!, "slots is 1 to 8, each slot a multiple of 2M of the VM's memory")
                }
                add(.vm(name: name, platform: platform, memory: memory, policy: UInt32(policy), sev: sev,
                        vcpus: Int(vcpus), kvmclock: kvmclock, largePages: pageSize > 4096, mmio: mmio,
                        paging: paging, slots: Int(slots), verifyCbit: verify))
            case "device":
                let t = c.peek
                let name = try c.word("a device name")
                guard !devices.contains(name) else { throw c.error(at: t!, "device '\(name)' is already declared") }
                let o = try c.options(allowed: ["platform"])
                devices.insert(name)
                add(.device(name: name, platform: try platformOption(o, c)))
            case "shared":
                let vm = try knownVM(&c)
                let gpa = try c.number("a guest physical address")
                let o = try c.options(allowed: ["pages"])
                try notLaunched(vm, "`shared`")
                add(.shared(vm: vm, gpa: gpa, pages: try o.number("pages", default: 1, c)))
            case "data":
                let vm = try knownVM(&c)
                let gpa = try c.number("a guest physical address")
                guard gpa % 16 == 0 else { throw ScenarioError(here, "data must start 16-byte aligned (LAUNCH_UPDATE_DATA works on 16-byte blocks)") }
                let bytes = try bytes(&c)
                try notLaunched(vm, "`data`")
                add(.data(vm: vm, gpa: gpa, bytes: bytes))
            case "program":
                let vm = try knownVM(&c)
                let o = try c.options(allowed: ["at"])
                let gpa = try o.number("at", default: 0x100000, c)
                guard gpa % 16 == 0 else { throw ScenarioError(here, "a program must start 16-byte aligned") }
                try notLaunched(vm, "`program`")
                var body: [(Int, Substring)] = []
                var closed = false
                while n < lines.count {
                    let text = lines[n]
                    n += 1
                    let stripped = text.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                    if stripped.trimmingCharacters(in: .whitespaces) == "end" {
                        closed = true
                        break
                    }
                    body.append((n, text))
                }
                guard closed else { throw ScenarioError(here, "`program` without a closing `end`") }
                var assembler = Assembler(file: file, base: gpa)
                assembler.constants = constants
                let instructions = try assembler.assemble(body)
                add(.program(vm: vm, gpa: gpa, instructions: instructions))
            case "owner":
                let t = c.peek
                let name = try c.word("an owner name")
                guard !owners.contains(name) else { throw c.error(at: t!, "owner '\(name)' is already declared") }
                let o = try c.options(allowed: ["policy"])
                let policy = try o.number("policy", default: 0x1, c)
                guard policy <= UInt64(UInt32.max) else { throw ScenarioError(here, "policy is a 32-bit value") }
                owners.insert(name)
                add(.owner(name: name, policy: UInt32(policy)))
            case "launch":
                let vm = try knownVM(&c)
                let o = try c.options(allowed: ["owner", "finish", "share", "expect", "pin", "place", "entry"])
                guard vms[vm]!.sev else { throw ScenarioError(here, "'\(vm)' is not an SEV guest (sev=no)") }
                var share: String?
                if let t = o.values["share"] {
                    guard let name = t.word, vms[name]?.launched == true, name != vm else {
                        throw c.error(at: t, "share names a launched SEV guest whose key to share")
                    }
                    share = name
                }
                guard !vms[vm]!.launched else { throw ScenarioError(here, "'\(vm)' is already launched") }
                let owner = try knownOwner(o, c)
                let finish = try o.flag("finish", default: true, c)
                let pin = try o.flag("pin", default: true, c)
                var placement: [UInt64]?
                if let t = o.values["place"] {
                    // Where a hypervisor loads each image block instead (declaration order): "GPA GPA …".
                    guard let text = try o.string("place", c) else { throw c.error(at: t, "place takes a quoted list of guest physical addresses") }
                    let words = text.split(whereSeparator: { $0 == " " || $0 == "," })
                    let numbers = words.compactMap { Lexer.parseNumber(String($0)) }
                    guard !words.isEmpty, numbers.count == words.count, numbers.count <= TraceLimits.maxImageRegions else {
                        throw c.error(at: t, "place takes a quoted list of guest physical addresses, one per image block")
                    }
                    placement = numbers
                }
                let entry = o.values["entry"] == nil ? nil : try o.number("entry", default: 0, c)
                vms[vm]!.launched = true
                add(.launch(vm: vm, owner: owner, finish: finish, share: share, pin: pin,
                            placement: placement, entry: entry, expect: try Self.expectation(o, c)))
            case "inject":
                let vm = try knownVM(&c)
                let gpa = try c.number("a guest physical address")
                let name = try c.word("a name for the secret")
                let start = c.location
                var byteCursor = c
                let o = try byteCursor.options(allowed: ["owner", "expect", "hex", "text", "fill", "len"])
                guard let owner = try knownOwner(o, c) else { throw ScenarioError(start, "inject needs owner=NAME") }
                let bytes = try bytes(&c, extra: ["owner", "expect"])
                guard bytes.count <= TraceLimits.maxSecretBytes else {
                    throw ScenarioError(start, "a secret is at most \(TraceLimits.maxSecretBytes) bytes, what a trace may declare")
                }
                guard bytes.count % 16 == 0 else { throw ScenarioError(start, "a launch secret is a multiple of 16 bytes") }
                add(.inject(vm: vm, gpa: gpa, name: name, owner: owner, bytes: bytes, expect: try Self.expectation(o, c)))
            case "debug":
                let dirToken = c.peek
                let dir = try c.word("decrypt or encrypt")
                let vm = try knownVM(&c)
                let gpa = try c.number("a guest physical address")
                switch dir {
                case "decrypt":
                    let length = try self.length(&c)
                    let o = try c.options(allowed: ["expect", "expect-hex"])
                    add(.debugDecrypt(vm: vm, gpa: gpa, length: length, expect: try Self.expectation(o, c),
                                      expectBytes: try expectedBytes(o, c)))
                case "encrypt":
                    var look = c
                    let o = try look.options(allowed: ["expect", "hex", "text", "fill", "len"])
                    add(.debugEncrypt(vm: vm, gpa: gpa, bytes: try bytes(&c, extra: ["expect"]),
                                      expect: try Self.expectation(o, c)))
                default: throw c.error(at: dirToken!, "expected decrypt or encrypt, found '\(dir)'")
                }
            case "attest":
                let vm = try knownVM(&c)
                let o = try c.options(allowed: ["mnonce", "expect"])
                var mnonce = [UInt8](repeating: 0, count: 16)
                if let h = try o.string("mnonce", c) {
                    guard let bytes = Self.hexBytes(h), bytes.count == 16 else {
                        throw c.error(at: o.values["mnonce"]!, "mnonce is 16 bytes of hex")
                    }
                    mnonce = bytes
                }
                add(.attest(vm: vm, mnonce: mnonce, expect: try Self.expectation(o, c)))
            case "migrate":
                let vm = try knownVM(&c)
                let o = try c.options(allowed: ["to", "as", "finish", "expect"])
                guard let toToken = o.values["to"], let target = toToken.word, platformNames.contains(target) else {
                    throw ScenarioError(here, "migrate needs to=PLATFORM naming a declared platform")
                }
                guard let asToken = o.values["as"], let newName = asToken.word else {
                    throw ScenarioError(here, "migrate needs as=NAME for the VM on the target")
                }
                guard vms[newName] == nil else { throw c.error(at: asToken, "VM '\(newName)' is already declared") }
                guard vms[vm]!.launched else { throw ScenarioError(here, "'\(vm)' must be launched before it can migrate") }
                vms[newName] = (true, true)
                add(.migrate(vm: vm, platform: target, newName: newName, finish: try o.flag("finish", default: true, c),
                             expect: try Self.expectation(o, c)))
            case "run":
                let vm = try knownVM(&c)
                let o = try c.options(allowed: ["vcpu", "asid", "expect"])
                let asid = o.values["asid"] == nil ? nil : UInt16(clamping: try o.number("asid", default: 0, c))
                let expect = try o.word("expect", c)?.lowercased()
                guard expect == nil || expect == "ok" || expect == "shutdown" else {
                    throw c.error(at: o.values["expect"]!, "run expects ok or shutdown")
                }
                add(.run(vm: vm, vcpu: try o.int("vcpu", default: 0, in: 0...63, c), asid: asid, expectShutdown: expect == "shutdown"))
            case "destroy":
                let vm = try knownVM(&c)
                try c.expectEnd()
                add(.destroy(vm: vm))
            case "schedule":
                // `schedule … during` (last word) opens a block of device and hypervisor actions.
                let during = c.tokens.last?.word == "during"
                if during {
                    let rest = Array(c.tokens.dropLast())
                    c = TokenCursor(tokens: rest, file: file, line: lineNumber, endColumn: c.tokens.last!.column)
                    _ = c.next()  // `schedule`
                }
                var names: [String] = []
                while let t = c.peek, let w = t.word, c.tokens.count == c.index + 1 || c.tokens[c.index + 1].kind != .punct("=") {
                    guard vms[w] != nil else { throw c.error(at: t, "no VM named '\(w)' (declare it with `vm \(w)`)") }
                    _ = c.next()
                    names.append(w)
                }
                guard !names.isEmpty else { throw c.error("expected the VMs to schedule, found \(c.found)") }
                let o = try c.options(allowed: ["quantum"])
                let quantum = try o.number("quantum", default: 16, c)
                guard (1...1_000_000).contains(quantum) else { throw c.error(at: o.values["quantum"]!, "quantum must be 1 to 1000000") }
                guard openSchedule == nil else { throw ScenarioError(here, "`schedule` cannot go inside `schedule … during`") }
                add(.schedule(vms: names, quantum: Int(quantum), actions: []))
                if during { openSchedule = (script.statements.count - 1, here) }
            case "end":
                guard let open = openSchedule else { throw ScenarioError(here, "`end` without a `schedule … during` to close") }
                try c.expectEnd()
                let block = script.statements[(open.index + 1)...].map(\.statement)
                script.statements.removeLast(block.count)
                // Each repetition of an action is an action of its own, placed by the seed.
                let actions = block.flatMap { s -> [ScenarioScript.Statement] in
                    if case .repeated(let count, let one) = s { Array(repeating: one, count: count) } else { [s] }
                }
                guard case .schedule(let names, let quantum, _) = script.statements[open.index].statement else { break }
                script.statements[open.index].statement = .schedule(vms: names, quantum: quantum, actions: actions)
                openSchedule = nil
            case "secret":
                let vm = try knownVM(&c)
                let gpa = try c.number("a guest physical address")
                let name = try c.word("a name for the secret")
                let start = c.location
                let bytes = try bytes(&c)
                guard bytes.count <= TraceLimits.maxSecretBytes else {
                    throw ScenarioError(start, "a secret is at most \(TraceLimits.maxSecretBytes) bytes, what a trace may declare")
                }
                add(.secret(vm: vm, gpa: gpa, name: name, bytes: bytes))
            case "dma":
                let t = c.peek
                let device = try c.word("a device name")
                guard devices.contains(device) else { throw c.error(at: t!, "no device named '\(device)' (declare it with `device \(device)`)") }
                let dirToken = c.peek
                let dir = try c.word("read or write")
                let vm = try knownVM(&c)
                let gpa = try c.number("a guest physical address")
                switch dir {
                case "read":
                    let length = try self.length(&c)
                    try c.expectEnd()
                    add(.dmaRead(device: device, vm: vm, gpa: gpa, length: length))
                case "write": add(.dmaWrite(device: device, vm: vm, gpa: gpa, bytes: try bytes(&c)))
                default: throw c.error(at: dirToken!, "expected read or write, found '\(dir)'")
                }
            case "hv":
                let opToken = c.peek
                let op = try c.word("read, write, unmap, remap, migrate, swap-out, delete-slot, cpuid, page-flush or wbinvd")
                switch op {
                case "read":
                    let vm = try knownVM(&c)
                    let gpa = try c.number("a guest physical address")
                    let length = try self.length(&c)
                    var capture: String?
                    if c.peek?.word == "as" {
                        _ = c.next()
                        capture = try c.word("a name for the bytes read")
                        captures[capture!] = length
                    }
                    try c.expectEnd()
                    add(.hvRead(vm: vm, gpa: gpa, length: length, capture: capture))
                case "write":
                    let vm = try knownVM(&c)
                    let gpa = try c.number("a guest physical address")
                    if let t = c.peek, let name = t.word, c.tokens.count == c.index + 1 {
                        // A bare name: bytes an earlier `hv read … as NAME` captured (a replay).
                        guard captures[name] != nil else {
                            throw c.error(at: t, "no bytes were captured as '\(name)' (capture them first with `hv read VM GPA LENGTH as \(name)`)")
                        }
                        add(.hvWriteCaptured(vm: vm, gpa: gpa, capture: name))
                    } else {
                        add(.hvWrite(vm: vm, gpa: gpa, bytes: try bytes(&c)))
                    }
                case "unmap":
                    let vm = try knownVM(&c)
                    let gpa = try c.number("a guest physical address")
                    let o = try c.options(allowed: ["pages"])
                    add(.hvUnmap(vm: vm, gpa: gpa, pages: UInt64(try o.int("pages", default: 1, in: 1...(1 << 22), c))))
                case "cpuid":
                    let vm = try knownVM(&c)
                    let o = try c.options(allowed: ["cbit"])
                    guard let t = o.values["cbit"] else { throw ScenarioError(here, "cpuid needs cbit=N: the C-bit position to report") }
                    guard let n = t.number, n < 64 else { throw c.error(at: t, "cbit is a bit position, 0 to 63") }
                    add(.hvCPUIDCbit(vm: vm, position: Int(n)))
                case "answer":
                    let vm = try knownVM(&c)
                    add(.hvAnswer(vm: vm, answer: try hypervisorAnswer(&c)))
                case "delete-slot":
                    let vm = try knownVM(&c)
                    let slot = try c.number("a memslot number")
                    try c.expectEnd()
                    add(.hvDeleteSlot(vm: vm, slot: UInt16(clamping: slot)))
                case "swap-out":
                    let vm = try knownVM(&c)
                    let gpa = try c.number("a guest physical address")
                    let o = try c.options(allowed: ["pages"])
                    add(.hvSwapOut(vm: vm, gpa: gpa, pages: UInt64(try o.int("pages", default: 1, in: 1...(1 << 22), c))))
                case "remap":
                    let vm = try knownVM(&c)
                    let gpa = try c.number("a guest physical address")
                    let o = try c.options(allowed: ["to", "of"])
                    guard let t = o.values["to"], let to = t.number else {
                        throw ScenarioError(here, "remap needs to=GPA (the page whose frame to map)")
                    }
                    var of = vm
                    if let ofToken = o.values["of"] {
                        guard let name = ofToken.word, vms[name] != nil else {
                            throw c.error(at: ofToken, "no VM named '\(ofToken.spelling)'")
                        }
                        of = name
                    }
                    add(.hvRemap(vm: vm, gpa: gpa, toGPA: to, of: of))
                case "wbinvd":
                    let o = try c.options(allowed: ["platform", "core"])
                    let platform = try platformOption(o, c)
                    var core: Int?
                    if let t = o.values["core"] {
                        let cores = script.platforms.first { $0.0 == platform }?.1.cores ?? 1
                        guard let n = t.number, n < UInt64(cores) else {
                            throw c.error(at: t, "core must be below the platform's \(cores) cores")
                        }
                        core = Int(n)
                    }
                    add(.wbinvd(platform: platform, core: core))
                case "page-flush":
                    let vm = try knownVM(&c)
                    guard vms[vm]!.sev else { throw ScenarioError(here, "'\(vm)' is not an SEV guest: VM_PAGE_FLUSH takes a guest ASID") }
                    let gpa = try c.number("a guest physical address")
                    try c.expectEnd()
                    add(.hvPageFlush(vm: vm, gpa: gpa))
                case "migrate":
                    let vm = try knownVM(&c)
                    let gpa = try c.number("a guest physical address")
                    try c.expectEnd()
                    add(.hvMigratePage(vm: vm, gpa: gpa))
                default: throw c.error(at: opToken!, "expected read, write, unmap, remap, migrate, swap-out, delete-slot, cpuid, answer, page-flush or wbinvd, found '\(op)'")
                }
            case "kvm":
                let vm = try knownVM(&c)
                add(.kvm(try kvmStatement(vm: vm, &c)))
            case "psp":
                let t = c.peek
                let name = try c.word("a firmware command")
                guard let command = ScenarioScript.PSPStatement(rawValue: name) else {
                    let all = ScenarioScript.PSPStatement.allCases.map(\.rawValue).joined(separator: ", ")
                    throw c.error(at: t!, "unknown firmware command '\(name)'; expected one of: \(all)")
                }
                let vm = command.needsVM ? try knownVM(&c) : nil
                let o = try c.options(allowed: command.options + ["expect"])
                func optional(_ key: String) throws(ScenarioError) -> UInt64? {
                    o.values[key] == nil ? nil : try o.number(key, default: 0, c)
                }
                var arguments = ScenarioScript.PSPArguments(
                    asid: try optional("asid").map { UInt16(clamping: $0) }, policy: try optional("policy").map { UInt32(clamping: $0) },
                    gpa: try optional("gpa"), destination: try optional("to"), length: try optional("len").map { UInt32(clamping: $0) })
                if command == .downloadFirmware && (o.values["api"] != nil || o.values["build"] != nil) {
                    var version = (major: UInt8(0), minor: UInt8(24))
                    if let t = o.values["api"] {
                        guard case .word(let w) = t.kind, let v = Self.apiVersion(w) else {
                            throw c.error(at: t, "api takes MAJOR.MINOR, such as 0.24")
                        }
                        version = (v.0, v.1)
                    }
                    let build = try o.int("build", default: 0, in: 0...255, c)
                    arguments.firmware = (version.major, version.minor, UInt8(build))
                }
                if command == .pekCertImport { arguments.ocaSigned = try o.flag("signed", default: true, c) }
                add(.psp(command: command, platform: try platformOption(o, c), vm: vm, arguments: arguments,
                         expect: try Self.expectation(o, c)))
            default:
                throw ScenarioError(SourceLocation(file: file, line: lineNumber, column: keywordToken.column),
                                    "unknown statement '\(keyword)'; expected platform, vm, device, shared, data, program, owner, launch, inject, run, schedule, destroy, secret, dma, hv, debug, attest, migrate, psp or kvm")
            }
        }
        if let open = openSchedule { throw ScenarioError(open.location, "`schedule … during` without a closing `end`") }
        if script.platforms.isEmpty { script.platforms = [("host", PlatformConfig())] }
        return script
    }

    static func apiVersion(_ w: String) -> (UInt8, UInt8)? {
        let parts = w.split(separator: ".")
        guard parts.count == 2, let a = UInt8(parts[0]), let b = UInt8(parts[1]) else { return nil }
        return (a, b)
    }

    /// `expect=OUTCOME`: `ok`, `REFUSED`, a firmware status (`POLICY_FAILURE`), or an errno by name
    /// (`EINVAL`) or number (`errno22`, `"errno 22"`).
    static func expectation(_ o: TokenCursor.Options, _ c: TokenCursor) throws(ScenarioError) -> String? {
        guard let t = o.values["expect"] else { return nil }
        let what = "ok, REFUSED, a firmware status such as POLICY_FAILURE, or an errno such as EINVAL or errno22"
        let w: String
        switch t.kind {
        case .word(let word): w = word
        case .string(let text): w = text
        default: throw c.error(at: t, "expect takes \(what)")
        }
        guard Outcome.isKnown(w) else { throw c.error(at: t, "unknown outcome '\(w)'; expected \(what)") }
        return w
    }

    /// `kvm VM SUBCOMMAND [gpa=ADDR] [len=N] [policy=P] [fd=N] [expect=OUTCOME]`, or `kvm VM id=N …` for any
    /// sub-command id.
    func kvmStatement(vm: String, _ c: inout TokenCursor) throws(ScenarioError) -> ScenarioScript.KVMStatement {
        let command: UInt32
        if let t = c.peek, t.word == "id" {
            _ = c.next()
            try c.punct("=")
            let at = c.peek
            let n = try c.number("a sub-command number")
            guard n <= UInt64(UInt32.max) else { throw c.error(at: at!, "id takes a sub-command number (0 to 4294967295)") }
            command = UInt32(n)
        } else {
            let t = c.peek
            let name = try c.word("a KVM_SEV sub-command")
            guard let known = KVMSevCommand(name: name) else {
                let all = KVMSevCommand.allCases.map { $0.description.lowercased() }.joined(separator: ", ")
                throw c.error(at: t!, "unknown KVM_SEV sub-command '\(name)'; expected one of: \(all), or id=N")
            }
            command = known.rawValue
        }
        let o = try c.options(allowed: ["gpa", "len", "policy", "fd", "expect", "expect-hex"])
        let fd = o.values["fd"] == nil ? nil : Int32(clamping: try o.number("fd", default: 0, c))
        let length = o.values["len"] == nil ? nil : UInt32(clamping: try o.number("len", default: 0, c))
        if let length, Int(length) > limits.maxStatementBytes {
            throw c.error(at: o.values["len"]!, "len must be at most \(limits.maxStatementBytes) (raise the limit with --max-statement-bytes)")
        }
        return ScenarioScript.KVMStatement(
            vm: vm, command: command, fd: fd, gpa: o.values["gpa"] == nil ? nil : try o.number("gpa", default: 0, c), length: length,
            policy: o.values["policy"] == nil ? nil : UInt32(clamping: try o.number("policy", default: 0, c)),
            expect: try Self.expectation(o, c), expectBytes: try expectedBytes(o, c))
    }

    /// `in PORT VALUE`, `mmio GPA VALUE`, `cpuid LEAF [eax=] [ebx=] [ecx=] [edx=]` or `msr MSR VALUE`.
    func hypervisorAnswer(_ c: inout TokenCursor) throws(ScenarioError) -> ScenarioScript.HypervisorAnswer {
        let t = c.peek
        let what = try c.word("in, mmio, cpuid or msr")
        func bounded(_ n: UInt64, _ max: UInt64, _ at: Token?, _ message: String) throws(ScenarioError) -> UInt64 {
            guard n <= max else { throw c.error(at: at!, message) }
            return n
        }
        switch what {
        case "in":
            let at = c.peek
            let port = try bounded(try c.number("a port"), 0xFFFF, at, "a port is 0 to 0xFFFF")
            let value = try c.number("the value IN reads")
            try c.expectEnd()
            return .port(UInt16(port), value: value)
        case "mmio":
            let gpa = try c.number("a guest physical address")
            let value = try c.number("the value a load there reads")
            try c.expectEnd()
            return .mmio(gpa, value: value)
        case "cpuid":
            let at = c.peek
            let leaf = try bounded(try c.number("a CPUID leaf"), UInt64(UInt32.max), at, "a CPUID leaf is 32 bits")
            let o = try c.options(allowed: ["eax", "ebx", "ecx", "edx"])
            var regs: [UInt64] = []
            for r in ["eax", "ebx", "ecx", "edx"] {
                regs.append(try bounded(try o.number(r, default: 0, c), UInt64(UInt32.max), o.values[r], "\(r) is 32 bits"))
            }
            return .cpuid(UInt32(leaf), eax: regs[0], ebx: regs[1], ecx: regs[2], edx: regs[3])
        case "msr":
            let at = c.peek
            let msr = try bounded(try c.number("an MSR number"), UInt64(UInt32.max), at, "an MSR number is 32 bits")
            let value = try c.number("the value RDMSR reads")
            try c.expectEnd()
            return .msr(UInt32(msr), value: value)
        default:
            throw c.error(at: t!, "expected in, mmio, cpuid or msr, found '\(what)'")
        }
    }

    /// `expect-hex="…"`: the bytes a command must give back.
    func expectedBytes(_ o: TokenCursor.Options, _ c: TokenCursor) throws(ScenarioError) -> [UInt8]? {
        guard let h = try o.string("expect-hex", c) else { return nil }
        guard let bytes = Self.hexBytes(h), !bytes.isEmpty, bytes.count <= limits.maxStatementBytes else {
            throw c.error(at: o.values["expect-hex"]!, "expect-hex needs an even, non-zero number of hex digits")
        }
        return bytes
    }

    static func hexBytes(_ h: String) -> [UInt8]? {
        let digits = Array(h.filter { !$0.isWhitespace })
        guard digits.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let b = UInt8(String(digits[i...i + 1]), radix: 16) else { return nil }
            out.append(b)
        }
        return out
    }

    /// A length in bytes, 1 to the statement limit.
    func length(_ c: inout TokenCursor) throws(ScenarioError) -> Int {
        let t = c.peek
        let n = try c.number("a length in bytes")
        guard n >= 1, n <= limits.maxStatementBytes else {
            throw c.error(at: t!, "a length must be 1 to \(limits.maxStatementBytes) bytes (raise the limit with --max-statement-bytes)")
        }
        return Int(n)
    }

    /// The byte options: `hex="00 11 …"`, `text="…"`, or `fill=BYTE len=N` (plus `extra` options the
    /// statement reads itself).
    func bytes(_ c: inout TokenCursor, extra: [String] = []) throws(ScenarioError) -> [UInt8] {
        let maxBytes = limits.maxStatementBytes
        let start = c.location
        let o = try c.options(allowed: ["hex", "text", "fill", "len"] + extra)
        let given = ["hex", "text", "fill"].filter { o.values[$0] != nil }
        guard given.count == 1 else { throw ScenarioError(start, "give exactly one of hex=\"…\", text=\"…\" or fill=BYTE len=N") }
        if let h = try o.string("hex", c) {
            let digits = h.filter { !$0.isWhitespace }
            guard digits.count % 2 == 0, !digits.isEmpty else {
                throw c.error(at: o.values["hex"]!, "hex needs an even, non-zero number of digits")
            }
            var out: [UInt8] = []
            var i = digits.startIndex
            while i < digits.endIndex {
                let j = digits.index(i, offsetBy: 2)
                guard let b = UInt8(digits[i..<j], radix: 16) else { throw c.error(at: o.values["hex"]!, "'\(digits[i..<j])' is not a hex byte") }
                out.append(b)
                i = j
            }
            return out
        }
        if let t = try o.string("text", c) {
            guard !t.isEmpty else { throw c.error(at: o.values["text"]!, "text is empty") }
            return t.unicodeScalars.map { $0.value < 256 ? UInt8($0.value) : UInt8(ascii: "?") }
        }
        let fill = try o.number("fill", default: 0, c)
        guard fill < 256 else { throw c.error(at: o.values["fill"]!, "fill is one byte") }
        guard o.values["len"] != nil else { throw ScenarioError(start, "fill needs len=N") }
        let len = try o.number("len", default: 0, c)
        guard len > 0, len <= maxBytes else {
            throw c.error(at: o.values["len"]!, "len must be 1 to \(maxBytes) (raise the limit with --max-statement-bytes)")
        }
        return [UInt8](repeating: UInt8(fill), count: Int(len))
    }
}
