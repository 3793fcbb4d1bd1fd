import Analyzer
import Foundation
import Scenario
import TestSupport
import Testing
import TraceFormat
@testable import Query

/// The detectors written in SQL under Queries/detectors/, each on the scenarios its header names.
struct SQLRuleTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Queries/detectors").path

    static var rules: [SQLRule] { (try? SQLRule.loadDirectory(folder)) ?? [] }

    /// Records `scenario` (unanalyzed) into `dir`.
    static func record(_ scenario: String, in dir: TemporaryDirectory) throws -> TraceBundle {
        let text = try String(contentsOfFile: scenario, encoding: .utf8)
        let script = try ScenarioParser(file: scenario).parse(text)
        let name = URL(fileURLWithPath: scenario).deletingPathExtension().lastPathComponent
        return try ScenarioRecorder.record(script, seed: 1, to: dir.path + "/\(name).sevtrace").bundle
    }

    @Test("the shipped rules load, at least three, each with a positive and a negative scenario")
    func shipped() throws {
        let rules = try SQLRule.loadDirectory(Self.folder)
        #expect(rules.count >= 3)
        for rule in rules {
            #expect(rule.positive.map { FileManager.default.fileExists(atPath: $0) } == true, "\(rule.id)")
            #expect(rule.negative.map { FileManager.default.fileExists(atPath: $0) } == true, "\(rule.id)")
        }
    }

    @Test("each rule reports on its positive scenario and stays silent on its negative one", arguments: rules.map(\.id))
    func positiveAndNegative(_ id: String) throws {
        let rule = try #require(Self.rules.first { $0.id == id })
        let dir = TemporaryDirectory()
        let positive = try rule.findings(in: Self.record(try #require(rule.positive), in: dir))
        #expect(!positive.isEmpty && positive.allSatisfy { $0.detector == id && $0.severity == rule.severity })
        #expect(try rule.findings(in: Self.record(try #require(rule.negative), in: dir)).isEmpty)
    }

    @Test("analyze stores a rule's findings beside the analyzer's, and records the rule among the detectors")
    func stored() throws {
        let rule = try #require(Self.rules.first { $0.id == "REPEATED_CIPHERTEXT_READ" })
        let dir = TemporaryDirectory()
        let bundle = try Self.record(try #require(rule.positive), in: dir)
        try Analyzer().analyzeAndStore(bundle, rules: [rule])
        let index = try bundle.index()
        #expect(try index.findings().contains { $0.detector == rule.id })
        #expect(try index.analysisProblem() == nil)
        #expect(try index.meta("analysis_detectors")?.split(separator: ",").contains(Substring(rule.id)) == true)
    }

    @Test("a rule file that is not one is refused, naming the file",
          arguments: [("SELECT 1;", "a rule starts with '-- rule: ID'"),
                      ("-- rule: lower_case\n-- severity: low\nSELECT 1;", "a rule starts with"),
                      ("-- rule: HV_PLAINTEXT\n-- severity: low\nSELECT 1;", "is a built-in detector's id"),
                      ("-- rule: MY_RULE\n-- severity: dire\nSELECT 1;", "a rule needs '-- severity: LEVEL'"),
                      ("-- rule: MY_RULE\n-- rule: OTHER\n-- severity: low\nSELECT 1;", "'rule' given twice")])
    func badRules(_ text: String, _ message: String) {
        #expect { try SQLRule(text: text, file: "r.sql") } throws: { error in
            "\(error)".hasPrefix("r.sql") && "\(error)".contains(message)
        }
    }

    @Test("a rule's rows must carry sink_seq and summary; a query that would write is refused")
    func badResults() throws {
        let dir = TemporaryDirectory()
        let script = try ScenarioParser(file: "default").parse(DefaultScenario.text)
        let bundle = try ScenarioRecorder.record(script, seed: 1, to: dir.path + "/d.sevtrace").bundle
        let noSummary = try SQLRule(text: "-- rule: MY_RULE\n-- severity: low\nSELECT 1 AS sink_seq;", file: "r.sql")
        #expect { try noSummary.findings(in: bundle) } throws: { "\($0)".contains("must return columns sink_seq and summary") }
        let writer = try SQLRule(text: "-- rule: MY_RULE\n-- severity: low\nDELETE FROM findings;", file: "w.sql")
        #expect(throws: QueryError.self) { try writer.findings(in: bundle) }
        let ok = try SQLRule(text: "-- rule: MY_RULE\n-- severity: low\nSELECT seq AS sink_seq, 'halt' AS summary, 'high' AS severity FROM events WHERE type = 'halt';", file: "h.sql")
        let found = try ok.findings(in: bundle)
        #expect(!found.isEmpty && found.allSatisfy { $0.severity == .high && $0.detector == "MY_RULE" })
    }
}
