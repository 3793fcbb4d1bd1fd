import SEVMachine
import TraceFormat

/// Running guests, and what happens to their memory while they run.
extension ScenarioReader {
    /// `run VM [vcpu=N] [asid=N] [expect=ok|shutdown]`.
    func run(_ c: inout TokenCursor) throws(ScenarioError) {
        let vm = try knownVM(&c)
        let o = try c.options(allowed: ["vcpu", "asid", "expect"])
        let asid = o.values["asid"] == nil ? nil : UInt16(clamping: try o.number("asid", default: 0, c))
        let expect = try o.word("expect", c)?.lowercased()
        guard expect == nil || expect == "ok" || expect == "shutdown" else {
            throw c.error(at: o.values["expect"]!, "run expects ok or shutdown")
        }
        add(.run(vm: vm, vcpu: try o.int("vcpu", default: 0, in: 0...63, c), asid: asid, expectShutdown: expect == "shutdown"))
    }

    /// `destroy VM`.
    func destroy(_ c: inout TokenCursor) throws(ScenarioError) {
        let vm = try knownVM(&c)
        try c.expectEnd()
        add(.destroy(vm: vm))
    }

    /// `schedule VM… [quantum=N] [during]`: the vCPUs interleaved; `during` opens a block of actions.
    func schedule(_ c: inout TokenCursor) throws(ScenarioError) {
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
    }

    /// `end`: closes `schedule … during`.
    func endBlock(_ c: inout TokenCursor) throws(ScenarioError) {
        guard let open = openSchedule else { throw ScenarioError(here, "`end` without a `schedule … during` to close") }
        try c.expectEnd()
        let block = script.statements[(open.index + 1)...].map(\.statement)
        script.statements.removeLast(block.count)
        // Each repetition of an action is an action of its own, placed by the seed.
        let actions = block.flatMap { s -> [ScenarioScript.Statement] in
            if case .repeated(let count, let one) = s { Array(repeating: one, count: count) } else { [s] }
        }
        guard case .schedule(let names, let quantum, _) = script.statements[open.index].statement else { return }
        script.statements[open.index].statement = .schedule(vms: names, quantum: quantum, actions: actions)
        openSchedule = nil
    }

    /// `secret VM GPA NAME BYTES`: the guest writes a secret into its private memory.
    func secret(_ c: inout TokenCursor) throws(ScenarioError) {
        let vm = try knownVM(&c)
        let gpa = try c.number("a guest physical address")
        let name = try c.word("a name for the secret")
        let start = c.location
        let bytes = try bytes(&c)
        guard bytes.count <= TraceLimits.maxSecretBytes else {
            throw ScenarioError(start, "a secret is at most \(TraceLimits.maxSecretBytes) bytes, what a trace may declare")
        }
        add(.secret(vm: vm, gpa: gpa, name: name, bytes: bytes))
    }

    /// `dma DEVICE read VM GPA LENGTH` or `dma DEVICE write VM GPA BYTES`.
    func dma(_ c: inout TokenCursor) throws(ScenarioError) {
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
    }
}
