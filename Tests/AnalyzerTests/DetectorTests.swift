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
        var positive: String
        var negative: String
        var severity: Severity
        var policy = "0x1"
        var platform = ""
        var testDescription: String { detector.rawValue }
    }

    static let cases: [Case] = [
        Case(detector: .privateToShared,
             positive: copy(from: 0x300000, to: 0x200000) + "\n" + secret + "\nrun guest",
             negative: copy(from: 0x200800, to: 0x200000) + "\n" + secret + "\nrun guest",
             severity: .high),
        Case(detector: .privateToDMA,
             positive: copy(from: 0x300000, to: 0x200000) + "\n" + secret + "\nrun guest\ndma nic0 read guest 0x200000 16",
             negative: copy(from: 0x300000, to: 0x301000) + "\n" + secret + "\nrun guest\ndma nic0 read guest 0x200000 16",
             severity: .high),
        Case(detector: .hvPlaintext,
             positive: copy(from: 0x300000, to: 0x200000) + "\n" + secret + "\nrun guest\nhv read guest 0x200000 16",
             negative: copy(from: 0x300000, to: 0x301000) + "\n" + secret + "\nrun guest\nhv read guest 0x200000 16",
             severity: .high),
        Case(detector: .ciphertextObservation,
             positive: copy(from: 0x300000, to: 0x301000) + "\n" + secret + "\nrun guest\nhv read guest 0x301000 16",
             negative: copy(from: 0x300000, to: 0x301000) + "\n" + secret + "\nrun guest\nhv read guest 0x200000 16",
             severity: .low),
        Case(detector: .dmaIntoPrivate,
             positive: copy(from: 0x200800, to: 0x200000) + "\nrun guest\ndma nic0 write guest 0x100000 hex=\"ff\"",
             negative: copy(from: 0x200800, to: 0x200000) + "\nrun guest\ndma nic0 write guest 0x200000 hex=\"ff\"",
             severity: .medium),
        Case(detector: .nptRemap,
             positive: copy(from: 0x200800, to: 0x200000) + "\nrun guest\nhv remap guest 0x180000 to=0x300000",
             negative: copy(from: 0x200800, to: 0x200000) + "\nrun guest\nhv remap guest 0x180000 to=0x180000",
             severity: .high),
        Case(detector: .registerExposure,
             positive: "program guest at=0x100000\n    mov r1, 0x300000\n    load r9, [r1]\n    hlt\nend\nlaunch guest\n" + secret + "\nrun guest",
             negative: "program guest at=0x100000\n    mov r1, 0x300000\n    load r9, [r1]\n    xor r9, r9\n    hlt\nend\nlaunch guest\n" + secret + "\nrun guest",
             severity: .high),
        Case(detector: .unmeasuredExecution,
             positive: "program guest at=0x100000\n    hlt\n    jmp 0x102000\nend\nlaunch guest\nrun guest\n"
                + "debug encrypt guest 0x102000 hex=\"f0000000000000000000000000000000\"\nrun guest",
             negative: "program guest at=0x100000\n    hlt\n    jmp 0x100000\nend\nlaunch guest\nrun guest\n"
                + "debug decrypt guest 0x100000 16\nrun guest",
             severity: .high, policy: "0x0"),
        Case(detector: .policyViolationAttempt,
             positive: "program guest at=0x100000\n    hlt\nend\nlaunch guest\ndebug decrypt guest 0x100000 16 expect=POLICY_FAILURE",
             negative: "program guest at=0x100000\n    hlt\nend\nlaunch guest\nrun guest",
             severity: .medium),
        Case(detector: .asidMisuse,
             positive: "vm victim memory=2M\nprogram victim at=0x100000\n    hlt\nend\nprogram guest at=0x100000\n    hlt\nend\n"
                + "launch victim\nlaunch guest\nrun guest asid=2 expect=shutdown",
             negative: "vm victim memory=2M\nprogram victim at=0x100000\n    hlt\nend\nprogram guest at=0x100000\n    hlt\nend\n"
                + "launch victim\nlaunch guest\nrun guest asid=1",
             severity: .critical),
        Case(detector: .encryptionMismatch,
             positive: "program guest at=0x100000\n    mov r1, 0x300000\n    mov r2, 7\n    store [r1], r2\n"
                + "    set_memory_decrypted r1, 1\n    load r3, [r1]\n    hlt\nend\nlaunch guest\nrun guest",
             negative: "program guest at=0x100000\n    mov r1, 0x300000\n    mov r2, 7\n    store [r1], r2\n"
                + "    set_memory_decrypted r1, 1\n    store [r1], r2\n    load r3, [r1]\n    hlt\nend\nlaunch guest\nrun guest",
             severity: .medium),
        Case(detector: .cbitAlias,
             positive: "program guest at=0x100000\n    mov r1, 0x300000\n    mov r2, 7\n    store [r1], r2\n"
                + "    set_memory_decrypted_noflush r1, 1\n    hlt\nend\nlaunch guest\nrun guest",
             negative: "program guest at=0x100000\n    mov r1, 0x300000\n    mov r2, 7\n    store [r1], r2\n"
                + "    set_memory_decrypted r1, 1\n    hlt\nend\nlaunch guest\nrun guest",
             severity: .medium, platform: "cache=64K"),
        Case(detector: .asidReuseWithoutFlush,
             positive: "vm other memory=2M\nprogram guest at=0x100000\n    hlt\nend\nprogram other at=0x100000\n    hlt\nend\n"
                + "launch guest\nlaunch other\npsp deactivate guest\npsp deactivate other\npsp activate other asid=1\npsp df_flush",
             negative: "vm other memory=2M\nprogram guest at=0x100000\n    hlt\nend\nprogram other at=0x100000\n    hlt\nend\n"
                + "launch guest\nlaunch other\npsp deactivate guest\npsp deactivate other\nhv wbinvd\npsp df_flush\npsp activate other asid=1",
             severity: .medium),
        Case(detector: .migrationToUntrusted,
             positive: "program guest at=0x100000\n    hlt\nend\nlaunch guest\nmigrate guest to=dst as=g2",
             negative: "program guest at=0x100000\n    hlt\nend\nlaunch guest\nmigrate guest to=dst as=g2",
             severity: .medium, policy: "0x0", platform: "\nplatform dst memory=64M"),
        Case(detector: .hvWritePrivate,
             positive: copy(from: 0x200800, to: 0x200000) + "\nrun guest\nhv write guest 0x100000 hex=\"ff\"",
             negative: copy(from: 0x200800, to: 0x200000) + "\nrun guest\nhv write guest 0x200000 hex=\"ff\"",
             severity: .medium),
    ]

    @Test("positive scenario: the detector reports", arguments: cases)
    func positive(_ c: Case) throws {
        let found = try Self.findings(c.positive, policy: c.policy, platform: c.platform).filter { $0.detector == c.detector.rawValue }
        #expect(found.count == (c.detector == .asidReuseWithoutFlush ? 2 : 1))
        #expect(found.first?.severity == c.severity)
    }

    @Test("negative scenario: the detector stays silent", arguments: cases)
    func negative(_ c: Case) throws {
        if c.detector == .migrationToUntrusted {
            // DOMAIN: the firmware checked the target belongs to the same owner (the same OCA), so the
            // same migration is refused and nothing is sent.
            let f = try Self.findings(c.negative.replacingOccurrences(of: "as=g2", with: "as=g2 expect=POLICY_FAILURE"),
                                      policy: "0x10", platform: c.platform)
            #expect(f.filter { $0.detector == c.detector.rawValue }.isEmpty)
            return
        }
        #expect(try Self.findings(c.negative, policy: c.policy, platform: c.platform).filter { $0.detector == c.detector.rawValue }.isEmpty)
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
        #expect(f.flow.map(\.role) == ["source", "load", "sink"])
        #expect(f.flow.first?.seq == f.sourceSeq && f.flow.last?.seq == f.sinkSeq)
        let dma = try #require(try Self.findings(text + "\ndma nic0 read guest 0x200000 16").first { $0.detector == "PRIVATE_TO_DMA" })
        #expect(dma.flow.map(\.role) == ["source", "write", "sink"], "the DMA read took what the guest's store wrote")
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

    @Test("only the selected detectors run")
    func selection() throws {
        let text = Self.copy(from: 0x300000, to: 0x200000) + "\n" + Self.secret + "\nrun guest\ndma nic0 read guest 0x200000 16"
        let f = try Self.findings(text, detectors: [.privateToDMA])
        #expect(f.map(\.detector) == ["PRIVATE_TO_DMA"])
    }
}
