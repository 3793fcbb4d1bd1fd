import TraceFormat

extension Analyzer {
    /// Analyzes `bundle`'s events and stores the findings in `index` (the bundle's own, or the copy a
    /// writer is preparing), with the record that this analysis, with these detectors, ran to the end.
    @discardableResult
    public func analyze(_ bundle: TraceBundle, storingIn index: TraceIndex) throws -> [Finding] {
        let findings = try analyze(try bundle.reader())
        try index.replaceFindings(findings, detectors: detectors.map(\.rawValue))
        return findings
    }

    /// Analyzes `bundle` and replaces its findings, safely: the index is rewritten as a copy that takes
    /// the old one's place only when the analysis is complete.
    @discardableResult
    public func analyzeAndStore(_ bundle: TraceBundle) throws -> [Finding] {
        var findings: [Finding] = []
        try bundle.rewriteIndex { index in findings = try analyze(bundle, storingIn: index) }
        return findings
    }
}
