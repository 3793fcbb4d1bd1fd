import Foundation
import Scenario
import Testing
import TraceFormat
@testable import Analyzer

/// Every detector fires on its positive scenario and stays silent on its negative one.
struct DetectorTests {
    static func findings(_ body: String, detectors: Set<Detector> = Set(Detector.allCases), policy: String = "0x1",
                         platform: String = "") throws -> [Finding] {
        let text = """
            platform memory=64M \(platform)
            vm guest memory=4M policy=\(policy)
            device nic0
            shared guest 0x200000 pages=1
            \(body)
            """
        let sink = CollectingSink()
        try ScenarioRunner(script: try ScenarioParser(file: "t").parse(text), seed: 1).run(into: sink)
        let analyzer = Analyzer(detectors: detectors)
        for e in sink.events { analyzer.process(e) }
        return analyzer.findings
    }

    /// A guest that copies 16 bytes from `source` to `destination`.
    static func copy(from source: UInt64, to destination: UInt64) -> String {
        """
        program guest at=0x100000
            mov r1, \(destination)
            mov r2, \(source)
            mov r3, 2
            copy r1, r2, r3
            hlt
        end
        launch guest
        """
    }

    static let secret = "secret guest 0x300000 key hex=\"000102030405060708090a0b0c0d0e0f\""

    struct Case: Sendable, CustomTestStringConvertible {
        var detector: Detector
        var severity: Severity
        var testDescription: String { detector.rawValue }
        /// Traces/detectors/NAME.sev (positive) and NAME-ok.sev (negative).
        var name: String { detector.rawValue.lowercased().replacingOccurrences(of: "_", with: "-") }
    }

    /// Every detector.
    static let cases: [Case] = [
        Case(detector: .keySharing, severity: .low),
        Case(detector: .privateToShared, severity: .high), Case(detector: .privateToDMA, severity: .high),
        Case(detector: .hvPlaintext, severity: .high), Case(detector: .ciphertextObservation, severity: .low),
        Case(detector: .dmaIntoPrivate, severity: .medium), Case(detector: .nptRemap, severity: .high),
        Case(detector: .registerExposure, severity: .high), Case(detector: .unmeasuredExecution, severity: .high),
        Case(detector: .policyViolationAttempt, severity: .medium), Case(detector: .asidMisuse, severity: .critical),
        Case(detector: .encryptionMismatch, severity: .medium), Case(detector: .cbitAlias, severity: .medium),
        Case(detector: .asidReuseWithoutFlush, severity: .medium), Case(detector: .migrationToUntrusted, severity: .medium),
        Case(detector: .hvWritePrivate, severity: .medium), Case(detector: .ramAsMMIO, severity: .medium),
        Case(detector: .pageFaultTracking, severity: .medium), Case(detector: .cbitPositionLie, severity: .high),
        Case(detector: .ciphertextReplay, severity: .high), Case(detector: .placementMismatch, severity: .high),
    ]

    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Traces/detectors")

    /// Runs a scenario file of Traces/detectors through the analyzer.
    static func findings(file name: String) throws -> [Finding] {
        let text = try String(contentsOf: folder.appendingPathComponent(name + ".sev"), encoding: .utf8)
        let sink = CollectingSink()
        try ScenarioRunner(script: try ScenarioParser(file: name).parse(text), seed: 1).run(into: sink)
        let analyzer = Analyzer()
        for e in sink.events { analyzer.process(e) }
        return analyzer.findings
    }

    @Test("positive scenario: the detector reports", arguments: cases)
    func positive(_ c: Case) throws {
        let found = try Self.findings(file: c.name).filter { $0.detector == c.detector.rawValue }
        #expect(found.count == (c.detector == .asidReuseWithoutFlush ? 2 : 1))
        #expect(found.first?.severity == c.severity)
    }

    @Test("negative scenario: the detector stays silent", arguments: cases)
    func negative(_ c: Case) throws {
        #expect(try Self.findings(file: c.name + "-ok").filter { $0.detector == c.detector.rawValue }.isEmpty)
    }

    @Test("detectors are equal exactly when their names are, and hash apart (compared by case, not by name)")
    func detectorIdentity() {
        #expect(MemoryLayout<Detector>.size == 1)
        for a in Detector.allCases {
            for b in Detector.allCases { #expect((a == b) == (a.rawValue == b.rawValue), "\(a) \(b)") }
        }
        #expect(Set(Detector.allCases).count == Detector.allCases.count)
        #expect(Set(Detector.allCases.map(\.hashValue)).count == Detector.allCases.count)
        // The finding collector indexes its open findings by it.
        #expect(Detector.allCases.map(\.ordinal) == Array(Detector.allCases.indices))
    }

    @Test("every detector with a scenario has its two files, and every file a detector")
    func files() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.folder.path).filter { $0.hasSuffix(".sev") }
        #expect(Set(names) == Set(Self.cases.flatMap { [$0.name + ".sev", $0.name + "-ok.sev"] }))
        #expect(Set(Self.cases.map(\.detector)) == Set(Detector.allCases), "every detector has its pair")
    }

    @Test("every detector is one class under Detectors/, named after it, and only one")
    func oneClassPerDetector() throws {
        let types = eventDetectorTypes + FlowDetectors.types
        #expect(types.map { $0.detector }.sorted { $0.rawValue < $1.rawValue } == Detector.allCases.sorted { $0.rawValue < $1.rawValue })
        let files = try FileManager.default.contentsOfDirectory(
            atPath: Self.folder.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Sources/Analyzer/Detectors").path)
        #expect(Set(files) == Set(types.map { "\($0).swift" }))
    }

    @Test("every detector declares exactly the hooks it implements, so the analyzer calls each of them")
    func hooksMatchImplementations() throws {
        let folder = Self.folder.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Sources/Analyzer/Detectors")
        for type in eventDetectorTypes + FlowDetectors.types {
            let source = try String(contentsOf: folder.appendingPathComponent("\(type).swift"), encoding: .utf8)
            var implemented: EventHooks = []
            for (name, hook) in EventHooks.byName where source.contains("func \(name)(") { implemented.insert(hook) }
            #expect(type.hooks == implemented, "\(type) declares \(type.hooks.rawValue), implements \(implemented.rawValue)")
        }
    }

    @Test("a leak of private data that is not a declared secret is medium, and names the VM")
    func privateOriginIsMedium() throws {
        let f = try Self.findings(Self.copy(from: 0x100000, to: 0x200000) + "\nrun guest")
        #expect(f.count == 1)
        #expect(f[0].detector == "PRIVATE_TO_SHARED" && f[0].severity == .medium && f[0].labels == "private:guest")
    }

    @Test("the finding carries source and sink events, addresses and a plaintext preview")
    func provenance() throws {
        let text = Self.copy(from: 0x300000, to: 0x200000) + "\n" + Self.secret + "\nrun guest"
        let f = try #require(try Self.findings(text).first)
        #expect(f.length == 16)
        #expect(f.sinkGPA == 0x200000)
        #expect(f.preview == "000102030405060708090a0b0c0d0e0f")
        #expect(f.labels.contains("secret:key"))
        #expect(f.sourceSeq < f.sinkSeq && f.sinkSeq < f.sinkLastSeq)
        #expect(f.flow.map(\.role) == [FlowRole.source, .load, .sink])
        #expect(f.flow.first?.seq == f.sourceSeq && f.flow.last?.seq == f.sinkSeq)
        let dma = try #require(try Self.findings(text + "\ndma nic0 read guest 0x200000 16").first { $0.detector == "PRIVATE_TO_DMA" })
        #expect(dma.flow.map(\.role) == [FlowRole.source, .write, .sink], "the DMA read took what the guest's store wrote")
        #expect(dma.flow[1].seq == f.sinkSeq)
    }

    @Test("remapping onto another VM's frame is critical, whichever side is launched; a plain VM's own remap is no finding")
    func crossVMRemap() throws {
        let text = Self.copy(from: 0x200800, to: 0x200000) + """

            vm victim memory=4M policy=0x1
            vm plain memory=4M sev=no
            program victim at=0x100000
                hlt
            end
            launch victim
            run guest
            hv remap guest 0x180000 to=0x100000 of=victim
            hv remap plain 0x180000 to=0x100000 of=victim
            hv remap plain 0x181000 to=0x100000
            """
        let f = try Self.findings(text).filter { $0.detector == "NPT_REMAP" }
        #expect(f.count == 2)
        #expect(f.allSatisfy { $0.severity == .critical && $0.summary.contains("victim") })
    }

    @Test("a SWIOTLB bounce with a declared hand-over lowers the leak findings one step; the same copy without is not lowered")
    func handover() throws {
        func run(_ mnemonic: String) throws -> [Finding] {
            try Self.findings("""
                program guest at=0x100000
                    mov r1, 0x200000
                    mov r2, 0x300000
                    mov r3, \(mnemonic == "copy" ? 2 : 16)
                    \(mnemonic) r1, r2, r3
                    hlt
                end
                launch guest
                \(Self.secret)
                run guest
                dma nic0 read guest 0x200000 16
                """)
        }
        let bounced = try run("dma_map_single")
        #expect(bounced.map { "\($0.detector):\($0.severity)" } == ["PRIVATE_TO_SHARED:medium", "PRIVATE_TO_DMA:medium"])
        #expect(bounced.allSatisfy { $0.labels.contains("handover:guest") && $0.summary.contains("handed over on purpose") })
        let copied = try run("copy")
        #expect(copied.map { "\($0.detector):\($0.severity)" } == ["PRIVATE_TO_SHARED:high", "PRIVATE_TO_DMA:high"])
    }

    @Test("reading the same private block's ciphertext again is a dictionary risk (medium); the first read is low")
    func dictionaryRisk() throws {
        let text = Self.copy(from: 0x300000, to: 0x301000) + "\n" + Self.secret
            + "\nrun guest\nhv read guest 0x301000 16\nhv read guest 0x301000 16"
        let f = try Self.findings(text).filter { $0.detector == "CIPHERTEXT_OBSERVATION" }
        #expect(f.map(\.severity) == [.low, .medium])
        #expect(f[1].summary.contains("dictionary"))
    }

    @Test("measured code run at another guest address than it was launched at is UNMEASURED_EXECUTION (undeSErVed)")
    func measuredElsewhere() throws {
        let f = try Self.findings("""
            program guest at=0x100000
                hlt
                jmp 0x102000
            end
            launch guest
            run guest
            hv remap guest 0x102000 to=0x100000
            run guest expect=ok
            """)
        #expect(f.contains { $0.detector == "UNMEASURED_EXECUTION" && $0.sinkGPA == 0x102000 })
    }

    @Test("only the selected detectors run")
    func selection() throws {
        let text = Self.copy(from: 0x300000, to: 0x200000) + "\n" + Self.secret + "\nrun guest\ndma nic0 read guest 0x200000 16"
        let f = try Self.findings(text, detectors: [.privateToDMA])
        #expect(f.map(\.detector) == ["PRIVATE_TO_DMA"])
    }
}

/// Findings stay few on adversarial traces.
struct FindingBoundsTests {
    @Test("a hypervisor polling one private block thousands of times makes a finding per severity, with a count")
    func polling() throws {
        let findings = try DetectorTests.findings("""
            launch guest
            secret guest 0x180000 key hex="01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10"
            hv read guest 0x180000 8 times=3000
            hv read guest 0x180008 8 times=3000
            """)
        let observations = findings.filter { $0.detector == Detector.ciphertextObservation.rawValue }
        #expect(observations.count <= 4, "\(observations.map(\.summary))")
        // 6000 reads: each is an occurrence, except the second block's first reads, which extend a run.
        #expect(observations.map(\.occurrences).reduce(0, +) >= 5996)
        #expect(observations.allSatisfy { $0.sinkLastSeq >= $0.sinkSeq })
    }

    @Test("past --max-findings, further hits are counted in one finding per detector")
    func cap() throws {
        let body = """
            launch guest
            secret guest 0x180000 key fill=0x5a len=0x14000
            """ + (0..<20).map { "\nhv read guest \(0x180000 + 0x1000 * $0) 8" }.joined()
        let text = "platform memory=64M\nvm guest memory=4M\n" + body
        let sink = CollectingSink()
        try ScenarioRunner(script: try ScenarioParser(file: "t").parse(text), seed: 1).run(into: sink)
        let all = Analyzer()
        let capped = Analyzer(maxFindings: 3)
        for e in sink.events {
            all.process(e)
            capped.process(e)
        }
        #expect(all.findings.count > 4)
        #expect(capped.findings.count <= 3 + Detector.allCases.count)
        let overflow = try #require(capped.findings.last)
        #expect(overflow.summary.contains("are not listed one by one"))
        #expect(capped.findings.map(\.occurrences).reduce(0, +) == all.findings.map(\.occurrences).reduce(0, +))
    }
}

extension FindingBoundsTests {
    @Test("shadow state past its budget stops the analysis instead of growing: a trace declaring huge secrets")
    func shadowBudget() throws {
        let text = "platform memory=64M\nvm guest memory=8M\nlaunch guest\nsecret guest 0x100000 key fill=1 len=4M\n"
        let sink = CollectingSink()
        try ScenarioRunner(script: try ScenarioParser(file: "t").parse(text), seed: 1).run(into: sink)
        let small = Analyzer(maxShadowBytes: 1 << 20)
        let roomy = Analyzer()
        for e in sink.events {
            small.process(e)
            roomy.process(e)
        }
        #expect(small.exhausted)
        #expect(!roomy.exhausted)
        #expect(AnalysisLimitError(seq: 7, maxShadowBytes: 1 << 20).description.contains("--max-shadow-memory"))
    }

    @Test("register taint for every vCPU a trace names counts against the same budget: a trace naming 64K vCPUs")
    func registerBudget() {
        let small = Analyzer(maxShadowBytes: 1 << 20)
        var seq: UInt64 = 0
        for vm in 0..<UInt16(64) {
            for vcpu in 0..<UInt16(1024) {
                small.process(TraceEvent(seq: seq, cycle: seq, body: .registerOp(RegisterOp(vm: vm, vcpu: vcpu, op: .loadImmediate,
                                                                                          dst: 1, src: MemoryAccess.noRegister, result: 7))))
                seq += 1
            }
        }
        #expect(small.exhausted, "64K register files fit in 1 MiB of budget")
        let roomy = Analyzer(maxShadowBytes: 1 << 20)
        for vcpu in 0..<UInt16(64) {
            roomy.process(TraceEvent(seq: UInt64(vcpu), cycle: 0, body: .registerOp(RegisterOp(vm: 0, vcpu: vcpu, op: .move, dst: 1, src: 2,
                                                                                               result: 0))))
        }
        #expect(!roomy.exhausted)
    }
}

extension DetectorTests {
    struct PolicyCase: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var policy: String
        var body: String
        /// Whether the refusal enforces the owner's policy against the hypervisor (a finding) or only
        /// says what the platform cannot do (none).
        var attempt: Bool
        var platform = ""
    }

    static let policyCases = [
        PolicyCase(testDescription: "SEV-ES required, not enabled at INIT", policy: "0x4",
                   body: "launch guest expect=POLICY_FAILURE", attempt: false),
        PolicyCase(testDescription: "API 255.0 required", policy: "0xFF0000",
                   body: "launch guest expect=POLICY_FAILURE", attempt: false),
        PolicyCase(testDescription: "NODBG", policy: "0x1",
                   body: "launch guest\ndebug decrypt guest 0x100000 16 expect=POLICY_FAILURE", attempt: true),
        PolicyCase(testDescription: "NOKS", policy: "0x2",
                   body: "vm twin memory=2M policy=0x0\nlaunch guest\nlaunch twin share=guest expect=POLICY_FAILURE", attempt: true),
        PolicyCase(testDescription: "NOSEND", policy: "0x8",
                   body: "launch guest\nmigrate guest to=dst as=copy expect=POLICY_FAILURE", attempt: true,
                   platform: "\nplatform dst memory=64M"),
    ]

    @Test("POLICY_VIOLATION_ATTEMPT reports refusals that enforce the owner's policy, not what a platform lacks",
          arguments: policyCases)
    func policyRefusals(_ c: PolicyCase) throws {
        let program = "program guest at=0x100000\n    hlt\nend\n"
        let found = try Self.findings(program + c.body, detectors: [.policyViolationAttempt], policy: c.policy,
                                      platform: c.platform)
        #expect(found.count == (c.attempt ? 1 : 0), "\(found.map(\.summary))")
        #expect(found.allSatisfy { $0.severity == .medium })
    }
}

extension DetectorTests {
    struct ExposureCase: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var program: String
        var before = ""
        /// Whether a REGISTER_EXPOSURE is right: the register holds data the guest produced while private.
        var exposed: Bool
    }

    /// Each program ends with r4 holding the data in question at a CPUID exit.
    static let exposureCases = [
        ExposureCase(testDescription: "data a device wrote into a shared buffer, copied into private memory",
                     program: "mov r1, 0x180000\n    mov r2, 0x200000\n    mov r3, 2\n    copy r1, r2, r3\n    mov r6, 0x180000\n    load r4, [r6+8]",
                     before: "dma nic0 write guest 0x200000 hex=\"00112233445566778899aabbccddeeff\"", exposed: false),
        ExposureCase(testDescription: "what an IN returned, stored privately and loaded again",
                     program: "in.4 r0, 0x60\n    mov r1, 0x180000\n    store [r1], r0\n    load r4, [r1]", exposed: false),
        ExposureCase(testDescription: "a value the guest computed, stored privately and loaded again",
                     program: "mov r4, 0x1234\n    mov r5, 0x10\n    add r4, r5\n    mov r1, 0x180000\n    store [r1], r4\n    load r4, [r1]",
                     exposed: true),
        ExposureCase(testDescription: "device data the guest mixed with its own value",
                     program: "mov r2, 0x200000\n    load r4, [r2]\n    mov r5, 0x77\n    add r4, r5\n    mov r1, 0x180000\n    store [r1], r4\n    load r4, [r1]",
                     before: "dma nic0 write guest 0x200000 hex=\"0011223344556677\"", exposed: true),
    ]

    @Test("REGISTER_EXPOSURE: private-origin means produced by the guest while private, not passed through a private page",
          arguments: exposureCases)
    func exposureOrigin(_ c: ExposureCase) throws {
        let body = """
            program guest at=0x100000
                \(c.program)
                mov r0, 0x1
                cpuid
                hlt
            end
            launch guest
            \(c.before)
            run guest
            """
        let found = try Self.findings(body, detectors: [.registerExposure]).filter { $0.summary.hasPrefix("r4 ") }
        #expect(found.count == (c.exposed ? 1 : 0), "\(found.map(\.summary))")
    }

    @Test("REGISTER_EXPOSURE: the data an OUT sends is the point of the I/O; other registers at that exit still count")
    func portOutput() throws {
        let body = """
            program guest at=0x100000
                mov r1, 0x300000
                load r0, [r1]
                load r4, [r1+8]
                out.4 0x3f8, r0
                xor r0, r0
                hlt
            end
            launch guest
            \(Self.secret)
            run guest
            """
        let found = try Self.findings(body, detectors: [.registerExposure])
        #expect(!found.contains { $0.summary.hasPrefix("r0 ") }, "\(found.map(\.summary))")
        #expect(found.contains { $0.summary.hasPrefix("r4 held secret key at a #VMEXIT (IOIO)") }, "\(found.map(\.summary))")
    }
}

extension DetectorTests {
    struct CacheCase: Sendable, CustomTestStringConvertible {
        var testDescription: String
        /// Guest code after the page at 0x300000 holds a private value and was flipped to shared.
        var afterFlip: String
        var hostReads: String
        var expected: [String]
    }

    static let cacheCases = [
        CacheCase(testDescription: "other bytes of the line written shared: the old private block stays ciphertext",
                  afterFlip: "mov r3, 0x99\n    store [r1+16], r3", hostReads: "hv read guest 0x300000 32",
                  expected: ["CIPHERTEXT_OBSERVATION:low"]),
        CacheCase(testDescription: "the other half of the private block written shared: its first half stays ciphertext",
                  afterFlip: "mov r3, 0x99\n    store [r1+8], r3", hostReads: "hv read guest 0x300000 8\nhv read guest 0x300008 8",
                  expected: ["CIPHERTEXT_OBSERVATION:low"]),
        CacheCase(testDescription: "the secret itself written shared after the flip: a real leak either way",
                  afterFlip: "mov r4, 0x301000\n    load r3, [r4]\n    store [r1+16], r3\n    xor r3, r3", hostReads: "hv read guest 0x300010 8",
                  expected: ["PRIVATE_TO_SHARED:high", "HV_PLAINTEXT:high"]),
    ]

    @Test("a write-back puts memory back as the line was keyed: the same findings with and without a cache",
          arguments: cacheCases, ["", "cache=64K"])
    func writeBackLabels(_ c: CacheCase, _ cache: String) throws {
        let body = """
            program guest at=0x100000
                mov r1, 0x300000
                mov r2, 0x1122334455667788
                store [r1], r2
                set_memory_decrypted r1, 1
                \(c.afterFlip)
                hlt
            end
            launch guest
            secret guest 0x301000 key hex="0011223344556677"
            run guest
            hv wbinvd
            \(c.hostReads)
            """
        let found = try Self.findings(body, platform: cache)
        #expect(found.map { "\($0.detector):\($0.severity)" } == c.expected, "\(found.map(\.summary))")
    }
}

extension DetectorTests {
    @Test("PLACEMENT_MISMATCH: an accepted launch started elsewhere, or blocks moved, is reported; without an owner's check it is not",
          arguments: [("owner=alice entry=0x110000", "started at gpa 0x110000; the owner expects the entry point at 0x100000"),
                      ("owner=alice place=\"0x110000 0x100000\"", "block 1 of the measured image (16 bytes) was loaded at gpa 0x110000"),
                      ("owner=alice", nil), ("place=\"0x110000 0x100000\" entry=0x110000", nil)])
    func placement(_ launch: String, _ expected: String?) throws {
        let body = """
            owner alice policy=0x1
            program guest at=0x100000
                hlt
            end
            program guest at=0x110000
                hlt
            end
            launch guest \(launch)
            run guest
            """
        let found = try Self.findings(body, detectors: [.placementMismatch])
        #expect(found.count == (expected == nil ? 0 : 1), "\(found.map(\.summary))")
        if let expected { #expect(found.first?.summary.contains(expected) == true, "\(found.map(\.summary))") }
    }
}
