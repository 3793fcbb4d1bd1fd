/// Parses the scenario language; the reference is Traces/README.md. Each statement has its own parser
/// (``ScenarioReader`` and its extensions).
public struct ScenarioParser {
    public let file: String
    public let limits: ScenarioLimits

    public init(file: String, limits: ScenarioLimits = ScenarioLimits()) {
        self.file = file
        self.limits = limits
    }

    /// Parses `text`, checking every name it refers to. Line ends may be LF or CRLF, a UTF-8 byte-order
    /// mark is skipped, and the last line needs no line end: all parse as the same scenario.
    public func parse(_ text: String) throws(ScenarioError) -> ScenarioScript {
        guard text.utf8.count <= limits.maxScenarioBytes else {
            throw ScenarioError(SourceLocation(file: file, line: 1, column: 1),
                                "the scenario is \(text.utf8.count) bytes, over the limit of \(limits.maxScenarioBytes) (raise it with --max-scenario-bytes)")
        }
        var body = Substring(text)
        if body.first == "\u{FEFF}" { body = body.dropFirst() }
        return try ScenarioReader(file: file, limits: limits, text: text, body: body).read()
    }
}
