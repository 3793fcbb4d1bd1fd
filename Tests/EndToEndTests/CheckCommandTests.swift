import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import TestSupport
import Testing

/// `sev-trace check`: committed traces checked in CI against a committed baseline, without writing them.
@Suite(.serialized)
struct CheckCommandTests {
    typealias CLI = CommandLineTests

    static var goldenBundles: [String] {
        GoldenTraceTests.bundles.map { CLI.root.appendingPathComponent("Traces/" + $0).path }
    }

    /// Every file under `dir`, with its bytes.
    static func snapshot(_ dir: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let e = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil)
        while let u = e?.nextObject() as? URL {
            if let d = FileManager.default.contents(atPath: u.path) { out[u.path] = d }
        }
        return out
    }

    @Test("every golden and detector trace passes against the committed baseline, and no byte under Traces/ changes")
    func committedBaseline() throws {
        let traces = CLI.root.appendingPathComponent("Traces")
        let before = try Self.snapshot(traces)
        let r = try CLI.run(["check"] + Self.goldenBundles + ["--baseline", traces.appendingPathComponent("baseline.json").path],
                            in: NSTemporaryDirectory())
        #expect(r.status == 0, "\(r.stdout.suffix(2000))\(r.stderr)")
        #expect(r.stdout.hasSuffix("check: \(Self.goldenBundles.count) trace(s), 0 new finding(s), 0 of severity info or worse\n"))
        #expect(try Self.snapshot(traces) == before, "check wrote into Traces/")
    }

    /// A scratch copy of one golden bundle.
    static func copy(_ name: String, into s: TemporaryDirectory) throws -> String {
        let to = s.path + "/" + name
        try FileManager.default.copyItem(atPath: CLI.root.appendingPathComponent("Traces/" + name).path, toPath: to)
        return to
    }

    @Test("a finding the baseline does not accept fails the check at its severity, in text, JSON and JUnit")
    func newFinding() throws {
        let s = CLI.Scratch()
        _ = try Self.copy("race.sevtrace", into: s)
        // Accept one of the two findings only.
        let update = try CLI.run(["check", "race.sevtrace", "--baseline", "b.json", "--update-baseline"], in: s.path)
        #expect(update.status == 0, "\(update.stderr)")
        let full = try String(contentsOfFile: s.path + "/b.json", encoding: .utf8)
        let document = try JSONSerialization.jsonObject(with: Data(full.utf8)) as! [String: Any]
        var accepted = document["accepted"] as! [[String: Any]]
        #expect(accepted.count == 2)
        let dropped = accepted.removeLast()
        let trimmed: [String: Any] = ["version": 1, "accepted": accepted]
        try JSONSerialization.data(withJSONObject: trimmed).write(to: URL(fileURLWithPath: s.path + "/b.json"))

        let text = try CLI.run(["check", "race.sevtrace", "--baseline", "b.json"], in: s.path)
        #expect(text.status == 1)
        #expect(text.stdout.contains("1 new, 0 disappeared"), "\(text.stdout)")
        #expect(text.stdout.contains("  new       high     \(dropped["detector"] as! String) \(dropped["fingerprint"] as! String) "))
        #expect(text.stderr == "error: 1 new finding(s) of severity info or worse in 1 trace(s)\n")
        // Below the threshold it passes.
        let critical = try CLI.run(["check", "race.sevtrace", "--baseline", "b.json", "--fail-on", "critical"], in: s.path)
        #expect(critical.status == 0, "\(critical.stderr)")

        let json = try CLI.run(["check", "race.sevtrace", "--baseline", "b.json", "--format", "json"], in: s.path)
        #expect(json.status == 1)
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [String: Any]
        #expect(parsed["failed"] as? Bool == true)
        let trace = (parsed["traces"] as! [[String: Any]])[0]
        #expect(trace["trace"] as? String == (s.path as NSString).lastPathComponent + "/race.sevtrace")
        #expect(trace["new"] as? [String] == [dropped["fingerprint"] as! String])
        #expect((trace["findings"] as? [[String: Any]])?.count == 2)

        let junit = try CLI.run(["check", "race.sevtrace", "--baseline", "b.json", "--format", "junit"], in: s.path)
        #expect(junit.status == 1)
        let collector = JUnitCollector()
        let parser = XMLParser(data: Data(junit.stdout.utf8))
        parser.delegate = collector
        #expect(parser.parse(), "\(junit.stdout)")
        #expect(collector.testcases == ["race.sevtrace"].map { (s.path as NSString).lastPathComponent + "/" + $0 })
        #expect(collector.failures == 1)
        #expect(collector.suiteAttributes["tests"] == "1" && collector.suiteAttributes["failures"] == "1")
    }

    final class JUnitCollector: NSObject, XMLParserDelegate {
        var testcases: [String] = []
        var failures = 0
        var suiteAttributes: [String: String] = [:]

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String]) {
            switch name {
            case "testsuite": suiteAttributes = attributes
            case "testcase": testcases.append(attributes["name"] ?? "")
            case "failure": failures += 1
            default: break
            }
        }
    }

    @Test("--update-baseline keeps the reasons of findings that stay, and a second update changes nothing")
    func updateKeepsReasons() throws {
        let s = CLI.Scratch()
        _ = try Self.copy("race.sevtrace", into: s)
        #expect(try CLI.run(["check", "race.sevtrace", "--baseline", "b.json", "--update-baseline"], in: s.path).status == 0)
        let path = s.path + "/b.json"
        let edited = try String(contentsOfFile: path, encoding: .utf8)
            .replacingOccurrences(of: "accepted with --update-baseline; say why", with: "the race the scenario shows")
        try edited.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try CLI.run(["check", "race.sevtrace", "--baseline", "b.json", "--update-baseline"], in: s.path).status == 0)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == edited)
    }

    @Test("a baseline that is not one is refused with one line naming the file",
          arguments: [("not json", "the baseline is not JSON"),
                      ("{\"version\": 2, \"accepted\": []}", "a baseline is an object with \"version\": 1"),
                      ("{\"version\": 1, \"accepted\": [{\"trace\": \"x\", \"fingerprint\": \"zz\"}]}", "accepted entry 1 needs")])
    func badBaseline(_ text: String, _ message: String) throws {
        let s = CLI.Scratch()
        _ = try Self.copy("race.sevtrace", into: s)
        try text.write(toFile: s.path + "/b.json", atomically: true, encoding: .utf8)
        let r = try CLI.run(["check", "race.sevtrace", "--baseline", "b.json"], in: s.path)
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("error: b.json: \(message)"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
    }

    @Test("analyze --detectors replaces only those detectors' findings; the others stay, and the record names both")
    func detectorSubset() throws {
        let s = CLI.Scratch()
        let bundle = try Self.copy("hv-peeks.sevtrace", into: s)
        let all = try Self.findingDetectors(bundle, in: s.path)
        #expect(all.contains("REGISTER_EXPOSURE") && all.contains("HV_PLAINTEXT"))
        let r = try CLI.run(["analyze", bundle, "--detectors", "HV_PLAINTEXT"], in: s.path)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try Self.findingDetectors(bundle, in: s.path) == all)
        #expect(try CLI.run(["verify", bundle], in: s.path).status == 0)
    }

    static func findingDetectors(_ bundle: String, in dir: String) throws -> [String] {
        try "SELECT detector FROM findings ORDER BY id;".write(toFile: dir + "/q.sql", atomically: true, encoding: .utf8)
        let r = try CLI.run(["query", bundle, dir + "/q.sql", "--format", "csv"], in: dir)
        return r.stdout.split(separator: "\n").dropFirst().map(String.init)
    }
}

extension CheckCommandTests {
    /// The SARIF validators the CI installs (sarif-pydantic, sarif-tools).
    static let hasSARIFTools = PythonTool.can("import sarif_pydantic, sarif")
    /// Python's `jsonschema`, which validates against the vendored OASIS schema.
    static let hasJSONSchema = PythonTool.can("import jsonschema")

    /// `check --format sarif` over golden and detector traces with the SQL rules, written to `out.sarif` in a
    /// scratch directory; returns that file's path.
    static func sarifLog(in s: CLI.Scratch) throws -> String {
        let bundles = ["race.sevtrace", "firmware-tour.sevtrace", "detectors/placement-mismatch.sevtrace",
                       "detectors/ciphertext-replay.sevtrace"]
        for b in bundles {
            try FileManager.default.createDirectory(atPath: s.path + "/" + (b as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            _ = try copy(b, into: s)
        }
        let r = try CLI.run(["check"] + bundles + ["--format", "sarif", "--rules", CLI.root.appendingPathComponent("Queries/detectors").path],
                            in: s.path)
        #expect(r.stderr.isEmpty, "\(r.stderr)")
        try r.stdout.write(toFile: s.path + "/out.sarif", atomically: true, encoding: .utf8)
        return s.path + "/out.sarif"
    }

    @Test("SARIF: one run with a rule per detector, a result per finding with its fingerprint and baseline state")
    func sarifStructure() throws {
        let s = CLI.Scratch()
        _ = try Self.copy("race.sevtrace", into: s)
        let r = try CLI.run(["check", "race.sevtrace", "--format", "sarif"], in: s.path)
        #expect(r.status == 0, "\(r.stderr)")
        let log = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect(log["version"] as? String == "2.1.0")
        let run = (log["runs"] as! [[String: Any]])[0]
        let driver = (run["tool"] as! [String: Any])["driver"] as! [String: Any]
        let ruleIDs = (driver["rules"] as! [[String: Any]]).map { $0["id"] as! String }
        #expect(ruleIDs.contains("PRIVATE_TO_SHARED") && ruleIDs.contains("PLACEMENT_MISMATCH"))
        let results = run["results"] as! [[String: Any]]
        #expect(results.map { $0["ruleId"] as! String } == ["PRIVATE_TO_SHARED", "PRIVATE_TO_DMA"])
        for result in results {
            #expect(result["level"] as? String == "error")
            #expect(ruleIDs[result["ruleIndex"] as! Int] == result["ruleId"] as? String)
            #expect(((result["partialFingerprints"] as? [String: String])?["sevTraceFingerprint/v1"])?.count == 16)
            #expect(result["baselineState"] as? String == "unchanged")
        }
    }

    @Test("SARIF validates against the OASIS 2.1.0 schema (vendored in Tests/Schemas), formats included",
          .enabled(if: hasJSONSchema, "needs `pip install jsonschema[format-nongpl]` (.ci/run installs it)"))
    func sarifMatchesSchema() throws {
        let s = CLI.Scratch()
        let log = try Self.sarifLog(in: s)
        let schema = CLI.root.appendingPathComponent("Tests/Schemas/sarif-schema-2.1.0.json").path
        let script = """
            import json, sys, jsonschema
            schema = json.load(open(sys.argv[1]))
            log = json.load(open(sys.argv[2]))
            validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
            errors = sorted(validator.iter_errors(log), key=lambda e: list(e.absolute_path))
            for e in errors[:5]:
                print("/".join(map(str, e.absolute_path)), e.message, file=sys.stderr)
            print(len(log["runs"][0]["results"]))
            sys.exit(1 if errors else 0)
            """
        let r = try PythonTool.run(script, [schema, log])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Int(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0 >= 8, "\(r.stdout)")
        // The schema is strict enough to catch a malformed log: a wrong level must fail validation.
        var broken = try String(contentsOfFile: log, encoding: .utf8)
        broken = broken.replacingOccurrences(of: "\"level\": \"error\"", with: "\"level\": \"severe\"")
        try broken.write(toFile: log, atomically: true, encoding: .utf8)
        #expect(try PythonTool.run(script, [schema, log]).status == 1)
    }

    @Test("SARIF validates with the SARIF tools of the field (sarif-pydantic's 2.1.0 model, sarif-tools)",
          .enabled(if: hasSARIFTools, "needs `pip install sarif-pydantic sarif-tools` (.ci/run installs them)"))
    func sarifValidates() throws {
        let s = CLI.Scratch()
        let log = try Self.sarifLog(in: s)
        let script = """
            import json, sys, subprocess
            from sarif_pydantic import Sarif
            log = Sarif.model_validate(json.load(open(sys.argv[1])))
            assert log.version == "2.1.0" and len(log.runs) == 1
            out = subprocess.run(["sarif", "summary", sys.argv[1]], capture_output=True, text=True, check=True).stdout
            assert "error:" in out, out
            print(len(log.runs[0].results))
            """
        let r = try PythonTool.run(script, [log])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Int(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0 >= 8, "\(r.stdout)")
    }
}

extension CheckCommandTests {
    @Test("analyze speaks the same formats: JUnit fails the trace's test case at --fail-on; --quiet prints nothing")
    func analyzeFormats() throws {
        let s = CLI.Scratch()
        _ = try Self.copy("race.sevtrace", into: s)
        let junit = try CLI.run(["analyze", "race.sevtrace", "--format", "junit", "--fail-on", "high"], in: s.path)
        #expect(junit.status == 1)
        let collector = JUnitCollector()
        let parser = XMLParser(data: Data(junit.stdout.utf8))
        parser.delegate = collector
        #expect(parser.parse())
        #expect(collector.testcases.count == 1 && collector.failures == 1)
        let json = try CLI.run(["analyze", "race.sevtrace", "--format", "json"], in: s.path)
        #expect(json.status == 0)
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [String: Any]
        #expect(((parsed["traces"] as! [[String: Any]])[0]["findings"] as! [Any]).count == 2)
        let quiet = try CLI.run(["analyze", "race.sevtrace", "--quiet"], in: s.path)
        #expect(quiet.status == 0 && quiet.stdout.isEmpty && quiet.stderr.isEmpty)
    }
}
