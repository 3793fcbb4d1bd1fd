import Analyzer
import TraceFormat

/// Findings as a SARIF 2.1.0 log (the OASIS Static Analysis Results Interchange Format that code-scanning
/// services read): one run, the tool's detectors and rules as `reportingDescriptor`s, one result per
/// finding with its trace as the artifact, its events as logical locations, its fingerprint as a
/// partial fingerprint and whether a baseline knew it as `baselineState`.
struct SARIFReport {
    /// The detectors and rules described in the log: id and what each looks for.
    let rules: [(id: String, summary: String)]

    struct Trace {
        var path: String
        var findings: [Finding]
        /// Fingerprints a check found new (nil: no comparison was made).
        var new: Set<String>?
    }

    /// SARIF's level for a severity.
    static func level(_ s: Severity) -> String {
        switch s {
        case .critical, .high: "error"
        case .medium: "warning"
        case .low, .info: "note"
        }
    }

    /// The `security-severity` property code-scanning services rank by (0.0 to 10.0).
    static func securitySeverity(_ s: Severity) -> String {
        switch s {
        case .critical: "9.5"
        case .high: "8.0"
        case .medium: "5.5"
        case .low: "3.0"
        case .info: "1.0"
        }
    }

    /// `PRIVATE_TO_SHARED` as SARIF's PascalCase rule name, `PrivateToShared`.
    static func name(_ id: String) -> String {
        id.split(separator: "_").map { $0.prefix(1) + $0.dropFirst().lowercased() }.joined()
    }

    func document(_ traces: [Trace]) -> String {
        let j = MarkupText.json
        let ruleIndex = Dictionary(uniqueKeysWithValues: rules.enumerated().map { ($1.id, $0) })
        let descriptors = rules.map { r in
            "          {\"id\": \(j(r.id)), \"name\": \(j(Self.name(r.id))), \"shortDescription\": {\"text\": \(j(r.summary))}, "
                + "\"properties\": {\"tags\": [\"security\", \"sev\"]}}"
        }
        var results: [String] = []
        for t in traces {
            for f in t.findings {
                let index = ruleIndex[f.detector].map { ", \"ruleIndex\": \($0)" } ?? ""
                let steps = f.flow.isEmpty ? [FlowStep(seq: f.sinkSeq, role: .sink)] : f.flow
                let logical = steps.map { s in
                    "{\"name\": \(j("event #\(s.seq)")), \"fullyQualifiedName\": \(j("\(t.path)#\(s.seq)")), \"kind\": \(j(s.role.rawValue))}"
                }
                results.append("        {\"ruleId\": \(j(f.detector))\(index), \"level\": \(j(Self.level(f.severity))), "
                    + "\"message\": {\"text\": \(j(f.summary))},\n"
                    + "         \"locations\": [{\"physicalLocation\": {\"artifactLocation\": {\"uri\": \(j(t.path + "/events.zst"))}}, "
                    + "\"logicalLocations\": [" + logical.joined(separator: ", ") + "]}],\n"
                    + "         \"partialFingerprints\": {\"sevTraceFingerprint/v1\": \(j(f.fingerprint))}, "
                    + (t.new.map { "\"baselineState\": \(j($0.contains(f.fingerprint) ? "new" : "unchanged")), " } ?? "")
                    + "\"occurrenceCount\": \(max(1, f.occurrences)),\n"
                    + "         \"properties\": {\"severity\": \(j(f.severity.description)), "
                    + "\"security-severity\": \(j(Self.securitySeverity(f.severity))), \"labels\": \(j(f.labels)), "
                    + "\"preview\": \(j(f.preview)), \"sourceSeq\": \(f.sourceSeq), \"sinkSeq\": \(f.sinkSeq), "
                    + "\"sinkLastSeq\": \(f.sinkLastSeq), \"sinkGpa\": \(f.sinkGPA), \"length\": \(f.length)}}")
            }
        }
        return "{\n  \"$schema\": \"https://json.schemastore.org/sarif-2.1.0.json\",\n  \"version\": \"2.1.0\",\n  \"runs\": [\n    {\n"
            + "      \"tool\": {\"driver\": {\"name\": \"sev-trace\", \"version\": \(j(ToolVersion.current)), "
            + "\n        \"rules\": [\n"
            + descriptors.joined(separator: ",\n") + "\n        ]}},\n"
            + "      \"results\": [\n" + results.joined(separator: ",\n") + (results.isEmpty ? "" : "\n") + "      ]\n    }\n  ]\n}\n"
    }
}
