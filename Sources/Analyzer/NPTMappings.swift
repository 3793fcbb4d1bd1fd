/// The nested-page-table mappings a trace made, asked which one mapped a frame first. A nested page fault
/// maps one page; creating a VM maps whole memslots; a trace can make millions of either, overlapping in
/// any order. Each frame's first mapping is kept in an ``IntervalMap``, so neither a lookup nor a new
/// mapping walks the others.
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

    /// Each frame's first mapping, as disjoint ranges of frames.
    private var frames = IntervalMap<Mapping>()

    /// Adds a mapping; returns how many ranges of frames it added to what is kept (none when every frame
    /// it maps was mapped before: the first mapping answers for a frame).
    @discardableResult
    mutating func add(_ m: Mapping) -> Int {
        let (end, overflow) = m.spaPage.addingReportingOverflow(m.pages)
        return frames.fill(m.spaPage, overflow ? .max : end, m)
    }

    /// The earliest mapping that covers `frame`, as a search of every mapping in the order they were made
    /// would find it.
    func first(containing frame: UInt64) -> Mapping? { frames.value(at: frame) }
}
