/// A vCPU's TLB: translations of 4 KiB pages by ASID and page (`asid << 52 | gva >> 12`), so an entry
/// made under one ASID never hits under another. The last few pages used are kept in a small array in
/// front of the table: a copy loop touches its code, source and destination pages over and over, and
/// they are found there without hashing.
struct TLB {
    /// A cached translation of one 4 KiB page.
    struct Entry {
        var gpaPage: UInt64
        var spaPage: UInt64
        var cbit: Bool
    }

    private var table: [UInt64: Entry] = [:]
    private var recent: [(key: UInt64, entry: Entry)] = Array(repeating: (.max, Entry(gpaPage: 0, spaPage: 0, cbit: false)), count: 4)
    private var next = 0

    /// The key of `gva` under `asid`.
    @inline(__always)
    static func key(asid: UInt16, gva: UInt64) -> UInt64 { UInt64(asid) << 52 | gva >> 12 }

    @inline(__always)
    mutating func lookup(_ key: UInt64) -> Entry? {
        for r in recent where r.key == key { return r.entry }
        guard let e = table[key] else { return nil }
        remember(key, e)
        return e
    }

    mutating func insert(_ key: UInt64, _ entry: Entry) {
        table[key] = entry
        remember(key, entry)
    }

    /// INVLPG: one page.
    mutating func remove(_ key: UInt64) {
        table[key] = nil
        for i in recent.indices where recent[i].key == key { recent[i].key = .max }
    }

    /// A full flush.
    mutating func removeAll() {
        table.removeAll(keepingCapacity: true)
        for i in recent.indices { recent[i].key = .max }
    }

    @inline(__always)
    private mutating func remember(_ key: UInt64, _ entry: Entry) {
        recent[next] = (key, entry)
        next = (next + 1) & 3
    }
}
