import SEVMachine
import TraceFormat

/// Runs a parsed scenario on a fresh machine, statement by statement, reporting every event to a sink.
public struct ScenarioRunner {
    public let script: ScenarioScript
    public let seed: UInt64

    public init(script: ScenarioScript, seed: UInt64) {
        self.script = script
        self.seed = seed
    }

    /// Builds the machine and runs every statement. A machine error names the statement that caused it.
    @discardableResult
    public func run(into sink: EventSink) throws(ScenarioError) -> Machine {
        let machine = Machine(seed: seed, sink: sink)
        for p in script.platforms { machine.addPlatform(name: p.name, config: p.config) }
        for s in script.statements {
            do {
                try execute(s.statement, on: machine)
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
        case .vm(let name, let platform, let memory, let policy, let sev, let vcpus):
            try m.platform(named: platform)!.kvm.createVM(name: name, memoryBytes: memory, policy: policy, sev: sev,
                                                           vcpus: vcpus)
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
        case .launch(let name):
            let v = vm(name, m)
            try v.platform.kvm.launch(v)
        case .run(let name, let vcpu):
            let v = vm(name, m)
            try v.platform.kvm.run(v, vcpu: vcpu)
        case .secret(let name, let gpa, let secretName, let bytes):
            let v = vm(name, m)
            try v.platform.kvm.guestWriteSecret(v, gpa: gpa, name: secretName, bytes: bytes)
        case .dmaRead(let device, let name, let gpa, let length):
            try m.device(named: device)!.dmaRead(vm: vm(name, m), gpa: gpa, length: length)
        case .dmaWrite(let device, let name, let gpa, let bytes):
            try m.device(named: device)!.dmaWrite(vm: vm(name, m), gpa: gpa, bytes: bytes)
        case .hvRead(let name, let gpa, let length):
            let v = vm(name, m)
            try v.platform.kvm.read(v, gpa: gpa, length: length)
        case .hvWrite(let name, let gpa, let bytes):
            let v = vm(name, m)
            try v.platform.kvm.write(v, gpa: gpa, bytes: bytes)
        case .wbinvd(let platform):
            m.platform(named: platform)!.wbinvdAllCores()
        case .psp(let command, let platform, let name, let asid):
            let v = name.map { vm($0, m) }
            try psp(command, v, asid: asid, v?.platform ?? m.platform(named: platform)!)
        }
    }

    private func addImage(_ v: VirtualMachine, gpa: UInt64, bytes: [UInt8]) throws(MachineError) {
        var padded = bytes
        while padded.count % 16 != 0 { padded.append(0) }
        guard gpa + UInt64(padded.count) <= v.pageTableBase else {
            throw .invalid("\(v.name): \(padded.count) bytes at \(gpa) overlap the guest page tables at \(v.pageTableBase)")
        }
        v.addImage(gpa: gpa, bytes: padded)
    }

    private func psp(_ command: ScenarioScript.PSPStatement, _ v: VirtualMachine?, asid: UInt16?, _ m: Platform)
        throws(MachineError) {
        let id: SEVCommand
        switch command {
        case .initialize: id = .initialize
        case .shutdown: id = .shutdown
        case .platformStatus: id = .platformStatus
        case .dfFlush: id = .dfFlush
        case .activate: id = .activate
        case .deactivate: id = .deactivate
        case .decommission: id = .decommission
        case .guestStatus: id = .guestStatus
        }
        var buffer = CommandBuffer(size: CommandBuffer.size(of: id))
        if let v {
            buffer.setU32(0, v.handle)
            if id == .activate { buffer.setU32(4, UInt32(asid ?? v.asid)) }
        }
        m.firmware.execute(id.rawValue, buffer: &buffer)
    }
}
