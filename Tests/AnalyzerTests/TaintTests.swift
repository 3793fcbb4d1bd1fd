import Testing
import TraceFormat
@testable import Analyzer

/// Taint propagation, fed with hand-made events.
struct TaintTests {
    var seq: UInt64 = 0
    let analyzer = Analyzer()

    mutating func feed(_ body: EventBody) {
        analyzer.process(TraceEvent(seq: seq, cycle: seq, body: body))
        seq += 1
    }

    func access(_ kind: AccessKind, _ spa: UInt64, reg: UInt8 = MemoryAccess.noRegister, cbit: Bool,
                actor: Actor = .vcpu(vm: 0, index: 0)) -> EventBody {
        .memoryAccess(MemoryAccess(actor: actor, vm: 0, asid: 1, kind: kind, gva: spa, gpa: spa, spa: spa, size: 8,
                                   cbit: cbit, reason: .guestPTE, register: reg, value: 0x1234))
    }

    mutating func setUp() {
        feed(.vmCreated(VMCreated(vm: 0, name: "g", asid: 1, policy: 1, memoryBytes: 1 << 22, vcpus: 1, sev: true)))
        feed(access(.write, 0x5000, cbit: true))   // private bytes
        feed(.taintSource(TaintSource(vm: 0, name: "k", gpa: 0x5000, spa: 0x5000, length: 8)))
    }

    @Test("a load immediate clears a register; a move carries its taint", arguments: [true, false])
    mutating func immediateAndMove(clear: Bool) {
        setUp()
        feed(access(.read, 0x5000, reg: 1, cbit: true))
        if clear {
            feed(.registerOp(RegisterOp(vm: 0, vcpu: 0, op: .loadImmediate, dst: 1, src: MemoryAccess.noRegister, result: 0)))
        }
        feed(.registerOp(RegisterOp(vm: 0, vcpu: 0, op: .move, dst: 2, src: 1, result: 0)))
        feed(access(.write, 0x9000, reg: 2, cbit: false))
        #expect(analyzer.findings.count == (clear ? 0 : 1))
    }

    @Test("arithmetic merges taint; xor of a register with itself clears it", arguments: [RegisterOpKind.add, .xor])
    mutating func arithmetic(op: RegisterOpKind) {
        setUp()
        feed(access(.read, 0x5000, reg: 1, cbit: true))
        feed(.registerOp(RegisterOp(vm: 0, vcpu: 0, op: op, dst: op == .xor ? 1 : 2, src: 1, result: 0)))
        feed(access(.write, 0x9000, reg: op == .xor ? 1 : 2, cbit: false))
        #expect(analyzer.findings.count == (op == .xor ? 0 : 1))
    }

    @Test("registers are per vCPU")
    mutating func perVCPU() {
        setUp()
        feed(access(.read, 0x5000, reg: 1, cbit: true))
        feed(access(.write, 0x9000, reg: 1, cbit: false, actor: .vcpu(vm: 0, index: 1)))
        #expect(analyzer.findings.isEmpty)
    }

    @Test("ciphertext is not plaintext: a device reading a private block observes ciphertext only")
    mutating func ciphertextVersusPlaintext() {
        setUp()
        feed(access(.dmaRead, 0x5000, cbit: false, actor: .device(0)))
        #expect(analyzer.findings.map(\.detector) == ["CIPHERTEXT_OBSERVATION"])
        #expect(analyzer.findings[0].preview.isEmpty)
    }

    @Test("taint follows data through memory: private to private, then private to shared")
    mutating func throughMemory() {
        setUp()
        feed(access(.read, 0x5000, reg: 3, cbit: true))
        feed(access(.write, 0x6000, reg: 3, cbit: true))
        feed(access(.read, 0x6000, reg: 4, cbit: true))
        feed(access(.write, 0x9000, reg: 4, cbit: false))
        #expect(analyzer.findings.first?.labels.contains("secret:k") == true)
        #expect(analyzer.findings.first?.sourceSeq == 2, "the source is the secret's declaration")
    }

    /// Whether register r2 carries the secret after `op` with r2 as destination and r1 (tainted) as source,
    /// r2 holding untainted or tainted data before.
    @Test("every register operation propagates as its data dependence says", arguments: RegisterOpKind.allCases)
    mutating func everyRegisterOp(op: RegisterOpKind) {
        setUp()
        feed(access(.read, 0x5000, reg: 1, cbit: true))  // r1 tainted
        feed(.registerOp(RegisterOp(vm: 0, vcpu: 0, op: .loadImmediate, dst: 2, src: MemoryAccess.noRegister, result: 0)))
        let src: UInt8 = op == .loadImmediate || op == .addImmediate ? MemoryAccess.noRegister : 1
        feed(.registerOp(RegisterOp(vm: 0, vcpu: 0, op: op, dst: 2, src: src, result: 0)))
        feed(access(.write, 0x9000, reg: 2, cbit: false))
        let expectTaint: Bool = switch op {
        case .loadImmediate, .addImmediate: false  // the result depends on nothing tainted
        case .move, .add, .sub, .xor, .and, .or: true
        }
        #expect(!analyzer.findings.isEmpty == expectTaint, "\(op)")
    }

    @Test("the firmware's data path carries labels: a DBG_DECRYPT of a secret puts it in host memory in plaintext")
    mutating func pspDebugPath() {
        setUp()
        feed(.memoryAccess(MemoryAccess(actor: .psp, vm: MemoryAccess.noVM, asid: 1, kind: .read, gva: 0, gpa: 0, spa: 0x5000,
                                        size: 8, cbit: true, reason: .firmware, register: 17)))
        feed(.memoryAccess(MemoryAccess(actor: .psp, vm: MemoryAccess.noVM, asid: 0, kind: .write, gva: 0, gpa: 0, spa: 0x80000,
                                        size: 8, cbit: false, reason: .firmware, register: 17)))
        feed(access(.read, 0x80000, cbit: false, actor: .hypervisor))
        #expect(analyzer.findings.map(\.detector) == ["HV_PLAINTEXT"])
        #expect(analyzer.findings.first?.labels.contains("secret:k") == true)
    }

    @Test("the firmware's keyed writes (LAUNCH_UPDATE_DATA, COPY, LAUNCH_SECRET) make data private and keep its labels",
          arguments: [(false, "LAUNCH_UPDATE_DATA"), (true, "COPY"), (false, "LAUNCH_SECRET")])
    mutating func pspKeyedPaths(keyedSource: Bool, command: String) {
        setUp()
        // The secret's bytes are read on the firmware's path (keyless image or transport data, or keyed for COPY)...
        let reg: UInt8 = command == "LAUNCH_SECRET" ? 18 : 17
        feed(.memoryAccess(MemoryAccess(actor: .psp, vm: MemoryAccess.noVM, asid: keyedSource ? 1 : 0, kind: .read, gva: 0,
                                        gpa: 0, spa: 0x5000, size: 8, cbit: keyedSource, reason: .firmware, register: reg)))
        // ...and written under the guest's key elsewhere.
        feed(.memoryAccess(MemoryAccess(actor: .psp, vm: MemoryAccess.noVM, asid: 1, kind: .write, gva: 0, gpa: 0,
                                        spa: 0x7000, size: 8, cbit: true, reason: .firmware, register: 17)))
        feed(access(.dmaRead, 0x7000, cbit: false, actor: .device(0)))
        #expect(analyzer.findings.map(\.detector) == ["CIPHERTEXT_OBSERVATION"], "\(command): stored encrypted")
        feed(access(.read, 0x7000, reg: 5, cbit: true))
        feed(access(.write, 0x9000, reg: 5, cbit: false))
        #expect(analyzer.findings.last?.labels == "private:g,secret:k", "\(command): the labels came along")
    }

    @Test("the transport path: data sent under the TEK is not a leak on the wire, and keeps its labels on arrival")
    mutating func pspTransportPath() {
        setUp()
        func psp(_ kind: AccessKind, _ spa: UInt64, cbit: Bool, reg: UInt8) -> EventBody {
            .memoryAccess(MemoryAccess(actor: .psp, vm: MemoryAccess.noVM, asid: cbit ? 1 : 0, kind: kind, gva: 0, gpa: 0,
                                       spa: spa, size: 8, cbit: cbit, reason: .firmware, register: reg))
        }
        feed(psp(.read, 0x5000, cbit: true, reg: 17))      // SEND_UPDATE_DATA reads the guest page
        feed(psp(.write, 0x80000, cbit: false, reg: 18))   // ...and writes the packet
        feed(.pspCommand(PSPCommand(command: 0x41, handle: 1, asid: 1, status: 0, platformBefore: 2, platformAfter: 2,
                                    guestBefore: 4, guestAfter: 4, buffer: [])))
        feed(access(.read, 0x80000, cbit: false, actor: .hypervisor))
        #expect(analyzer.findings.isEmpty, "transport ciphertext is what migration is made of")
        feed(psp(.read, 0x80000, cbit: false, reg: 18))    // RECEIVE_UPDATE_DATA reads the packet
        feed(psp(.write, 0x6000, cbit: true, reg: 17))     // ...and writes the guest page
        feed(access(.read, 0x6000, reg: 3, cbit: true))
        feed(access(.write, 0x9000, reg: 3, cbit: false))
        #expect(analyzer.findings.first?.labels.contains("secret:k") == true, "the secret survived the trip")
    }

    /// A host memcpy of 8 bytes from `source` to `destination` on the host-copy path.
    mutating func hostCopy(from source: UInt64, to destination: UInt64) {
        feed(.memoryAccess(MemoryAccess(actor: .hypervisor, vm: MemoryAccess.noVM, asid: 0, kind: .read, gva: 0, gpa: 0,
                                        spa: source, size: 8, cbit: false, reason: .host, register: MemoryAccess.hostCopyRegister)))
        feed(.memoryAccess(MemoryAccess(actor: .hypervisor, vm: MemoryAccess.noVM, asid: 0, kind: .write, gva: source, gpa: 0,
                                        spa: destination, size: 8, cbit: false, reason: .host, register: MemoryAccess.hostCopyRegister)))
    }

    @Test("the host's copies carry plaintext labels; reading its own copy back is no second leak; a device reading it is")
    mutating func hostCopyOfPlaintext() {
        setUp()
        feed(access(.read, 0x5000, reg: 3, cbit: true))
        feed(access(.write, 0x7000, reg: 3, cbit: false))   // the guest leaks the secret into a shared page
        let leaked = analyzer.findings.count
        hostCopy(from: 0x7000, to: 0x90000)                 // e.g. the VMM migrating that shared page
        #expect(analyzer.findings.count == leaked + 1 && analyzer.findings.last?.detector == Detector.hvPlaintext.rawValue,
                "the copy reads the plaintext: the host has it")
        feed(access(.read, 0x90000, cbit: false, actor: .hypervisor))
        #expect(analyzer.findings.count == leaked + 1, "the host reading back its own copy saw nothing new")
        feed(access(.read, 0x90000, cbit: false, actor: .device(0)))
        #expect(analyzer.findings.last?.detector == Detector.privateToDMA.rawValue)
        #expect(analyzer.findings.last?.labels.contains("secret:k") == true, "the labels crossed the copy")
        let copyWrite = seq - 3  // the host's write, before its read-back and the device's read
        #expect(analyzer.findings.last?.flow.map(\.seq).contains(copyWrite) == true, "the flow names the copy as the last write")
    }

    @Test("a host copy of ciphertext under a guest key carries nothing: at another address it does not decrypt")
    mutating func hostCopyOfCiphertext() {
        setUp()
        hostCopy(from: 0x5000, to: 0x90000)
        feed(access(.read, 0x90000, reg: 4, cbit: true))   // the guest reads the moved page through its key
        feed(access(.write, 0x7000, reg: 4, cbit: false))
        #expect(analyzer.findings.map(\.detector).contains(Detector.encryptionMismatch.rawValue))
        #expect(!analyzer.findings.map(\.detector).contains(Detector.privateToShared.rawValue), "garbage, not the secret")
    }

    @Test("register taint is per byte: a 4-byte secret loaded and stored as 8 bytes taints only the low 4 in memory")
    mutating func registerBytes() {
        feed(.vmCreated(VMCreated(vm: 0, name: "g", asid: 1, policy: 1, memoryBytes: 1 << 22, vcpus: 1, sev: true)))
        feed(.taintSource(TaintSource(vm: 0, name: "k", gpa: 0x5000, spa: 0x5000, length: 4)))
        feed(.memoryAccess(MemoryAccess(actor: .vcpu(vm: 0, index: 0), vm: 0, asid: 1, kind: .read, gva: 0x5000, gpa: 0x5000,
                                        spa: 0x5000, size: 4, cbit: false, reason: .guestPTE, register: 1, value: 0)))
        feed(access(.write, 0x9000, reg: 1, cbit: false))   // 8 bytes: the high 4 carry nothing
        let before = analyzer.findings.count
        feed(.memoryAccess(MemoryAccess(actor: .device(0), vm: 0, asid: 0, kind: .dmaRead, gva: 0, gpa: 0x9004, spa: 0x9004,
                                        size: 4, cbit: false, reason: .device)))
        #expect(analyzer.findings.count == before, "bytes 4-7 are clean")
        feed(.memoryAccess(MemoryAccess(actor: .device(0), vm: 0, asid: 0, kind: .dmaRead, gva: 0, gpa: 0x9000, spa: 0x9000,
                                        size: 4, cbit: false, reason: .device)))
        #expect(analyzer.findings.last?.detector == "PRIVATE_TO_DMA")
    }

    @Test("KEY_SHARING: a second handle activated on an ASID already in use shares the key")
    mutating func keySharing() {
        setUp()
        func activate(_ handle: UInt32, asid: UInt16) -> EventBody {
            .pspCommand(PSPCommand(command: 0x21, handle: handle, asid: asid, status: 0, platformBefore: 2, platformAfter: 2,
                                   guestBefore: 1, guestAfter: 1, buffer: []))
        }
        feed(activate(1, asid: 1))
        #expect(analyzer.findings.isEmpty)
        feed(activate(2, asid: 2))
        #expect(analyzer.findings.isEmpty, "another ASID: another key")
        feed(activate(3, asid: 1))
        #expect(analyzer.findings.map(\.detector) == ["KEY_SHARING"])
    }

    @Test("label sets are interned: repeating a union adds no set")
    func interning() {
        var t = LabelTable()
        let a = t.secret(name: "a", seq: 0, spa: 0), b = t.privateData(vm: 0, seq: 1)
        let ab = t.union(a, b)
        let count = t.setCount
        #expect(t.union(b, a) == ab)
        #expect(t.union(ab, a) == ab)
        #expect(t.union(ab, 0) == ab)
        #expect(t.privateData(vm: 0, seq: 9) == b)
        #expect(t.setCount == count)
    }
}
