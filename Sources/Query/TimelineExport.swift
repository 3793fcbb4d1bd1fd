import Foundation
import TraceFormat

/// A trace as a timeline in the Trace Event Format (JSON), which ui.perfetto.dev and `chrome://tracing`
/// open: a process per platform; a track per vCPU with a slice per guest run (VMRUN to #VMEXIT, named by
/// the exit reason, its exit information in the args); tracks for the hypervisor (KVM ioctls as slices,
/// NPT changes and cache flushes as instants), the PSP (a slice per firmware command with its status
/// and state changes), each device (its DMA, consecutive accesses as one slice) and each VM's C-bit
/// flips; a counter per VM of its pages: shared (C-bit clears minus sets), unmapped (NPT unmaps minus
/// maps) and private (the rest of its memory); and
/// every finding on a findings track, its flow drawn from source through its path to sink.
///
/// Time is the simulated cycle count, one cycle shown as one nanosecond. Events are streamed: memory
/// holds one open run per vCPU, the counters and the findings' flows, never the trace.
public struct TimelineExport {
    /// The window of events to export, inclusive.
    public var from: UInt64
    public var to: UInt64

    public init(from: UInt64 = 0, to: UInt64 = .max) {
        self.from = from
        self.to = to
    }

    /// Thread ids of the fixed tracks; vCPUs, C-bit tracks and devices get their own ranges.
    enum Track {
        static let hypervisor = 1, psp = 2, findings = 3
        static func vcpu(vm: UInt16, _ index: UInt16) -> Int { 1000 + Int(vm) * 256 + Int(index) }
        static func cbit(vm: UInt16) -> Int { 500 + Int(vm) }
        static func device(_ id: UInt16) -> Int { 100 + Int(id) }
    }

    /// A finding and the events of its flow.
    struct Finding {
        var id: Int64
        var detector: String
        var severity: String
        var summary: String
        var vm: UInt16?
        var steps: [(seq: UInt64, role: String)]
    }

    /// Writes the timeline, piece by piece, to `emit`.
    public func write(_ bundle: TraceBundle, _ emit: (String) -> Void) throws {
        let findings = try Self.findings(bundle)
        var needed = Set<UInt64>()
        for f in findings { for s in f.steps { needed.insert(s.seq) } }
        var cycles: [UInt64: UInt64] = [:]
        var platformOf: [UInt16: UInt8] = [:]
        var names: [UInt16: String] = [:]
        var runs: [Int: (ts: UInt64, seq: UInt64, asid: UInt16)] = [:]
        var shared: [UInt16: Int64] = [:], unmapped: [UInt16: Int64] = [:], pages: [UInt16: Int64] = [:]
        var dma: (device: UInt16, pid: Int, start: UInt64, end: UInt64, reads: Int, writes: Int, bytes: Int, first: UInt64)?
        var first = true
        func put(_ json: String) {
            emit((first ? "" : ",\n") + json)
            first = false
        }
        func ts(_ cycle: UInt64) -> String { String(format: "%.3f", Double(cycle) / 1000) }
        func str(_ s: String) -> String { MarkupText.json(s) }
        func hex(_ v: UInt64) -> String { str("0x" + String(v, radix: 16)) }
        func pid(vm: UInt16) -> Int { Int(platformOf[vm] ?? 0) + 1 }
        func slice(_ name: String, pid: Int, tid: Int, start: UInt64, end: UInt64, args: [(String, String)]) {
            let a = args.map { "\(str($0.0)):\($0.1)" }.joined(separator: ",")
            put("{\"ph\":\"X\",\"name\":\(str(name)),\"pid\":\(pid),\"tid\":\(tid),\"ts\":\(ts(start)),\"dur\":\(ts(max(end, start + 1) - start)),\"args\":{\(a)}}")
        }
        func instant(_ name: String, pid: Int, tid: Int, at cycle: UInt64, args: [(String, String)]) {
            let a = args.map { "\(str($0.0)):\($0.1)" }.joined(separator: ",")
            put("{\"ph\":\"i\",\"s\":\"t\",\"name\":\(str(name)),\"pid\":\(pid),\"tid\":\(tid),\"ts\":\(ts(cycle)),\"args\":{\(a)}}")
        }
        func thread(_ name: String, pid: Int, tid: Int) {
            put("{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":\(pid),\"tid\":\(tid),\"args\":{\"name\":\(str(name))}}")
        }
        /// One counter per VM with its private, shared and unmapped pages (private: the rest of its memory).
        func pageCounter(_ vm: UInt16, at cycle: UInt64) {
            let s = max(0, shared[vm, default: 0]), u = max(0, unmapped[vm, default: 0])
            let p = max(0, pages[vm, default: 0] - s - u)
            put("{\"ph\":\"C\",\"name\":\(str("\(names[vm] ?? "\(vm)") pages")),\"pid\":\(pid(vm: vm)),\"ts\":\(ts(cycle)),\"args\":{\"private\":\(p),\"shared\":\(s),\"unmapped\":\(u)}}")
        }
        func closeDMA() {
            guard let d = dma else { return }
            slice("DMA", pid: d.pid, tid: Track.device(d.device), start: d.start, end: d.end,
                  args: [("reads", "\(d.reads)"), ("writes", "\(d.writes)"), ("bytes", "\(d.bytes)"), ("first_seq", "\(d.first)")])
            dma = nil
        }
        emit("{\"displayTimeUnit\":\"ns\",\"otherData\":{\"source\":\(str("sev-trace " + bundle.path)),\"time\":\"simulated cycles, one shown as 1 ns\"},\"traceEvents\":[\n")
        put("{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":0,\"args\":{\"name\":\"findings\"}}")
        thread("findings", pid: 0, tid: Track.findings)
        var previous: UInt64 = 0
        let reader = try bundle.reader()
        try reader.forEachEvent(from: from) { e in
            guard e.seq <= to else { return false }
            defer { previous = e.cycle }
            if needed.contains(e.seq) { cycles[e.seq] = e.cycle }
            if case .memoryAccess(let a) = e.body, case .device(let id) = a.actor {
                let p = Int(a.spa >> 40) + 1
                if let d = dma, d.device != id || d.pid != p { closeDMA() }
                if dma == nil { dma = (id, p, previous, e.cycle, 0, 0, 0, e.seq) }
                dma!.end = e.cycle
                if a.kind.isRead { dma!.reads += 1 } else { dma!.writes += 1 }
                dma!.bytes += Int(a.size)
                return true
            }
            if case .memoryAccess = e.body { return true }
            closeDMA()
            switch e.body {
            case .platformInfo(let p):
                let id = Int(p.platform) + 1
                put("{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":\(id),\"args\":{\"name\":\(str("platform \(p.platform)"))}}")
                thread("hypervisor (KVM)", pid: id, tid: Track.hypervisor)
                thread("PSP (SEV firmware)", pid: id, tid: Track.psp)
            case .vmCreated(let v):
                platformOf[v.vm] = v.platform
                names[v.vm] = v.name
                pages[v.vm] = Int64(clamping: v.memoryBytes >> 12)
                pageCounter(v.vm, at: e.cycle)
                for i in 0..<v.vcpus { thread("\(v.name) vCPU \(i)", pid: pid(vm: v.vm), tid: Track.vcpu(vm: v.vm, i)) }
                thread("\(v.name) C-bit", pid: pid(vm: v.vm), tid: Track.cbit(vm: v.vm))
            case .vmRun(let r):
                runs[Track.vcpu(vm: r.vm, r.vcpu)] = (e.cycle, e.seq, r.asid)
            case .vmExit(let x):
                let track = Track.vcpu(vm: x.vm, x.vcpu)
                guard let run = runs.removeValue(forKey: track) else { return true }
                slice(VMExit.name(of: x.exitCode), pid: pid(vm: x.vm), tid: track, start: run.ts, end: e.cycle,
                      args: [("exit_code", hex(UInt64(x.exitCode))), ("exitinfo1", hex(x.exitInfo1)), ("exitinfo2", hex(x.exitInfo2)),
                             ("rip", hex(x.rip)), ("asid", "\(run.asid)"), ("vmrun_seq", "\(run.seq)"), ("vmexit_seq", "\(e.seq)")])
            case .pspCommand(let c):
                slice(SEVCommand.name(of: c.command), pid: Int(c.platform) + 1, tid: Track.psp, start: previous, end: e.cycle,
                      args: [("status", str(SEVStatus.name(of: c.status))), ("handle", "\(c.handle)"), ("asid", "\(c.asid)"),
                             ("platform", str(PlatformState.name(of: c.platformBefore) + " -> " + PlatformState.name(of: c.platformAfter))),
                             ("guest", str(GuestState.name(of: c.guestBefore) + " -> " + GuestState.name(of: c.guestAfter))), ("seq", "\(e.seq)")])
            case .kvmIoctl(let k):
                slice("KVM_SEV_" + KVMSevCommand.name(of: k.command), pid: pid(vm: k.vm), tid: Track.hypervisor, start: previous, end: e.cycle,
                      args: [("vm", str(names[k.vm] ?? "\(k.vm)")), ("errno", "\(k.errno)"), ("firmware_error", "\(k.firmwareError)"), ("seq", "\(e.seq)")])
            case .nptChange(let n):
                instant("NPT " + n.op.description, pid: pid(vm: n.vm), tid: Track.hypervisor, at: e.cycle,
                        args: [("vm", str(names[n.vm] ?? "\(n.vm)")), ("gpa", hex(n.gpa)), ("spa", hex(n.spa)), ("pages", "\(n.pages)"), ("seq", "\(e.seq)")])
                let delta = Int64(clamping: n.pages)
                switch n.op {
                case .unmap: unmapped[n.vm, default: 0] += delta
                case .map: unmapped[n.vm, default: 0] = max(0, unmapped[n.vm, default: 0] - delta)
                case .remap: break
                }
                pageCounter(n.vm, at: e.cycle)
            case .cbitChange(let c):
                guard c.old != c.new else { return true }
                instant("C-bit \(c.old ? 1 : 0) -> \(c.new ? 1 : 0)", pid: pid(vm: c.vm), tid: Track.cbit(vm: c.vm), at: e.cycle,
                        args: [("vcpu", "\(c.vcpu)"), ("gva", hex(c.gva)), ("gpa", hex(c.gpa)), ("seq", "\(e.seq)")])
                shared[c.vm, default: 0] += c.old ? 1 : -1
                pageCounter(c.vm, at: e.cycle)
            case .cacheOp(let f) where f.op == .clflush || f.op == .wbinvd || f.op == .pageFlush:
                instant(f.op.description.uppercased(), pid: Int(f.spa >> 40) + 1, tid: Track.hypervisor, at: e.cycle,
                        args: [("spa", hex(f.spa)), ("asid", "\(f.asid)"), ("core", "\(f.core)"), ("seq", "\(e.seq)")])
            default:
                break
            }
            return true
        }
        closeDMA()
        // Each finding: a slice at every step of its flow, joined by flow arrows, on the findings track,
        // in time order (the findings' steps interleave).
        var marks: [(at: UInt64, order: Int, json: String)] = []
        for f in findings {
            let steps = f.steps.filter { cycles[$0.seq] != nil }
            for (i, s) in steps.enumerated() {
                let at = cycles[s.seq]!
                let name = i == steps.count - 1 ? "\(f.detector) (\(f.severity))" : "\(f.detector): \(s.role)"
                let args = "\"finding\":\(f.id),\"role\":\(str(s.role)),\"seq\":\(s.seq),\"summary\":\(str(f.summary))"
                marks.append((at, marks.count, "{\"ph\":\"X\",\"name\":\(str(name)),\"pid\":0,\"tid\":\(Track.findings),\"ts\":\(ts(at)),\"dur\":\(ts(1)),\"args\":{\(args)}}"))
                guard steps.count > 1 else { continue }
                let ph = i == 0 ? "s" : i == steps.count - 1 ? "f" : "t"
                marks.append((at, marks.count, "{\"ph\":\"\(ph)\",\"bp\":\"e\",\"id\":\(f.id),\"cat\":\"finding\",\"name\":\(str(f.detector)),\"pid\":0,\"tid\":\(Track.findings),\"ts\":\(ts(at))}"))
            }
        }
        for m in marks.sorted(by: { ($0.at, $0.order) < ($1.at, $1.order) }) { put(m.json) }
        emit("\n]}\n")
    }

    /// The findings and their flows, from the index (none when the trace was not analyzed).
    static func findings(_ bundle: TraceBundle) throws -> [Finding] {
        let db = try bundle.index().database
        var out: [Finding] = []
        var byID: [Int64: Int] = [:]
        for row in try db.prepare("SELECT id, detector, severity, summary, vm, source_seq, sink_seq FROM findings ORDER BY id").rows() {
            guard case .integer(let id) = row[0], case .text(let detector) = row[1], case .text(let severity) = row[2],
                  case .text(let summary) = row[3], case .integer(let source) = row[5], case .integer(let sink) = row[6] else { continue }
            let vm: UInt16? = if case .integer(let v) = row[4] { UInt16(clamping: v) } else { nil }
            byID[id] = out.count
            out.append(Finding(id: id, detector: detector, severity: severity, summary: summary, vm: vm,
                               steps: [(UInt64(bitPattern: source), "source"), (UInt64(bitPattern: sink), "sink")]))
        }
        var flows: [Int64: [(UInt64, String)]] = [:]
        for row in try db.prepare("SELECT finding, seq, role FROM flows ORDER BY finding, step").rows() {
            guard case .integer(let f) = row[0], case .integer(let seq) = row[1], case .text(let role) = row[2] else { continue }
            flows[f, default: []].append((UInt64(bitPattern: seq), role))
        }
        for (id, steps) in flows where steps.count >= 2 {
            if let i = byID[id] { out[i].steps = steps }
        }
        return out
    }
}
