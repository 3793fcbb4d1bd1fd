import SEVMachine
import TraceFormat

/// Firmware commands and KVM ioctls issued one at a time.
extension ScenarioReader {
    /// `psp COMMAND [VM] [options] [expect=…]`: one firmware command handed straight to the PSP.
    func psp(_ c: inout TokenCursor) throws(ScenarioError) {
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
    }

    /// `kvm VM SUBCOMMAND|id=N [options] [expect=…]`: one `KVM_MEMORY_ENCRYPT_OP`.
    func kvm(_ c: inout TokenCursor) throws(ScenarioError) {
        let vm = try knownVM(&c)
        add(.kvm(try kvmStatement(vm: vm, &c)))
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
}
