import SEVMachine
import TraceFormat

/// Runs a parsed scenario on a fresh machine, statement by statement, reporting every event to a sink.
public struct ScenarioRunner {
    public let script: ScenarioScript
    public let seed: UInt64
    /// The guest owners declared so far.
    private let owners = Owners()

    final class Owners {
        var byName: [String: GuestOwner] = [:]
    }

    /// The session keys of each launch a guest owner made, in the order of the launches.
    private let sessions = Sessions()

    final class Sessions {
        var keys: [SessionKeys] = []
    }

    /// The transport keys a guest owner's launch session carried (her TEK and TIK), by guest.
    public struct SessionKeys: Sendable {
        public var vm: String
        public var owner: String
        public var tek: [UInt8]
        public var tik: [UInt8]
    }

    /// The session keys of the launches the guest owners made so far.
    public var sessionKeys: [SessionKeys] { sessions.keys }

    /// What `hv read … as NAME` captured, by name.
    private let captures = Captures()

    final class Captures {
        var byName: [String: [UInt8]] = [:]
    }

    public init(script: ScenarioScript, seed: UInt64) {
        self.script = script
        self.seed = seed
    }

    /// Builds the machine and runs every statement. A machine error names the statement that caused it.
    /// `prepared` sees the machine before anything runs (a sink that inspects it as events arrive).
    @discardableResult
    public func run(into sink: EventSink, prepared: (Machine) -> Void = { _ in }) throws(ScenarioError) -> Machine {
        let machine = Machine(seed: seed, sink: sink)
        prepared(machine)
        captures.byName.removeAll()
        machine.limits = script.limits.machine  // the memory limit was checked when the script was parsed
        for p in script.platforms { machine.addPlatform(name: p.name, config: p.config) }
        for s in script.statements {
            do {
                try execute(s.statement, on: machine)
                try machine.checkStop()
            } catch {
                throw ScenarioError(s.location, error.description)
            }
        }
        return machine
    }

    private func vm(_ name: String, _ m: Machine) -> VirtualMachine {
        // The parser has checked every name.
        m.vm(named: name)!
    }

    private func execute(_ statement: ScenarioScript.Statement, on m: Machine) throws(MachineError) {
        switch statement {
        case .vm(let s):
            let v = try m.platform(named: s.platform)!.kvm.createVM(name: s.name, memoryBytes: s.memory, policy: s.policy, sev: s.sev,
                                                                     vcpus: s.vcpus, largePages: s.largePages, paging: s.paging,
                                                                     slots: s.slots, verifyCbit: s.verifyCbit)
            v.kvmclockGPA = s.kvmclock
            v.mmioGPA = s.mmio
        case .device(let name, let platform):
            m.platform(named: platform)!.addDevice(name: name)
        case .shared(let name, let gpa, let pages):
            let v = vm(name, m)
            guard gpa < v.memoryBytes, pages <= (v.memoryBytes - gpa) >> 12 else {
                throw .invalid("\(name): shared range \(gpa) + \(pages) pages is outside its memory")
            }
            v.addSharedAtBoot(gpa: gpa, pages: pages)
        case .data(let name, let gpa, let bytes):
            try addImage(vm(name, m), gpa: gpa, bytes: bytes)
        case .program(let name, let gpa, let instructions):
            let v = vm(name, m)
            if v.entry == 0 { v.entry = gpa }  // the first program is where the guest starts
            try addImage(v, gpa: gpa, bytes: instructions.flatMap(\.encoded))
        case .run(let name, let vcpu, let asid, let expectShutdown):
            let v = vm(name, m)
            let survived = try v.platform.kvm.run(v, vcpu: vcpu, asid: asid, survivingCrash: expectShutdown)
            if expectShutdown && survived { throw .invalid("expected \(name) to shut down, but it halted") }
        case .repeated(let count, let statement):
            for _ in 0..<count {
                try execute(statement, on: m)
                try m.checkStop()
            }
        case .destroy(let name):
            let v = vm(name, m)
            try v.platform.kvm.destroy(v)
        case .schedule(let names, let quantum, let actions):
            let list = names.map { vm($0, m) }
            try list[0].platform.kvm.schedule(list, quantum: quantum, actions: actions.count) { i throws(MachineError) in
                try execute(actions[i], on: m)
            }
        case .secret(let name, let gpa, let secretName, let bytes):
            let v = vm(name, m)
            try v.platform.kvm.guestWriteSecret(v, gpa: gpa, name: secretName, bytes: bytes)
        case .dmaRead(let device, let name, let gpa, let length):
            try m.device(named: device)!.dmaRead(vm: vm(name, m), gpa: gpa, length: length)
        case .dmaWrite(let device, let name, let gpa, let bytes):
            try m.device(named: device)!.dmaWrite(vm: vm(name, m), gpa: gpa, bytes: bytes)
        case .hvRead(let name, let gpa, let length, let capture):
            let v = vm(name, m)
            let bytes = try v.platform.kvm.read(v, gpa: gpa, length: length)
            if let capture { captures.byName[capture] = bytes }
        case .hvWriteCaptured(let name, let gpa, let capture):
            guard let bytes = captures.byName[capture] else {
                throw .invalid("no bytes were captured as '\(capture)' yet (its `hv read … as \(capture)` has not run)")
            }
            let v = vm(name, m)
            try v.platform.kvm.write(v, gpa: gpa, bytes: bytes)
        case .hvWrite(let name, let gpa, let bytes):
            let v = vm(name, m)
            try v.platform.kvm.write(v, gpa: gpa, bytes: bytes)
        case .hvUnmap(let name, let gpa, let pages):
            let v = vm(name, m)
            try v.platform.kvm.unmap(v, gpa: gpa, pages: pages)
        case .hvCPUIDCbit(let name, let position):
            vm(name, m).cpuidCbitPosition = position
        case .hvAnswer(let name, let answer):
            let v = vm(name, m)
            switch answer {
            case .port(let port, let value): v.answers.ports[port] = value
            case .mmio(let gpa, let value): v.answers.mmio[gpa] = value
            case .cpuid(let leaf, let eax, let ebx, let ecx, let edx):
                v.answers.cpuid[leaf] = CPUIDAnswer(eax: eax, ebx: ebx, ecx: ecx, edx: edx)
            case .msr(let msr, let value): v.answers.msrs[msr] = value
            }
        case .hvDeleteSlot(let name, let slot):
            let v = vm(name, m)
            try v.platform.kvm.deleteMemslot(v, slot: slot)
        case .hvSwapOut(let name, let gpa, let pages):
            let v = vm(name, m)
            try v.platform.kvm.swapOut(v, gpa: gpa, pages: pages)
        case .hvRemap(let name, let gpa, let to, let of):
            let v = vm(name, m)
            try v.platform.kvm.remap(v, gpa: gpa, to: to, of: vm(of, m))
        case .hvMigratePage(let name, let gpa):
            let v = vm(name, m)
            try v.platform.kvm.migratePage(v, gpa: gpa)
        case .hvPageFlush(let name, let gpa):
            let v = vm(name, m)
            try v.platform.kvm.flushGuestPage(v, gpa: gpa)
        case .wbinvd(let platform, let core):
            let p = m.platform(named: platform)!
            if let core { p.wbinvd(core: core) } else { p.wbinvdAllCores() }
        case .owner(let name, let policy):
            owners.byName[name] = m.makeGuestOwner(name: name, policy: policy)
        case .launch(let s):
            let v = vm(s.vm, m)
            var owner = s.owner.flatMap { owners.byName[$0] }
            let other = s.share.map { vm($0, m) }
            try expecting(s.expect) {
                try v.platform.vmm.launch(v, owner: &owner, finish: s.finish, sharingKeyOf: other, pin: s.pin,
                                          placement: s.placement, entry: s.entry)
            }
            if let ownerName = s.owner, let owner {
                owners.byName[ownerName] = owner
                if let session = owner.session {
                    sessions.keys.append(SessionKeys(vm: s.vm, owner: ownerName, tek: session.tek, tik: session.tik))
                }
            }
        case .inject(let name, let gpa, let secretName, let ownerName, let bytes, let expect):
            let v = vm(name, m)
            guard let owner = owners.byName[ownerName] else { throw .invalid("no owner named \(ownerName)") }
            if try expecting(expect, { try v.platform.vmm.injectSecret(v, owner: owner, gpa: gpa, secret: bytes) }) {
                try v.platform.kvm.declareSecret(v, gpa: gpa, name: secretName, length: bytes.count)
            }
        case .debugDecrypt(let name, let gpa, let length, let expect, let expectBytes):
            let v = vm(name, m)
            var plaintext: [UInt8]?
            if try expecting(expect, { plaintext = try v.platform.vmm.debugDecrypt(v, gpa: gpa, length: length) }), let expectBytes {
                try Self.check(plaintext ?? [], against: expectBytes)
            }
        case .debugEncrypt(let name, let gpa, let bytes, let expect):
            let v = vm(name, m)
            try expecting(expect) { try v.platform.vmm.debugEncrypt(v, gpa: gpa, bytes: bytes) }
        case .attest(let name, let mnonce, let expect):
            let v = vm(name, m)
            try expecting(expect) { _ = try v.platform.vmm.attestationReport(v, mnonce: mnonce) }
        case .migrate(let name, let platform, let newName, let finish, let expect):
            let v = vm(name, m)
            try expecting(expect) { _ = try v.platform.vmm.migrate(v, to: m.platform(named: platform)!, as: newName, finish: finish) }
        case .psp(let command, let platform, let name, let a, let expect):
            let v = name.map { vm($0, m) }
            let p = v?.platform ?? m.platform(named: platform)!
            let status = try p.kvm.issueDirect(command.command, vm: v, asid: a.asid, gpa: a.gpa, destination: a.destination,
                                               length: a.length, policy: a.policy, firmware: a.firmware,
                                               ocaSigned: a.ocaSigned)
            // A raw command's status is recorded whatever it is; `expect=` makes a regression test of it.
            let outcome = Outcome(firmware: status)
            if let expect, !outcome.matches(expect) { throw .invalid("expected \(expect), got \(outcome)") }
        case .kvm(let k):
            let v = vm(k.vm, m)
            let (ret, error, output) = try v.platform.vmm.rawIoctl(v, id: k.command, fd: k.fd ?? KVM.sevDeviceFD, gpa: k.gpa,
                                                                    length: k.length, policy: k.policy)
            // Like a raw firmware command, the ioctl's answer is recorded whatever it is.
            let outcome = Outcome(errno: -ret, firmware: error == 0 ? nil : SEVStatus(rawValue: UInt16(truncatingIfNeeded: error)))
            if let expect = k.expect, !outcome.matches(expect) { throw .invalid("expected \(expect), got \(outcome)") }
            if let expectBytes = k.expectBytes {
                guard outcome.isSuccess else { throw .invalid("expected bytes back, got \(outcome)") }
                try Self.check(output, against: expectBytes)
            }
        }
    }

    /// Runs a VMM operation that may fail with a firmware or KVM error. With no expectation any failure
    /// is an error; with `expect=ok` or `expect=STATUS` the outcome must be that one, and a failure the
    /// scenario expected is not an error. Returns whether the operation succeeded.
    @discardableResult
    private func expecting(_ expect: String?, _ body: () throws -> Void) throws(MachineError) -> Bool {
        var outcome = Outcome.ok
        var failure: String?
        do {
            try body()
        } catch let f as VMM.Failure {
            outcome = Outcome(errno: -f.errno,
                              firmware: f.firmwareError == 0 ? nil : SEVStatus(rawValue: UInt16(truncatingIfNeeded: f.firmwareError)))
            failure = f.description
        } catch let e as MachineError {
            throw e
        } catch let r as GuestOwner.Refusal {
            outcome = Outcome(refused: true)
            failure = "the guest owner refused: \(r)"
        } catch {
            throw .invalid("\(error)")
        }
        guard let expect else {
            if let failure { throw .invalid(failure) }
            return true
        }
        guard outcome.matches(expect) else {
            throw .invalid("expected \(expect), got \(outcome)" + (failure.map { ": \($0)" } ?? ""))
        }
        return failure == nil
    }

    /// `expect-hex=`: what a command gave back must be these bytes.
    static func check(_ bytes: [UInt8], against expected: [UInt8]) throws(MachineError) {
        guard bytes != expected else { return }
        let hex = { (b: [UInt8]) in b.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }
        throw .invalid("expected bytes \(hex(expected)), got \(bytes.isEmpty ? "none" : hex(bytes))")
    }

    private func addImage(_ v: VirtualMachine, gpa: UInt64, bytes: [UInt8]) throws(MachineError) {
        var padded = bytes
        while padded.count % 16 != 0 { padded.append(0) }
        guard gpa + UInt64(padded.count) <= v.pageTableBase else {
            throw .invalid("\(v.name): \(padded.count) bytes at \(gpa) overlap the guest page tables at \(v.pageTableBase)")
        }
        v.addImage(gpa: gpa, bytes: padded)
    }

}
