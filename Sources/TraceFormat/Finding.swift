import Foundation

/// How bad a finding is, from least to most.
public enum Severity: Int, CaseIterable, Comparable, Sendable, CustomStringConvertible {
    case info = 0, low, medium, high, critical

    public static func < (a: Severity, b: Severity) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .info: "info"
        case .low: "low"
        case .medium: "medium"
        case .high: "high"
        case .critical: "critical"
        }
    }

    /// Parses a severity name.
    public init?(name: String) {
        guard let s = Severity.allCases.first(where: { $0.description == name.lowercased() }) else { return nil }
        self = s
    }
}

/// What an event was on a finding's path.
public enum FlowRole: String, CaseIterable, Sendable {
    /// Where the data entered the path: a secret's declaration, or the private write it came from.
    case source
    /// A write that put the data where it was later read.
    case write
    /// A load that brought it into a register.
    case load
    /// Where it escaped, or where the detector saw what it reports.
    case sink
}

/// One step of a finding's provenance: an event the data passed through.
public struct FlowStep: Equatable, Sendable {
    public var seq: UInt64
    public var role: FlowRole

    public init(seq: UInt64, role: FlowRole) {
        self.seq = seq
        self.role = role
    }
}

/// One thing the analyzer found, as stored in the index's `findings` table (its provenance in `flows`).
public struct Finding: Equatable, Sendable {
    /// The detector's stable id, for example `PRIVATE_TO_SHARED`.
    public var detector: String
    public var severity: Severity
    /// The VM whose data it concerns (``MemoryAccess/noVM`` when none).
    public var vm: UInt16
    public var asid: UInt16
    /// Who performed the sink access.
    public var actor: String
    /// The event where the data entered the path (a secret declaration or the private access it came from).
    public var sourceSeq: UInt64
    /// The first and last sink events.
    public var sinkSeq: UInt64
    public var sinkLastSeq: UInt64
    /// Where the data came from (system physical address; 0 when unknown).
    public var sourceSPA: UInt64
    /// Where it went.
    public var sinkSPA: UInt64
    public var sinkGPA: UInt64
    /// Bytes affected.
    public var length: UInt64
    /// The taint labels the bytes carried, comma-separated.
    public var labels: String
    /// A hex preview of the plaintext that escaped, where there is one.
    public var preview: String
    /// One sentence for people.
    public var summary: String
    /// The events the data passed through, from its source to the sink.
    public var flow: [FlowStep] = []
    /// How many times the sink happened: repeats of the same access (a hypervisor polling one block)
    /// are counted here, from `sinkSeq` to `sinkLastSeq`, rather than reported one by one.
    public var occurrences: UInt64 = 1

    public init(detector: String, severity: Severity, vm: UInt16, asid: UInt16, actor: String, sourceSeq: UInt64,
                sinkSeq: UInt64, sinkLastSeq: UInt64, sourceSPA: UInt64, sinkSPA: UInt64, sinkGPA: UInt64,
                length: UInt64, labels: String, preview: String, summary: String, flow: [FlowStep] = []) {
        self.detector = detector
        self.severity = severity
        self.vm = vm
        self.asid = asid
        self.actor = actor
        self.sourceSeq = sourceSeq
        self.sinkSeq = sinkSeq
        self.sinkLastSeq = sinkLastSeq
        self.sourceSPA = sourceSPA
        self.sinkSPA = sinkSPA
        self.sinkGPA = sinkGPA
        self.length = length
        self.labels = labels
        self.preview = preview
        self.summary = summary
        self.flow = flow
    }
}

extension Finding {
    /// A stable identity for the finding, 16 hex digits: what stays the same when unrelated events shift
    /// sequence numbers or a leak grows by a few bytes. It covers the detector, the VM, the kind of actor
    /// (`vcpu`, `hv`, `dev`, `psp`), the labels, the sink's page and the summary with its decimal
    /// numbers and event references left out; not the severity, the counts or any sequence number. A
    /// baseline accepts findings by it.
    public var fingerprint: String {
        let actorKind = String(actor.prefix { $0.isLetter })
        let page = (sinkGPA != 0 ? sinkGPA : sinkSPA) >> 12
        let parts = [detector, String(vm), actorKind, labels, String(page, radix: 16), Self.stableText(summary)]
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a, 64 bits
        for byte in parts.joined(separator: "\u{1F}").utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// `text` without its decimal numbers and `#N` event references (hex addresses stay).
    static func stableText(_ text: String) -> String {
        text.split(separator: " ").filter { word in
            let core = word.trimmingCharacters(in: CharacterSet(charactersIn: "(),:;.[]"))
            let digits = core.hasPrefix("#") ? core.dropFirst() : Substring(core)
            return digits.isEmpty || !digits.allSatisfy(\.isNumber)
        }.joined(separator: " ")
    }
}
