import SEVMachine
import TraceFormat

/// What a guest is launched with: its image and the pages its kernel shares at boot.
extension ScenarioReader {
    /// `shared VM GPA [pages=N]`: pages the guest kernel maps decrypted at boot.
    func shared(_ c: inout TokenCursor) throws(ScenarioError) {
        let vm = try knownVM(&c)
        let gpa = try c.number("a guest physical address")
        let o = try c.options(allowed: ["pages"])
        try notLaunched(vm, "`shared`")
        add(.shared(vm: vm, gpa: gpa, pages: try o.number("pages", default: 1, c)))
    }

    /// `data VM GPA BYTES`: bytes loaded before launch and measured.
    func data(_ c: inout TokenCursor) throws(ScenarioError) {
        let vm = try knownVM(&c)
        let gpa = try c.number("a guest physical address")
        guard gpa % 16 == 0 else { throw ScenarioError(here, "data must start 16-byte aligned (LAUNCH_UPDATE_DATA works on 16-byte blocks)") }
        let bytes = try bytes(&c)
        try notLaunched(vm, "`data`")
        add(.data(vm: vm, gpa: gpa, bytes: bytes))
    }

    /// `program VM [at=GPA]` … `end`: guest code, assembled, loaded before launch and measured.
    func program(_ c: inout TokenCursor) throws(ScenarioError) {
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
    }
}
