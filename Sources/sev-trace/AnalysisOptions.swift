import Analyzer
import ArgumentParser
import Foundation
import Query
import TraceFormat

/// The bounds of one analysis, shared by every command that analyzes.
struct AnalysisOptions: ParsableArguments {
    @Option(help: "Past this many findings, further hits are counted per detector instead of listed.")
    var maxFindings: Int = 100_000

    @Option(help: "The most memory, in bytes, the analyzer's shadow state may take (shadow pages, register taint, mappings).")
    var maxShadowMemory: Int = 2 << 30

    func validate() throws {
        guard maxFindings >= 1 else { throw ValidationError("--max-findings must be at least 1") }
        guard maxShadowMemory >= 1 << 20 else { throw ValidationError("--max-shadow-memory must be at least 1048576") }
    }

    /// The detectors a comma-separated `--detectors` list names (all of them when nil).
    static func detectors(_ list: String?) throws -> Set<Detector> {
        guard let list else { return Set(Detector.allCases) }
        var selected: Set<Detector> = []
        for name in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard let d = Detector(rawValue: name.uppercased()) else {
                throw InputError(description: "unknown detector '\(name)'; known: \(Detector.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            selected.insert(d)
        }
        return selected
    }

    /// The SQL rules at `path`: every `*.sql` file of a directory, or one file.
    static func rules(_ path: String?) throws -> [SQLRule] {
        guard let path else { return [] }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw InputError(description: "\(path): no such rules file or directory")
        }
        return isDirectory.boolValue ? try SQLRule.loadDirectory(path) : [try SQLRule.load(path)]
    }

    /// The severity a `--fail-on` option names.
    static func severity(_ name: String) throws -> Severity {
        guard let s = Severity(name: name) else {
            throw InputError(description: "unknown severity '\(name)'; use info, low, medium, high or critical")
        }
        return s
    }

    /// An analyzer with these bounds.
    func analyzer(detectors: Set<Detector> = Set(Detector.allCases)) -> Analyzer {
        Analyzer(detectors: detectors, maxFindings: maxFindings, maxShadowBytes: maxShadowMemory)
    }
}
