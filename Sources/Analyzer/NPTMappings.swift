/// The nested-page-table mappings a trace made, asked which one mapped a frame first. A nested page fault
/// maps one page; creating a VM maps whole memslots. One-page mappings are kept by frame (a trace can make
/// millions of them: looking one up must not mean walking them all), the others in order.
struct NPTMappings {
    /// One mapping: `pages` frames from `spaPage` hold the guest's pages from `gpaPage`, since event `seq`.
    struct Mapping: Equatable {
        var vm: UInt16
        var gpaPage: UInt64
        var spaPage: UInt64
        var pages: UInt64
        var seq: UInt64

        func contains(_ frame: UInt64) -> Bool { frame >= spaPage && frame - spaPage < pages }
    }

    /// The first one-page mapping of each frame.
    private var single: [UInt64: Mapping] = [:]
    /// Mappings of more than one page, in the order they were made.
    private var ranges: [Mapping] = []

    /// Adds a mapping; returns whether anything was kept (a one-page mapping of a frame mapped by one
    /// page before adds nothing: the first one answers for it).
    @discardableResult
    mutating func add(_ m: Mapping) -> Bool {
        guard m.pages > 0 else { return false }
        if m.pages == 1 {
            guard single[m.spaPage] == nil else { return false }
            single[m.spaPage] = m
        } else {
            ranges.append(m)
        }
        return true
    }

    /// The earliest mapping that covers `frame`, as a search of every mapping in the order they were made
    /// would find it.
    func first(containing frame: UInt64) -> Mapping? {
        let range = ranges.first { $0.contains(frame) }
        guard let one = single[frame] else { return range }
        guard let range else { return one }
        return one.seq < range.seq ? one : range
    }
}
