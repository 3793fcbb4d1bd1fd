import Foundation
import Testing
import TraceFormat
@testable import Scenario

/// Traces/README.md, the scenario language's reference, stays true: every `sev` block in it is a complete
/// scenario that records, and together they use every statement, every `hv` action and every option.
struct ReferenceExamplesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The `sev` blocks of the reference, with the line each starts on.
    static let examples: [(line: Int, text: String)] = {
        guard let text = try? String(contentsOf: root.appendingPathComponent("Traces/README.md"), encoding: .utf8) else { return [] }
        var out: [(Int, String)] = []
        var current: (line: Int, lines: [String])?
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if current == nil, line == "```sev" {
                current = (i + 2, [])
            } else if let c = current, line == "```" {
                out.append((c.line, c.lines.joined(separator: "\n") + "\n"))
                current = nil
            } else {
                current?.lines.append(String(line))
            }
        }
        return out
    }()

    @Test("every example in the reference parses and records", arguments: examples.map(\.line))
    func records(_ line: Int) throws {
        let text = try #require(Self.examples.first { $0.line == line }).text
        let script = try ScenarioParser(file: "Traces/README.md@\(line)").parse(text)
        try ScenarioRunner(script: script, seed: 1).run(into: CountingSink())
    }

    /// The words a parser error lists after "expected".
    static func listed(in source: String) -> [String] {
        do {
            _ = try ScenarioParser(file: "t").parse(source)
            return []
        } catch {
            guard let range = error.message.range(of: "expected ") else { return [] }
            var list = error.message[range.upperBound...]
            if let found = list.range(of: ", found ") { list = list[..<found.lowerBound] }
            return list.replacingOccurrences(of: " or ", with: ", ")
                .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
    }

    @Test("the examples use every statement, every hv action and every option the parser knows")
    func coverage() throws {
        #expect(Self.examples.count >= 7)
        let lines = Self.examples.flatMap { $0.text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) } }
        let statements = Self.listed(in: "lanch guest\n") + ["let", "end"]
        #expect(statements.count > 20, "\(statements)")
        for s in statements { #expect(lines.contains { $0.hasPrefix(s + " ") || $0 == s }, "no example uses `\(s)`") }
        let hvActions = Self.listed(in: "vm g memory=2M\nhv bogus g\n")
        #expect(hvActions.count > 8, "\(hvActions)")
        for a in hvActions { #expect(lines.contains { $0.hasPrefix("hv \(a) ") || $0 == "hv \(a)" }, "no example uses `hv \(a)`") }
        // Every option the parser accepts, as the `options(allowed:)` lists in its source name them.
        let sources = Self.root.appendingPathComponent("Sources/Scenario")
        let files = try FileManager.default.contentsOfDirectory(atPath: sources.path).filter { $0.hasPrefix("ScenarioReader") }.sorted()
        #expect(files.count > 5, "the statement parsers: \(files)")
        let parser = try files.map { try String(contentsOf: sources.appendingPathComponent($0), encoding: .utf8) }.joined(separator: "\n")
        var options = Set<String>()
        for line in parser.split(separator: "\n") where line.contains("allowed:") {
            var rest = Substring(line)
            while let open = rest.firstIndex(of: "\""), let close = rest[rest.index(after: open)...].firstIndex(of: "\"") {
                options.insert(String(rest[rest.index(after: open)..<close]))
                rest = rest[rest.index(after: close)...]
            }
        }
        #expect(options.count > 40, "\(options.sorted())")
        let all = Self.examples.map(\.text).joined()
        for o in options.sorted() { #expect(all.contains(" \(o)="), "no example uses the option \(o)=") }
    }
}
