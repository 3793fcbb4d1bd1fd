import TraceFormat

extension Analyzer {
    /// Analyzes `bundle`'s events, runs `rules` over it, and stores the findings in `index` (the bundle's
    /// own, or the copy a writer is preparing), with the record that this analysis, with these detectors
    /// and rules, ran to the end.
    @discardableResult
    public func analyze(_ bundle: TraceBundle, storingIn index: TraceIndex, rules: [TraceRule] = []) throws -> [Finding] {
        let findings = try analyze(bundle, rules: rules)
        try index.replaceFindings(findings, detectors: ids(rules))
        return findings
    }

    /// The ids an analysis with `rules` records as having run: its detectors', then the rules'.
    private func ids(_ rules: [TraceRule]) -> [String] { detectors.map(\.rawValue) + rules.map(\.id) }

    /// Analyzes `bundle`'s events, then runs `rules` over it: the analyzer's findings, then each rule's.
    public func analyze(_ bundle: TraceBundle, rules: [TraceRule]) throws -> [Finding] {
        var findings = try analyze(try bundle.reader())
        for rule in rules { findings += try rule.findings(in: bundle) }
        return findings
    }

    /// Analyzes `bundle` and replaces its findings, safely: the index is rewritten as a copy that takes
    /// the old one's place, and only when its findings or analysis record change (analyzing a committed
    /// trace again neither copies its index nor changes a byte of it).
    @discardableResult
    public func analyzeAndStore(_ bundle: TraceBundle, rules: [TraceRule] = []) throws -> [Finding] {
        let findings = try analyze(bundle, rules: rules)
        guard try !bundle.index().holds(findings, detectors: ids(rules)) else { return findings }
        try bundle.rewriteIndex { try $0.replaceFindings(findings, detectors: ids(rules)) }
        return findings
    }
}
