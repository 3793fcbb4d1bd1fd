import SEVMachine
import TraceFormat

/// The guest owner's and the hypervisor's SEV commands through KVM.
extension ScenarioReader {
    /// `launch VM [owner=NAME] [finish=no] [share=VM] [pin=no] [place="…"] [entry=GPA] [expect=…]`; what an
    /// option leaves out is ``ScenarioScript/LaunchSpec``'s default.
    func launch(_ c: inout TokenCursor) throws(ScenarioError) {
        var launch = ScenarioScript.LaunchSpec(vm: try knownVM(&c))
        let vm = launch.vm
        let o = try c.options(allowed: ["owner", "finish", "share", "expect", "pin", "place", "entry"])
        guard vms[vm]!.sev else { throw ScenarioError(here, "'\(vm)' is not an SEV guest (sev=no)") }
        if let t = o.values["share"] {
            guard let name = t.word, vms[name]?.launched == true, name != vm else {
                throw c.error(at: t, "share names a launched SEV guest whose key to share")
            }
            launch.share = name
        }
        guard !vms[vm]!.launched else { throw ScenarioError(here, "'\(vm)' is already launched") }
        launch.owner = try knownOwner(o, c)
        launch.finish = try o.flag("finish", default: launch.finish, c)
        launch.pin = try o.flag("pin", default: launch.pin, c)
        if let t = o.values["place"] {
            // Where a hypervisor loads each image block instead (declaration order): "GPA GPA …".
            guard let text = try o.string("place", c) else { throw c.error(at: t, "place takes a quoted list of guest physical addresses") }
            let words = text.split(whereSeparator: { $0 == " " || $0 == "," })
            let numbers = words.compactMap { Lexer.parseNumber(String($0)) }
            guard !words.isEmpty, numbers.count == words.count, numbers.count <= TraceLimits.maxImageRegions else {
                throw c.error(at: t, "place takes a quoted list of guest physical addresses, one per image block")
            }
            launch.placement = numbers
        }
        launch.entry = o.values["entry"] == nil ? nil : try o.number("entry", default: 0, c)
        launch.expect = try Self.expectation(o, c)
        vms[vm]!.launched = true
        add(.launch(launch))
    }

    /// `inject VM GPA NAME owner=NAME BYTES [expect=…]`: LAUNCH_SECRET with the owner's packet.
    func inject(_ c: inout TokenCursor) throws(ScenarioError) {
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
    }

    /// `debug decrypt VM GPA LENGTH [expect-hex=…]` or `debug encrypt VM GPA BYTES`.
    func debug(_ c: inout TokenCursor) throws(ScenarioError) {
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
    }

    /// `attest VM [mnonce="…"] [expect=…]`: GET_ATTESTATION_REPORT.
    func attest(_ c: inout TokenCursor) throws(ScenarioError) {
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
    }

    /// `migrate VM to=PLATFORM as=NAME [finish=no] [expect=…]`.
    func migrate(_ c: inout TokenCursor) throws(ScenarioError) {
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
    }
}
