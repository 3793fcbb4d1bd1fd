import Foundation
import TestSupport
import Testing
import TraceFormat
@testable import Query

/// The HTML report of every golden trace: self-contained, every finding in it; and, where Chromium is
/// installed, what a browser shows with the network off.
struct HTMLReportTests {
    static let traces = GoldenTraces.directory(from: #filePath)
    static let bundles = GoldenTraces.bundles(in: traces)

    /// Chromium, when installed (the CI installs it).
    static let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }

    static func report(_ name: String) throws -> (html: String, findings: [Finding]) {
        let bundle = try TraceBundle(existing: traces.appendingPathComponent(name).path)
        return (try HTMLReport().render(bundle), try bundle.index().findings())
    }

    @Test("every golden trace's report is self-contained and holds every finding", arguments: bundles)
    func selfContained(name: String) throws {
        let (html, findings) = try Self.report(name)
        #expect(html.hasPrefix("<!doctype html>") && html.hasSuffix("</body></html>\n"))
        for external in ["http://", "https://", "src=", "<script", "@import", "url("] {
            #expect(!html.contains(external), "\(name): the report refers to \(external)")
        }
        #expect(html.components(separatedBy: "<div class=finding").count - 1 == findings.count, "\(name)")
        for f in findings { #expect(html.contains(MarkupText.xml(f.summary)), "\(name): \(f.summary)") }
        for section in ["id=\"integrity\"", "id=\"findings\"", "id=\"memory\"", "id=\"firmware\"", "id=\"exits\""] {
            #expect(html.contains(section), "\(name): no \(section)")
        }
        #expect(html.contains("class=ok>Verified"), "\(name): a committed trace verifies")
    }

    @Test("headless Chromium, with the network off, shows every golden trace's report with its findings; screenshots of a few",
          .enabled(if: chromium != nil, "needs Chromium (apt-get install chromium; .ci/run installs it)"),
          arguments: bundles)
    func inChromium(name: String) throws {
        let dir = TemporaryDirectory()
        let (html, findings) = try Self.report(name)
        try html.write(toFile: dir.path + "/report.html", atomically: true, encoding: .utf8)
        let offline = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                       "--host-resolver-rules=MAP * ~NOTFOUND", "--user-data-dir=" + dir.path + "/profile"]
        let dom = try Self.run(Self.chromium!, offline + ["--dump-dom", "file://" + dir.path + "/report.html"])
        #expect(dom.contains("<h1>sev-trace report"), "\(name): \(dom.prefix(200))")
        #expect(dom.components(separatedBy: "class=\"finding\"").count - 1 == findings.count, "\(name): the DOM holds every finding")
        // A screenshot of a few: what a reader sees.
        guard ["default.sevtrace", "race.sevtrace", "detectors/cbit-alias.sevtrace"].contains(name) else { return }
        _ = try Self.run(Self.chromium!, offline + ["--screenshot=" + dir.path + "/report.png", "--window-size=1200,1600",
                                                     "file://" + dir.path + "/report.html"])
        let png = try Data(contentsOf: URL(fileURLWithPath: dir.path + "/report.png"))
        #expect(png.count > 10_000 && png.prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]), "\(name): a screenshot")
    }

    static func run(_ path: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}
