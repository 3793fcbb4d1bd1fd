import TraceFormat

/// Replays a trace's events through shadow memory and register taint and reports where guest-private
/// data escapes. It reads events only; it never runs the simulator.
///
/// Taint sources are the secrets a scenario declares and every byte a guest (or the PSP on its behalf)
/// writes while private. Labels follow data through loads, stores, register operations and string copies.
/// A plaintext leak and a ciphertext observation are different findings: a keyless reader of a block
/// DRAM holds encrypted gets ciphertext, not the data.
///
/// The analyzer is the taint engine: it keeps the shadow memory, the register taint, the cache's dirty
/// lines and the replayed blocks. Every detector is a class of its own under Detectors/ over the state
/// they share in ``AnalysisContext``: those of control events (firmware commands, world switches, launch
/// checks, fetches, nested page faults) through the ``EventDetector`` hooks, those of data flow (leaks,
/// ciphertext, keyless writes, encryption mismatches, registers at exits, remaps, cache aliases,
/// replays) through the facts the engine hands them on its way (``FlowDetectors``).
public final class Analyzer {
    /// Detectors to run.
    public let detectors: Set<Detector>
    private var table = LabelTable()
    private let shadow: ShadowMemory
    /// The detectors of data flow this analysis runs.
    private let flow: FlowDetectors
    /// Every vCPU's registers (r0-r15 and the copy latch), ``registerSlots`` each from the base
    /// ``registerBase(_:_:)`` gives: plain values in one array, so reaching them takes no reference counts.
    /// The first set is scratch, where a vCPU goes once the budget for them ran out.
    private var registerTaint = [RegisterTaint](repeating: RegisterTaint(), count: Analyzer.registerSlots)
    /// Each vCPU's base in `registerTaint`, by `vm << 16 | vcpu`.
    private var registerBases: [UInt32: Int] = [:]
    /// Per vCPU (by base / ``registerSlots``): between a #VMEXIT and the next VMRUN, register writes are
    /// the hypervisor's.
    private var hostWrites = [false]
    static let registerSlots = MemoryAccess.vcpuRegisterSlots
    /// What one vCPU's register taint costs, charged to the shadow memory's budget.
    static let registerFileBytes = registerSlots * MemoryLayout<RegisterTaint>.stride + 64
    /// What the detectors share: VMs, ASIDs, handles, launches, mappings, and the findings.
    let context: AnalysisContext
    /// The detectors of control events that this analysis runs (see ``EventDetector``).
    private let eventDetectors: HookedDetectors
    /// Platforms (by address base) that have a cache, and the dirty lines there (`line << 16 | key id`)
    /// with the labels of the data each holds: a write-back puts those back into memory, which is how a
    /// stale line overwrites what was written under another key.
    private var cachedPlatforms: Set<UInt64> = []
    private var dirtyLines: [UInt64: CachedLine] = [:]

    private func lineKey(_ spa: UInt64, _ keyID: UInt16) -> UInt64 { (spa >> 6) << 16 | UInt64(keyID) }

    private func cacheOp(_ c: CacheOp) {
        switch c.op {
        case .present: cachedPlatforms.insert(c.spa >> 40)
        case .writeBack:
            guard let line = dirtyLines.removeValue(forKey: lineKey(c.spa, c.asid)) else { return }
            line.writeBack(to: shadow, base: c.spa & ~63, keyID: c.asid)
        case .clflush, .wbinvd, .pageFlush:
            break  // the dirty lines they flush arrive as write-backs
        }
    }

    /// Before a CPU-side write on a platform with a cache: the line it dirties is filled from memory as
    /// memory is now, unless it is dirty already.
    private func fillLine(_ a: MemoryAccess) {
        guard !cachedPlatforms.isEmpty, cachedPlatforms.contains(a.spa >> 40) else { return }
        let key = lineKey(a.spa, a.cbit ? a.asid : 0)
        if dirtyLines[key] == nil { dirtyLines[key] = CachedLine(base: a.spa & ~63, from: shadow) }
    }

    /// After a CPU-side write: the line holds the written bytes' labels.
    private func noteDirty(_ a: MemoryAccess) {
        guard !cachedPlatforms.isEmpty, let line = dirtyLines[lineKey(a.spa, a.cbit ? a.asid : 0)] else { return }
        let offset = Int(a.spa & 63)
        line.noteWrite(a.spa, offset: offset, count: min(Int(a.size), 64 - offset), from: shadow)
    }

    /// A C-bit change: are lines of the page under the old key still dirty (CBIT_ALIAS)?
    private func cbitChange(_ c: CbitChange, seq: UInt64) {
        guard let detector = flow.cbitAlias, cachedPlatforms.contains(c.spa >> 40) else { return }
        let oldKey: UInt16 = c.old ? (context.vmASID[c.vm] ?? 0) : 0
        let page = c.spa & ~0xFFF
        let stale = (0..<64 as Range<UInt64>).filter { dirtyLines[lineKey(page + $0 * 64, oldKey)] != nil }.count
        guard stale > 0 else { return }
        detector.cbitChange(c, seq: seq, staleLines: stale, table: &table)
    }

    /// Ciphertext read from private memory, and blocks written back with it.
    private var replays = CiphertextReplays()
    /// Shared ranges the guest declared it fills on purpose (SWIOTLB bounce slots).
    /// The VM of each live hand-over range, by system physical address.
    private var handovers = IntervalMap<UInt16>()
    private var handoverPeak = 0
    /// What a kept mapping or hand-over costs, charged to the shadow memory's budget.
    static let mappingBytes = 96
    /// What the PSP read on its data and transport paths during the current command, byte by byte, in
    /// order: the next bytes it writes on those paths carry these labels.
    private var pspQueue: [(set: LabelTable.SetID, origin: UInt64)] = []
    private var pspQueueHead = 0
    /// Blocks written under the transport key hold ciphertext of guest data that is not a leak.
    static let transportEncrypted: UInt16 = 0xFFFF
    /// Events processed so far.
    public private(set) var eventCount: UInt64 = 0

    /// What one register carries.
    struct RegisterTaint {
        /// The label set of each of the register's 8 bytes (little-endian).
        var bytes = SIMD8<UInt32>(repeating: 0)
        var origin: UInt64 = 0
        var loadSPA: UInt64 = 0
        /// The load that brought the data in, and the write that had put it where it was loaded from.
        var load: UInt64 = 0
        var via: UInt64 = 0
        /// Bytes (bit i: byte i) whose value the host already knows: loaded from memory that holds no
        /// private data (a DMA buffer, a shared page, what the host wrote), or put in the register by the
        /// hypervisor at an exit. Stored privately they stay what they are: private-origin means the
        /// guest produced the data while private, not that it passed through a private page.
        var known: UInt8 = 0

        /// Whether any byte carries a label.
        var isTainted: Bool { bytes != SIMD8<UInt32>(repeating: 0) }
    }

    /// The union of the labels of the low `count` bytes of a register.
    private func union(_ t: RegisterTaint, bytes count: Int = 8) -> LabelTable.SetID {
        var set: LabelTable.SetID = 0
        for i in 0..<count where t.bytes[i] != 0 { set = table.union(set, t.bytes[i]) }
        return set
    }

    /// A provenance chain from its steps, leaving out steps that are unknown or repeat the previous one.
    static func flow(_ steps: [(UInt64, FlowRole)]) -> [FlowStep] {
        var out: [FlowStep] = []
        for (marked, role) in steps where marked != 0 || role == .source {
            let seq = marked & ~hostCopyVia
            if let last = out.last, last.seq == seq { continue }
            out.append(FlowStep(seq: seq, role: role))
        }
        return out
    }

    /// Where a vCPU's registers start in `registerTaint` (made on first use).
    private func registerBase(_ vm: UInt16, _ vcpu: UInt16) -> Int {
        let key = UInt32(vm) << 16 | UInt32(vcpu)
        // Consecutive accesses mostly come from one vCPU: skip the hash for them.
        if key == lastRegisterKey { return lastRegisterBase }
        let base: Int
        if let b = registerBases[key] {
            base = b
        } else if !shadow.reserve(Self.registerFileBytes) {
            return 0  // out of budget: the analysis stops at this event (``exhausted``)
        } else {
            base = registerTaint.count
            registerTaint += Array(repeating: RegisterTaint(), count: Self.registerSlots)
            hostWrites.append(false)
            registerBases[key] = base
        }
        (lastRegisterKey, lastRegisterBase) = (key, base)
        return base
    }
    private var lastRegisterKey: UInt32 = .max
    private var lastRegisterBase = 0

    /// - Parameter maxFindings: past this many findings, further hits are counted per detector
    ///   instead of listed (`analyze --max-findings`).
    ///   - maxShadowBytes: the most memory the shadow state may take (`--max-shadow-memory`); an
    ///     analysis that needs more stops with ``AnalysisLimitError``.
    public init(detectors: Set<Detector> = Set(Detector.allCases), maxFindings: Int = 100_000, maxShadowBytes: Int = 2 << 30) {
        self.detectors = detectors
        let context = AnalysisContext(detectors: detectors, maxFindings: maxFindings, maxShadowBytes: maxShadowBytes)
        self.context = context
        eventDetectors = HookedDetectors(eventDetectorTypes.filter { detectors.contains($0.detector) }.map { $0.init(context: context) })
        flow = FlowDetectors(context: context)
        shadow = context.shadow
    }

    /// Whether the shadow state outgrew its budget (then events are no longer processed).
    public var exhausted: Bool { shadow.exhausted }

    /// The findings so far, in the order they were first seen.
    public var findings: [Finding] { context.collector.finished }

    /// Runs every event of `reader` through the analyzer, one chunk in memory at a time.
    public func analyze(_ reader: TraceReader) throws -> [Finding] {
        try reader.forEachChunk { chunk in
            try chunk.withUnsafeBufferPointer { events in
                for i in events.indices {
                    // Memory accesses, most events, are read where they lie: an event handed over whole is
                    // copied and destroyed, which cost a tenth of the analysis.
                    if case .memoryAccess(let a) = events[i].body {
                        processAccess(a, seq: events[i].seq)
                    } else {
                        process(events[i])
                    }
                    guard !shadow.exhausted else {
                        throw AnalysisLimitError(seq: events[i].seq, maxShadowBytes: shadow.maxBytes)
                    }
                }
            }
            return true
        }
        return findings
    }

    /// Processes one memory access (what ``process(_:)`` does with one).
    @inline(__always)
    private func processAccess(_ a: MemoryAccess, seq: UInt64) {
        guard !shadow.exhausted else { return }
        eventCount += 1
        access(a, seq: seq)
    }

    /// Processes one event.
    public func process(_ e: TraceEvent) {
        guard !shadow.exhausted else { return }
        eventCount += 1
        switch e.body {
        case .memoryAccess(let a): access(a, seq: e.seq)
        case .registerOp(let r):
            for d in eventDetectors.registerOp { d.registerOp(r, seq: e.seq) }
            registerOp(r)
        case .vmCreated(let v):
            context.vmNames[v.vm] = v.name
            context.vmPlatform[v.vm] = v.platform
            context.vmMemory[v.vm] = v.memoryBytes
            if v.sev {
                context.asidToVM[UInt32(v.platform) << 16 | UInt32(v.asid)] = v.vm
                context.vmASID[v.vm] = v.asid
            }
        case .taintSource(let t):
            let set = table.secret(name: t.name, seq: e.seq, spa: t.spa)
            let existing = shadow.read(t.spa, size: Int(t.length), table: &table)
            shadow.write(t.spa, size: Int(t.length), set: table.union(set, existing.set), origin: e.seq,
                         encryptedBy: shadow.encryption(t.spa, size: 1))
        case .pspCommand(let p):
            pspCommand(p, seq: e.seq)
        case .nptChange(let n):
            nptChange(n, seq: e.seq)
        case .vmExit(let x):
            vmExit(x, seq: e.seq)
        case .vmRun(let r):
            vmRun(r, seq: e.seq)
        case .handover(let h):
            let (end, overflow) = h.spa.addingReportingOverflow(h.length)
            handovers.replace(h.spa, overflow ? .max : end, h.vm)
            // The ranges handed over and still live are charged too (the most at once is what counts).
            if handovers.count > handoverPeak {
                handoverPeak = handovers.count
                _ = shadow.reserve(Self.mappingBytes)
            }
        case .cacheOp(let c):
            cacheOp(c)
        case .cbitChange(let c):
            cbitChange(c, seq: e.seq)
        case .platformInfo(let p):
            context.platformCbit[p.platform] = p.cbitPosition
        case .ownerCheck(let o):
            for d in eventDetectors.ownerCheck { d.ownerCheck(o, seq: e.seq) }
        case .vcpuMode, .vcpuHalt, .kvmIoctl:
            break
        }
    }

    private func registerOp(_ r: RegisterOp) {
        let base = registerBase(r.vm, r.vcpu)
        let slots = Self.registerSlots
        let dst = Int(r.dst), src = Int(r.src)
        guard dst < slots else { return }
        switch r.op {
        case .loadImmediate:
            // Between a #VMEXIT and the next VMRUN, it is the hypervisor that writes the register (an IN's
            // data, a CPUID answer): the host knows that value.
            registerTaint[base + dst] = RegisterTaint()
            if hostWrites[base / slots] { registerTaint[base + dst].known = 0xFF }
        case .move: registerTaint[base + dst] = src < slots ? registerTaint[base + src] : RegisterTaint()
        case .xor where dst == src:
            registerTaint[base + dst] = RegisterTaint()  // the zeroing idiom
        case .and, .or, .xor:
            // Bitwise: byte i of the result depends on byte i of each operand.
            guard src < slots else { return }
            let source = registerTaint[base + src]
            registerTaint[base + dst].known &= source.known
            guard source.isTainted else { return }
            var result = registerTaint[base + dst]
            let wasTainted = result.isTainted
            for i in 0..<8 { result.bytes[i] = table.union(result.bytes[i], source.bytes[i]) }
            if !wasTainted { (result.origin, result.loadSPA, result.load, result.via) = (source.origin, source.loadSPA, source.load, source.via) }
            registerTaint[base + dst] = result
        case .add, .sub:
            // Carries: byte i of the result depends on bytes 0...i of both operands.
            guard src < slots else { return }
            let both = registerTaint[base + dst].known & registerTaint[base + src].known
            registerTaint[base + dst].known = both & ~(both &+ 1)  // the low run of bytes known on both sides
            let a = registerTaint[base + dst], b = registerTaint[base + src]
            guard a.isTainted || b.isTainted else { return }
            var result = a.isTainted ? a : b
            var running: LabelTable.SetID = 0
            for i in 0..<8 {
                running = table.union(running, table.union(a.bytes[i], b.bytes[i]))
                result.bytes[i] = running
            }
            registerTaint[base + dst] = result
        case .addImmediate:
            registerTaint[base + dst].known = 0  // the guest mixed in a constant of its own
            var result = registerTaint[base + dst]
            guard result.isTainted else { return }
            var running: LabelTable.SetID = 0
            for i in 0..<8 {
                running = table.union(running, result.bytes[i])
                result.bytes[i] = running
            }
            registerTaint[base + dst] = result
        }
    }

    private func access(_ a: MemoryAccess, seq: UInt64) {
        let size = Int(a.size)
        switch a.actor {
        case .vcpu(let vm, let index):
            if a.kind == .fetch {
                for d in eventDetectors.fetch { d.fetch(a, vm: vm, seq: seq) }
                return
            }
            if a.kind == .read && a.cbit && !replays.rolledBack.isEmpty, let r = replays.rolledBack[a.spa >> 4] {
                flow.ciphertextReplay?.guestRead(a, seq: seq, readSeq: r.readSeq, writeSeq: r.writeSeq)
            }
            // Reads by the guest kernel's own services (no register: an async-PF reason, a PTE) count too.
            if a.kind == .read && a.asid != 0 && EncryptionMismatchDetector.isMismatch(a, in: shadow) {
                flow.encryptionMismatch?.guestRead(a, seq: seq)
            }
            guard a.kind == .read || a.kind == .write, a.register != MemoryAccess.noRegister || a.kind == .write else {
                return
            }
            let base = registerBase(vm, index)
            if a.kind == .read {
                guard Int(a.register) < Self.registerSlots else { return }
                // A load fills the low `size` bytes and zero-extends.
                let (bytes, origin, via) = shadow.readBytes(a.spa, size: min(size, 8))
                var known: UInt8 = 0
                for i in 0..<8 where bytes[i] == 0 { known |= 1 << UInt8(i) }
                registerTaint[base + Int(a.register)] = RegisterTaint(bytes: bytes, origin: origin ?? seq, loadSPA: a.spa, load: seq, via: via,
                                                        known: known)
                return
            }
            var source = RegisterTaint()
            if Int(a.register) < Self.registerSlots { source = registerTaint[base + Int(a.register)] }
            let width = min(size, 8)
            var written = union(source, bytes: width)
            if !a.cbit && written != 0, let handoverVM = handovers.value(at: a.spa) {
                let mark = table.handover(vm: handoverVM, seq: seq)
                for i in 0..<width where source.bytes[i] != 0 { source.bytes[i] = table.union(source.bytes[i], mark) }
                written = table.union(written, mark)
            }
            if !a.cbit && written != 0 {
                flow.privateToShared?.sharedStore(a, seq: seq, set: written, source: source, table: &table)
            }
            var bytes = source.bytes
            var origin = source.origin
            if a.cbit && source.known != 0xFF {
                // Written while private: every byte the guest produced becomes its private data as well.
                let mark = table.privateData(vm: vm, seq: seq)
                for i in 0..<8 where source.known & (1 << UInt8(i)) == 0 { bytes[i] = table.union(bytes[i], mark) }
                if written == 0 { origin = seq }
            }
            fillLine(a)
            replays.guestWrote(a.spa)
            if size <= 8 {
                shadow.writeBytes(a.spa, size: size, sets: bytes, origin: origin, via: seq, encryptedBy: a.cbit ? a.asid : 0)
            } else {
                shadow.write(a.spa, size: size, set: bytes[0], origin: origin, via: seq, encryptedBy: a.cbit ? a.asid : 0)
            }
            noteDirty(a)
        case .device, .hypervisor:
            let isDevice = a.actor != .hypervisor
            if a.kind.isRead {
                let asid = shadow.encryption(a.spa, size: size)
                if asid == Self.transportEncrypted {
                    return  // transport ciphertext: what migration and launch secrets are made to carry
                } else if asid != 0 {
                    flow.ciphertextObservation?.read(a, seq: seq)
                    if size == 8 && flow.ciphertextReplay != nil {
                        let (sets, origin, _) = shadow.readBytes(a.spa, size: 8)
                        replays.observe(spa: a.spa, value: a.value, asid: asid, version: shadow.blockVersion(a.spa), sets: sets,
                                        origin: origin ?? 0, seq: seq, state: shadow.blockState(a.spa))
                    }
                } else {
                    let (set, origin, via) = shadow.readWithVia(a.spa, size: size, table: &table)
                    // The host reading back what its own copy put there has seen it already, at the copy.
                    if set != 0 && isDevice {
                        flow.privateToDMA?.plaintextRead(a, seq: seq, set: set, origin: origin, via: via, table: &table)
                    } else if set != 0 && via & Self.hostCopyVia == 0 {
                        flow.hvPlaintext?.plaintextRead(a, seq: seq, set: set, origin: origin, via: via, table: &table)
                    }
                }
            } else {
                let stored = shadow.encryption(a.spa, size: size)
                let intoPrivate = stored != 0 && stored != Self.transportEncrypted
                if intoPrivate {
                    if isDevice { flow.dmaIntoPrivate?.keylessWrite(a, seq: seq) } else { flow.hvWritePrivate?.keylessWrite(a, seq: seq) }
                }
                let replayed = intoPrivate && size == 8 ? replays.match(spa: a.spa, value: a.value, asid: stored) : nil
                let versionBefore = shadow.blockVersion(a.spa)
                if !isDevice { fillLine(a) }
                if a.actor == .hypervisor && a.register == MemoryAccess.hostCopyRegister {
                    hostCopy(a, size: size, seq: seq)
                } else {
                    shadow.write(a.spa, size: size, set: 0, origin: seq, encryptedBy: 0)
                }
                if !isDevice { noteDirty(a) }
                if intoPrivate || !replays.rolledBack.isEmpty,
                   let r = replays.wrote(spa: a.spa, match: replayed, before: versionBefore, after: shadow.blockVersion(a.spa), seq: seq) {
                    // The whole block holds an older ciphertext again: it decrypts to what it held then.
                    shadow.restoreBlock(r.spa, state: r.state, sets: r.sets, origins: r.origins)
                }
            }
        case .psp:
            pspAccess(a, size: size, seq: seq)
        }
    }

    /// Marks, in a byte's last-write seq, that the host's own copy put it there: the host reading it
    /// back is no new leak. Flows report the seq without it.
    static let hostCopyVia: UInt64 = 1 << 63

    /// A write on the host's copy path: the bytes keep the labels they had at the address they were
    /// copied from (in `gva`). Transport ciphertext stays transport ciphertext (it does not depend on
    /// where it lies). Ciphertext under a guest key carries nothing: at another address its tweak no
    /// longer matches, so no plaintext survives the move, and it lands as if written in the clear.
    private func hostCopy(_ a: MemoryAccess, size: Int, seq: UInt64) {
        let encryption = shadow.encryption(a.gva, size: size)
        let transport = encryption == Self.transportEncrypted
        guard encryption == 0 || transport else {
            shadow.write(a.spa, size: size, set: 0, origin: seq, encryptedBy: 0)
            return
        }
        let (sets, origin, _) = shadow.readBytes(a.gva, size: min(size, 8))
        shadow.writeBytes(a.spa, size: min(size, 8), sets: sets, origin: origin ?? seq, via: seq | Self.hostCopyVia,
                          encryptedBy: transport ? Self.transportEncrypted : 0)
    }

    /// The firmware moves data on two paths (register 17, its data path, and 18, the transport path):
    /// what it reads there it writes next, so labels follow in order. Written under a guest key the data
    /// becomes that guest's private data; written on the transport path it is ciphertext under the TEK.
    private func pspAccess(_ a: MemoryAccess, size: Int, seq: UInt64) {
        let onPath = a.register == 17 || a.register == 18
        if a.kind.isRead {
            guard onPath else { return }
            for i in 0..<size {
                let (set, origin) = shadow.read(a.spa + UInt64(i), size: 1, table: &table)
                pspQueue.append((set, origin ?? seq))
            }
            return
        }
        var set: LabelTable.SetID = 0
        var origin = seq
        if onPath {
            for _ in 0..<size where pspQueueHead < pspQueue.count {
                let item = pspQueue[pspQueueHead]
                pspQueueHead += 1
                if item.set != 0 && set == 0 { origin = item.origin }
                set = table.union(set, item.set)
            }
        }
        if a.cbit, let owner = context.asidToVM[UInt32(a.spa >> 40) << 16 | UInt32(a.asid)] {
            set = table.union(set, table.privateData(vm: owner, seq: seq))
        }
        if a.cbit && onPath { pendingMeasured.append((a.spa, size)) }
        let encryption = a.cbit ? a.asid : a.register == 18 ? Self.transportEncrypted : 0
        shadow.write(a.spa, size: size, set: set, origin: origin, via: seq, encryptedBy: encryption)
    }

    /// The blocks the current firmware command wrote on its data path under a guest key.
    private var pendingMeasured: [(spa: UInt64, size: Int)] = []

    private func pspCommand(_ p: PSPCommand, seq: UInt64) {
        pspQueue.removeAll(keepingCapacity: true)
        pspQueueHead = 0
        let ok = p.status == SEVStatus.success.rawValue
        if ok && (p.command == SEVCommand.launchUpdateData.rawValue || p.command == SEVCommand.receiveUpdateData.rawValue) {
            for m in pendingMeasured { shadow.markMeasured(m.spa, size: m.size) }
        }
        pendingMeasured.removeAll(keepingCapacity: true)
        let slot = UInt32(p.platform) << 16 | UInt32(p.asid)
        let handleKey = UInt64(p.platform) << 32 | UInt64(p.handle)
        if p.command == SEVCommand.activate.rawValue && ok {
            // ASIDs are per platform; the VM is the one KVM created with this ASID on that platform.
            if let vm = context.asidToVM[slot] {
                context.markLaunched(vm)
                context.handleVM[handleKey] = vm
            }
            if context.activeHandles[slot, default: []].contains(where: { $0 != p.handle }) { context.sharedSlots.insert(slot) }
            if !context.activeHandles[slot, default: []].contains(p.handle) { context.activeHandles[slot, default: []].append(p.handle) }
        }
        if p.command == SEVCommand.deactivate.rawValue && ok {
            for key in context.activeHandles.keys.sorted() { context.activeHandles[key]?.removeAll { $0 == p.handle } }
        }
        for d in eventDetectors.pspCommand { d.pspCommand(p, seq: seq) }
    }

    private func vmRun(_ r: VMRun, seq: UInt64) {
        if let base = registerBases[UInt32(r.vm) << 16 | UInt32(r.vcpu)] { hostWrites[base / Self.registerSlots] = false }
        for d in eventDetectors.vmRun { d.vmRun(r, seq: seq) }
    }

    /// A #VMEXIT: register writes are the hypervisor's until the next VMRUN; the registers are in the VMCB
    /// (REGISTER_EXPOSURE).
    private func vmExit(_ x: VMExit, seq: UInt64) {
        let base = registerBase(x.vm, x.vcpu)
        hostWrites[base / Self.registerSlots] = true
        for d in eventDetectors.vmExit { d.vmExit(x, seq: seq) }
        flow.registerExposure?.exit(x, seq: seq, registers: registerTaint[base..<base + Self.registerSlots], table: &table)
    }

    /// A nested-page-table change: mappings as created are kept; a remap may move a launched guest's
    /// page (NPT_REMAP).
    private func nptChange(_ n: NPTChange, seq: UInt64) {
        // Each mapping kept is charged to the shadow budget: a trace can make any number of them.
        if n.op == .map {
            let kept = context.mappings.add(.init(vm: n.vm, gpaPage: n.gpa >> 12, spaPage: n.spa >> 12, pages: n.pages, seq: seq))
            if kept > 0 { _ = shadow.reserve(kept * Self.mappingBytes) }
        }
        for d in eventDetectors.nptChange { d.nptChange(n, seq: seq) }
        if n.op == .remap { flow.nptRemap?.remap(n, seq: seq, table: &table) }
    }
}

/// An analysis that needed more shadow state than its budget allows.
public struct AnalysisLimitError: Error, Sendable, CustomStringConvertible {
    /// The event at which the budget ran out.
    public var seq: UInt64
    public var maxShadowBytes: Int

    public var description: String {
        "event \(seq): the analysis needs more than \(maxShadowBytes) bytes of shadow memory for the memory this trace writes (raise the limit with --max-shadow-memory)"
    }
}
