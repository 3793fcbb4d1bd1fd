import Analyzer
import Foundation
import Scenario
import TestSupport
import Testing
import TraceFormat

/// The traces committed under Traces/ replay identically and keep their findings.
struct GoldenTraceTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static let expected: [String: [String]] = [
        "default": ["PRIVATE_TO_SHARED:high", "PRIVATE_TO_DMA:high", "CIPHERTEXT_OBSERVATION:low"],
        "hv-peeks": ["PRIVATE_TO_SHARED:high", "REGISTER_EXPOSURE:high", "REGISTER_EXPOSURE:high", "HV_PLAINTEXT:high",
                     "CIPHERTEXT_OBSERVATION:low", "HV_WRITE_PRIVATE:medium", "DMA_INTO_PRIVATE:medium"],
        "clean-io": [],
        "firmware-tour": ["REGISTER_EXPOSURE:high", "HV_PLAINTEXT:medium", "POLICY_VIOLATION_ATTEMPT:medium",
                          "POLICY_VIOLATION_ATTEMPT:medium", "MIGRATION_TO_UNTRUSTED:medium", "REGISTER_EXPOSURE:high"],
        "severed": ["PRIVATE_TO_SHARED:medium", "PRIVATE_TO_DMA:medium", "NPT_REMAP:high", "PRIVATE_TO_SHARED:high",
                    "PRIVATE_TO_DMA:high"],
        "crossline": ["ASID_MISUSE:critical"],
        "npf-tracking": ["PAGE_FAULT_TRACKING:medium", "PAGE_FAULT_TRACKING:medium", "REGISTER_EXPOSURE:high"],
        "mmio": ["REGISTER_EXPOSURE:high"],
        "race": ["PRIVATE_TO_SHARED:high", "PRIVATE_TO_DMA:high"],
        "page-migration": ["CIPHERTEXT_OBSERVATION:low", "ENCRYPTION_MISMATCH:medium"],
        "steal-time": ["ENCRYPTION_MISMATCH:medium"],
        "sme": ["CIPHERTEXT_OBSERVATION:low"],
        "cbit-lie": ["CBIT_POSITION_LIE:high", "CBIT_POSITION_LIE:high", "ENCRYPTION_MISMATCH:medium", "HV_PLAINTEXT:high"],
        "core-caches": ["REGISTER_EXPOSURE:medium", "ASID_REUSE_WITHOUT_FLUSH:medium"],
        "memslot-hole": ["REGISTER_EXPOSURE:high", "RAM_AS_MMIO:medium"],
        "async-pf": ["PAGE_FAULT_TRACKING:medium", "CIPHERTEXT_OBSERVATION:low", "ENCRYPTION_MISMATCH:medium",
                     "PAGE_FAULT_TRACKING:medium", "ENCRYPTION_MISMATCH:medium"],
        "legacy-paging": ["CIPHERTEXT_OBSERVATION:low", "DMA_INTO_PRIVATE:medium", "ENCRYPTION_MISMATCH:medium"],
        "sev-series": ["PRIVATE_TO_SHARED:low", "PRIVATE_TO_DMA:low"],
        "cbit-alias": ["CBIT_ALIAS:medium", "CIPHERTEXT_OBSERVATION:low"],
        "smp": ["REGISTER_EXPOSURE:medium", "REGISTER_EXPOSURE:medium", "REGISTER_EXPOSURE:medium",
                "REGISTER_EXPOSURE:medium", "PRIVATE_TO_SHARED:medium", "PRIVATE_TO_SHARED:medium"],
        "kvmclock": ["ENCRYPTION_MISMATCH:medium", "ENCRYPTION_MISMATCH:medium"],
        "swiotlb": ["PRIVATE_TO_SHARED:low", "PRIVATE_TO_DMA:low", "CIPHERTEXT_OBSERVATION:low", "PRIVATE_TO_SHARED:high",
                    "PRIVATE_TO_DMA:high"],
        "string-io": ["REGISTER_EXPOSURE:high", "REGISTER_EXPOSURE:medium",
                      "CIPHERTEXT_OBSERVATION:low"],
        // The VMM reading what its DBG_DECRYPTs returned: the debugging the policy allows.
        "conformance/guest-states": ["HV_PLAINTEXT:medium", "HV_PLAINTEXT:medium", "HV_PLAINTEXT:medium"],
        "conformance/platform-states": [],
        // Policy 0 lets the firmware send the guest anywhere; it is sent twice.
        "conformance/migration-states": ["MIGRATION_TO_UNTRUSTED:medium", "MIGRATION_TO_UNTRUSTED:medium"],
    ]

    /// Bundles under Traces/, Traces/detectors/ and Traces/conformance/, as paths relative to Traces/.
    static var bundles: [String] {
        ["", "detectors/", "conformance/"].flatMap { sub in
            ((try? FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("Traces/" + sub).path)) ?? [])
                .filter { $0.hasSuffix(".sevtrace") }.map { sub + $0 }
        }.sorted()
    }

    /// The findings a bundle must have, as `DETECTOR:severity`. A detector trace (detectors/NAME) must
    /// report its detector; its negative twin (NAME-ok) must not.
    static func check(_ name: String, _ findings: [Finding]) {
        let base = String(name.dropLast(".sevtrace".count))
        guard base.hasPrefix("detectors/") else {
            #expect(findings.map { "\($0.detector):\($0.severity)" } == expected[base] ?? ["(not listed)"], "\(name)")
            return
        }
        let file = base.dropFirst("detectors/".count)
        let negative = file.hasSuffix("-ok")
        let detector = (negative ? file.dropLast(3) : file).uppercased().replacingOccurrences(of: "-", with: "_")
        #expect(findings.contains { $0.detector == detector } == !negative, "\(name)")
    }

    @Test("every committed top-level and conformance trace has its expected findings listed here")
    func allListed() {
        #expect(Set(Self.bundles.filter { !$0.hasPrefix("detectors/") }.map { String($0.dropLast(".sevtrace".count)) })
                == Set(Self.expected.keys))
    }

    @Test("the SEV series' guest features done right raise nothing high: SWIOTLB, kvmclock, unrolled I/O, ASID reuse after flushes")
    func correctBehaviour() throws {
        let bundle = try TraceBundle(existing: Self.root.appendingPathComponent("Traces/sev-series.sevtrace").path)
        let findings = try Analyzer().analyze(try bundle.reader())
        #expect(!findings.isEmpty)
        #expect(findings.allSatisfy { $0.severity < .medium }, "\(findings.map(\.summary))")
        let commands = try bundle.index().database.prepare(
            "SELECT group_concat(command_name, ' ') FROM (SELECT command_name FROM psp_commands WHERE command_name IN ('DEACTIVATE', 'DF_FLUSH', 'ACTIVATE') ORDER BY seq)").rows()
        #expect(commands.first?.first == .text("DF_FLUSH ACTIVATE DEACTIVATE ACTIVATE DF_FLUSH ACTIVATE"),
                "the retired guest's ASID is reused only after DF_FLUSH")
    }

    @Test("replays identically", arguments: bundles)
    func replays(_ name: String) throws {
        let bundle = try TraceBundle(existing: Self.root.appendingPathComponent("Traces/\(name)").path)
        let outcome = try Replayer.replay(bundle)
        guard case .identical = outcome else {
            Issue.record("\(name) diverged: \(outcome)")
            return
        }
    }

    @Test("verifies, and its stored and re-analyzed findings are the expected ones", arguments: bundles)
    func findings(_ name: String) throws {
        let bundle = try TraceBundle(existing: Self.root.appendingPathComponent("Traces/\(name)").path)
        _ = try TraceVerifier.verify(bundle)
        let stored = try bundle.index().findings()
        Self.check(name, stored)
        let fresh = try Analyzer().analyze(try bundle.reader())
        #expect(fresh == stored)
    }

    @Test("each golden trace is what its scenario records today, byte for byte", arguments: bundles)
    func rerecord(_ name: String) throws {
        let bundle = try TraceBundle(existing: Self.root.appendingPathComponent("Traces/\(name)").path)
        let header = try bundle.reader().header
        let script = try ScenarioParser(file: header.scenarioName).parse(header.scenarioText)
        let dir = TemporaryDirectory()
        let fresh = try ScenarioRecorder.record(script, seed: header.seed, to: dir.path + "/x.sevtrace",
                                                chunkBytes: header.chunkBytes, compressionLevel: header.compressionLevel)
        let same = try Data(contentsOf: URL(fileURLWithPath: fresh.bundle.eventsPath))
            == Data(contentsOf: URL(fileURLWithPath: bundle.eventsPath))
        // When it is not, say where: the first event that differs (or that the header changed).
        var difference = ""
        if !same {
            switch try TraceDiff.compare(bundle.reader(), fresh.bundle.reader()) {
            case .identical: difference = "the events are the same, the header (scenario text or tool version) is not"
            case .differ(let seq, let old, let new):
                difference = "event #\(seq) was \(old.map(EventFormatter.line) ?? "(the end)"), is \(new.map(EventFormatter.line) ?? "(the end)")"
            }
        }
        #expect(same, "\(name) no longer records the same: \(difference); re-record it with sev-trace record if that is meant")
    }
}
