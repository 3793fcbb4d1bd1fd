import SEVMachine
import TraceFormat

/// Memory as it was right after one event of a trace. The data comes from the trace itself: every write
/// event carries the bytes as its writer saw them (plaintext for a guest, a device or the PSP; what a
/// keyless writer put there otherwise), with its C-bit. What DRAM held comes from re-running the
/// trace's scenario up to that event (the simulation is deterministic), stopped there, which also
/// gives the guest's translation of `gpa` and, with the VM's key, DRAM decrypted: on a platform without
/// caches, a block last written through the key decrypts to its data.
public enum MemoryTimeTravel {
    /// Where to look.
    public enum Place: Sendable {
        /// A system physical address as the trace numbers them (the platform in bits 40 and up).
        case spa(UInt64)
        /// A guest physical address of a VM.
        case gpa(vm: String, UInt64)
    }

    /// What the memory held after event `seq`.
    public struct View: Sendable, Equatable {
        public var seq: UInt64
        public var platform: String
        /// The VM and guest physical address asked for, if any.
        public var vm: String?
        public var gpa: UInt64?
        /// Per byte: its system physical address (as the trace numbers them).
        public var spa: [UInt64]
        /// Per byte: as its last writer wrote it (0 for a byte never written).
        public var data: [UInt8]
        /// Per byte: the event that last wrote it, whether that write went through a key, and whose (the ASID).
        public var lastWrite: [UInt64?]
        public var cbit: [Bool]
        public var writeASID: [UInt16]
        /// The VM's ASID after the event (nil without a VM).
        public var asid: UInt16?
        /// DRAM at that moment.
        public var dram: [UInt8]
        /// DRAM decrypted with the VM's key (nil without a VM or a key).
        public var decrypted: [UInt8]?
        /// Whether the platform has caches (then DRAM may not hold the latest writes yet).
        public var cached: Bool
    }

    /// The most bytes one view shows.
    public static let maxLength = 1 << 16

    public enum Failure: Error, CustomStringConvertible {
        case noSuchEvent(seq: UInt64, events: UInt64)
        case badLength(Int)
        case unavailable(String)
        case diverged(seq: UInt64)

        public var description: String {
            switch self {
            case .noSuchEvent(let seq, let events): "the trace has \(events) events; there is no event #\(seq)"
            case .badLength(let n): "the length must be 1 to \(MemoryTimeTravel.maxLength) bytes, not \(n)"
            case .unavailable(let why): why
            case .diverged(let seq): "re-running the scenario did not reproduce event #\(seq): this build simulates differently from the one that recorded the trace"
            }
        }
    }

    /// Steps of simulated work one recorded event can stand for, at most: a world switch counts 20 for
    /// its two events, string I/O 8 per 8-byte access, everything else one per event.
    static let stepsPerEvent: UInt64 = 32

    /// Memory at `place`, `length` bytes, right after event `seq` of `bundle`.
    ///
    /// The re-run may take as many steps as the recording needed to reach `seq` (``stepsPerEvent`` per
    /// event, whatever `limits` says: a trace recorded with a larger `--max-steps` is not refused), and
    /// stops at `seq`.
    public static func view(_ bundle: TraceBundle, at seq: UInt64, _ place: Place, length: Int,
                            limits: ScenarioLimits = ScenarioLimits(), method: Method = .shortcut) throws -> View {
        guard length >= 1 && length <= maxLength else { throw Failure.badLength(length) }
        let reader = try bundle.reader()
        let total = try reader.eventCount()
        guard seq < total else { throw Failure.noSuchEvent(seq: seq, events: total) }
        var limits = limits
        let (needed, overflow) = (seq + 1).multipliedReportingOverflow(by: stepsPerEvent)
        limits.machine.maxSteps = max(limits.machine.maxSteps, overflow ? .max : needed)
        if method == .shortcut, let view = try shortcut(bundle, reader, at: seq, place, length: length, limits: limits) {
            return view
        }
        var view = try simulate(reader, to: seq, limits: limits) { try read($0, seq: seq, place, length: length) }
        // The data and last writers, walking back from `seq` (nothing to replay: the machine is at `seq`).
        let walk = WriteWalk(spa: view.spa, seq: seq, base: seq)
        try walk.run(reader, try? bundle.index())
        (view.data, view.lastWrite, view.cbit, view.writeASID) = (walk.data, walk.lastWrite, walk.cbit, walk.writeASID)
        return view
    }

    /// How ``view(_:at:_:length:limits:method:)`` finds the machine's state.
    public enum Method: Sendable {
        /// Re-run only to the last event before `seq` that changes keys, nested page tables or VMs,
        /// and replay the trace's writes from there (``shortcut(_:_:at:_:length:limits:)``); re-run to
        /// `seq` where that does not apply.
        case shortcut
        /// Always re-run the scenario to `seq`.
        case rerun
    }

    /// Re-runs the scenario to event `seq` and lets `capture` look at the machine as it is when the event
    /// is reported (everything the event did is done), then stops it there.
    static func simulate<T>(_ reader: TraceReader, to seq: UInt64, limits: ScenarioLimits,
                            capture: @escaping (Machine) throws -> T) throws -> T {
        let h = reader.header
        let script = try ScenarioParser(file: h.scenarioName, limits: limits).parse(h.scenarioText)
        let sink = CaptureSink(target: seq)
        var captured: T?
        sink.capture = { machine in
            do {
                captured = try capture(machine)
            } catch {
                sink.failure = error
            }
        }
        do {
            try ScenarioRunner(script: script, seed: h.seed).run(into: sink) { sink.machine = $0 }
        } catch {
            // The capture stops the simulation on purpose; any other end before it is an error.
            if !sink.captured { throw error }
        }
        if let failure = sink.failure { throw failure }
        guard sink.captured, let captured else { throw Failure.diverged(seq: seq) }
        // The replayed event must be the recorded one, or the memory read is not the trace's.
        var recorded: TraceEvent?
        try reader.forEachEvent(from: seq) {
            recorded = $0
            return false
        }
        guard let recorded, recorded.body == sink.event, recorded.cycle == sink.cycle else { throw Failure.diverged(seq: seq) }
        return captured
    }

    /// Where a place's bytes are in a machine as it is now.
    struct Location {
        let platform: Platform
        let vm: VirtualMachine?
        let gpa: UInt64?
        /// Per byte, its system physical address on `platform` (without the platform's trace base).
        let locals: [UInt64]
    }

    /// Reads the place in the machine as it is now.
    static func read(_ machine: Machine, seq: UInt64, _ place: Place, length: Int) throws -> View {
        try read(locate(machine, seq: seq, place, length: length), seq: seq, length: length)
    }

    /// Finds the place's bytes: the platform's memory, or the guest's translation now.
    static func locate(_ machine: Machine, seq: UInt64, _ place: Place, length: Int) throws -> Location {
        switch place {
        case .spa(let traced):
            let id = Int(traced >> 40)
            guard id < machine.platforms.count else { throw Failure.unavailable("no platform \(id) (the address's bits 40 and up)") }
            let platform = machine.platforms[id]
            let local = traced & ((1 << 40) - 1)
            guard local <= UInt64(platform.config.memoryBytes), UInt64(length) <= UInt64(platform.config.memoryBytes) - local else {
                throw Failure.unavailable("0x\(String(local, radix: 16)) + \(length) is outside the platform's memory")
            }
            return Location(platform: platform, vm: nil, gpa: nil, locals: (0..<UInt64(length)).map { local + $0 })
        case .gpa(let name, let address):
            guard let vm = machine.vm(named: name) else { throw Failure.unavailable("no VM named '\(name)' exists after event #\(seq)") }
            guard address <= vm.memoryBytes, UInt64(length) <= vm.memoryBytes - address else {
                throw Failure.unavailable("gpa 0x\(String(address, radix: 16)) + \(length) is outside \(name)'s memory")
            }
            var locals: [UInt64] = []
            var page = UInt64.max, base: UInt64 = 0
            for i in 0..<UInt64(length) {
                let a = address + i
                if a >> 12 != page {
                    page = a >> 12
                    do { base = try vm.translate(a & ~0xFFF) } catch {
                        throw Failure.unavailable("gpa 0x\(String(a & ~0xFFF, radix: 16)) of \(name) is not mapped after event #\(seq)")
                    }
                }
                locals.append(base | (a & 0xFFF))
            }
            return Location(platform: vm.platform, vm: vm, gpa: address, locals: locals)
        }
    }

    /// DRAM at the location now, and decrypted with the VM's key.
    static func read(_ location: Location, seq: UInt64, length: Int) throws -> View {
        let platform = location.platform, locals = location.locals
        let key = location.vm.flatMap { $0.isSEV ? platform.controller.key(forASID: $0.asid) : nil }
        var dram: [UInt8] = []
        var decrypted: [UInt8]? = key == nil ? nil : []
        // Contiguous runs of system physical addresses, 16-byte blocks for the decryption.
        var i = 0
        while i < locals.count {
            var j = i + 1
            while j < locals.count && locals[j] == locals[j - 1] + 1 { j += 1 }
            dram += try platform.memory.rawBytes(at: locals[i], count: j - i)
            if let key {
                let start = locals[i] & ~15, end = (locals[j - 1] + 16) & ~15
                let blocks = try platform.controller.readBytes(start, count: Int(end - start), key: key)
                decrypted! += blocks[Int(locals[i] - start)..<Int(locals[i] - start) + (j - i)]
            }
            i = j
        }
        return View(seq: seq, platform: platform.name, vm: location.vm?.name, gpa: location.gpa, spa: locals.map { $0 + platform.traceBase },
                    data: [UInt8](repeating: 0, count: length), lastWrite: Array(repeating: nil, count: length),
                    cbit: Array(repeating: false, count: length), writeASID: Array(repeating: 0, count: length), asid: location.vm?.asid,
                    dram: dram, decrypted: decrypted, cached: platform.config.cacheBytes > 0)
    }

    /// Keeps the writes that start within `[low, high]` (system physical).
    final class WritesNear: EventFilter, @unchecked Sendable {
        let low: UInt64, high: UInt64
        init(low: UInt64, high: UInt64) { (self.low, self.high) = (low, high) }

        override func accepts(_ body: EventBody) -> Bool {
            guard case .memoryAccess(let a) = body else { return false }
            return !a.kind.isRead && a.spa >= low && a.spa <= high
        }
    }

    /// Counts events and, at the target, lets `capture` look at the machine, then asks it to stop.
    private final class CaptureSink: EventSink {
        let target: UInt64
        var next: UInt64 = 0
        var machine: Machine?
        var capture: (Machine) -> Void = { _ in }
        var captured = false
        var failure: Error?
        var event: EventBody?
        var cycle: UInt64 = 0

        init(target: UInt64) { self.target = target }

        func record(cycle: UInt64, _ body: EventBody) {
            defer { next += 1 }
            guard next == target, let machine else { return }
            event = body
            self.cycle = cycle
            captured = true
            capture(machine)
        }

        var stopRequest: String? { next > target ? "memory read after event #\(target)" : nil }
    }
}
