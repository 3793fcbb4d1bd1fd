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
        return r.stdout.split(separator: "\r\n").dropFirst().map(String.init)
    }
}
