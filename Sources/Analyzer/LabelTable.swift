import TraceFormat

/// Taint labels and interned sets of them. A set is a small integer; 0 is the empty set. Unions are
/// cached, so propagating taint costs a dictionary lookup at most, and memory grows with the number of
/// distinct sets, not with the trace.
struct LabelTable {
    /// Where tainted data came from.
    struct Label: Equatable {
        enum Kind: Equatable {
            /// A secret the scenario declared.
            case secret(name: String)
            /// Data a VM wrote while private.
            case privateData(vm: UInt16)
            /// A mark: the guest handed this data over on purpose (a SWIOTLB bounce).
            case handover(vm: UInt16)
        }
        var kind: Kind
        /// The event that introduced the label.
        var seq: UInt64
        var spa: UInt64
    }

    typealias SetID = UInt32

    private(set) var labels: [Label] = []
    private var sets: [[UInt32]] = [[]]
    private var setIDs: [[UInt32]: SetID] = [[]: 0]
    private var unions: [UInt64: SetID] = [:]
    private var privateLabel: [UInt16: UInt32] = [:]
    private var handoverLabel: [UInt16: UInt32] = [:]

    /// A new secret label, as a one-element set.
    mutating func secret(name: String, seq: UInt64, spa: UInt64) -> SetID {
        labels.append(Label(kind: .secret(name: name), seq: seq, spa: spa))
        return intern([UInt32(labels.count - 1)])
    }

    /// The label of data VM `vm` wrote privately, as a one-element set.
    mutating func privateData(vm: UInt16, seq: UInt64) -> SetID {
        // Every private write asks for this: the last answer spares two hash lookups.
        if vm == lastPrivate.vm { return lastPrivate.set }
        let set: SetID
        if let l = privateLabel[vm] {
            set = intern([l])
        } else {
            labels.append(Label(kind: .privateData(vm: vm), seq: seq, spa: 0))
            privateLabel[vm] = UInt32(labels.count - 1)
            set = intern([UInt32(labels.count - 1)])
        }
        lastPrivate = (vm, set)
        return set
    }
    private var lastPrivate: (vm: UInt16, set: SetID) = (.max, 0)

    private mutating func intern(_ members: [UInt32]) -> SetID {
        if let id = setIDs[members] { return id }
        let id = SetID(sets.count)
        sets.append(members)
        setIDs[members] = id
        return id
    }

    /// The union of two sets.
    mutating func union(_ a: SetID, _ b: SetID) -> SetID {
        if a == b || b == 0 { return a }
        if a == 0 { return b }
        let key = UInt64(min(a, b)) << 32 | UInt64(max(a, b))
        if key == lastUnion.key { return lastUnion.set }
        if let u = unions[key] {
            lastUnion = (key, u)
            return u
        }
        var merged = sets[Int(a)]
        for m in sets[Int(b)] where !merged.contains(m) { merged.append(m) }
        merged.sort()
        let id = intern(merged)
        unions[key] = id
        lastUnion = (key, id)
        return id
    }
    private var lastUnion: (key: UInt64, set: SetID) = (.max, 0)

    /// The labels of a set, in the order they were created.
    func members(_ id: SetID) -> [Label] { sets[Int(id)].map { labels[Int($0)] } }

    /// The hand-over mark of a VM, as a one-element set.
    mutating func handover(vm: UInt16, seq: UInt64) -> SetID {
        if let l = handoverLabel[vm] { return intern([l]) }
        labels.append(Label(kind: .handover(vm: vm), seq: seq, spa: 0))
        handoverLabel[vm] = UInt32(labels.count - 1)
        return intern([UInt32(labels.count - 1)])
    }

    /// Whether a set carries a hand-over mark.
    func isHandedOver(_ id: SetID) -> Bool {
        sets[Int(id)].contains { if case .handover = labels[Int($0)].kind { true } else { false } }
    }

    /// Whether a set holds a declared secret.
    func hasSecret(_ id: SetID) -> Bool {
        sets[Int(id)].contains { if case .secret = labels[Int($0)].kind { true } else { false } }
    }

    /// How bad it is that plaintext carrying `id` reached someone who must not see it: high for a declared
    /// secret, medium for other private data; one step lower when the guest handed it over on purpose.
    func leakSeverity(_ id: SetID) -> Severity {
        let severity: Severity = hasSecret(id) ? .high : .medium
        return isHandedOver(id) ? Severity(rawValue: severity.rawValue - 1) ?? .info : severity
    }

    /// The labels of a set as findings name them (`secret:NAME`, `private:VM`, `handover:VM`), comma-separated.
    func names(_ id: SetID, vmNames: [UInt16: String]) -> String {
        members(id).map(FindingCollector.name(vmNames: vmNames)).joined(separator: ",")
    }

    /// Where the first declared secret of a set lies (0 when it holds none).
    func firstSecretSPA(_ id: SetID) -> UInt64 {
        for l in members(id) { if case .secret = l.kind { return l.spa } }
        return 0
    }

    /// The table of a finding that carries no labels.
    static let empty = LabelTable()

    /// The number of distinct sets (for tests of interning).
    var setCount: Int { sets.count }
}
