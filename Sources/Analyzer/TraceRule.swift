import TraceFormat

/// A detector that is not part of the analyzer's replay: it reads a finished trace (its index and its
/// events) and reports findings under its own id. Rules written in SQL (`SQLRule`, files under
/// Queries/detectors/) are the ones users add without rebuilding the tool.
public protocol TraceRule: Sendable {
    /// The rule's stable id, in the style of ``Detector`` ids (`ASID_REUSE_SEQUENCE`).
    var id: String { get }
    /// The findings the rule reports on `bundle`.
    func findings(in bundle: TraceBundle) throws -> [Finding]
}
