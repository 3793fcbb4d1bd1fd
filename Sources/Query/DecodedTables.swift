import CSQLite
import TraceFormat

/// The tables of one event kind each that are decoded from `events.zst` rather than stored in the index
/// (``EventSchema/decoded``: there are too many such events, an exit per I/O or interrupt, a register op
/// per instruction). Each is a shape of the `events` scan: constraints on `seq` (and `vm` where the table
/// has one) are pushed down, and only the chunks `event_counts` says hold such an event are read.
enum DecodedTables {
    static let shapes: [EventTableShape] = EventSchema.decoded.map(shape)

    /// The scan of `table`.
    static func shape(_ table: EventTable) -> EventTableShape {
        var pushed: [Int32: EventsTable.Pushed] = [:]
        if let seq = table.index(of: "seq") { pushed[Int32(seq)] = .seq }
        // The events' VM as the scan filters it (EventFormatter.vm) is the payload's `vm`.
        if let vm = table.index(of: "vm") { pushed[Int32(vm)] = .vm }
        let values = ContiguousArray(table.columns.map(\.value))
        return EventTableShape(name: table.name, columns: table.columns.map(\.name), type: EventSchema.typeNames[table.kind],
                               pushed: pushed, column: { e, i, ctx in
            ColumnResult.value(ctx, i < values.count ? values[i](e) ?? .null : .null)
        }, fill: table.fill)
    }
}
