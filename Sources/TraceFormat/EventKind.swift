/// One kind of event, made from its ``EventDeclaration`` with the payload's type erased: its name in the
/// `events` table, how `events.zst` codes it and how a line of text shows it. (A class: the codec looks
/// kinds up per event, and a reference costs one retain where a struct of closures costs one per closure.)
public final class EventKind: Sendable {
    /// The kind's name, as the `events` table's `type` column gives it.
    public let name: String
    /// The tag that starts its events in `events.zst`; nil for the kinds ``EventCodec`` codes by hand.
    let tag: EventCodec.Tag?
    /// Writes the event's fields (after its tag and Δcycle).
    let encode: @Sendable (EventBody, inout ByteWriter, inout EventCodec.State) -> Void
    /// Reads an event's fields (after its tag and Δcycle).
    let decode: @Sendable (inout ByteReader, inout EventCodec.State) throws -> EventBody
    /// Writes the event's fields as `name=value` pairs, as its columns name them.
    let detail: @Sendable (TraceEvent, inout TextLine) -> Void

    init(name: String, tag: EventCodec.Tag?, encode: @escaping @Sendable (EventBody, inout ByteWriter, inout EventCodec.State) -> Void,
         decode: @escaping @Sendable (inout ByteReader, inout EventCodec.State) throws -> EventBody,
         detail: @escaping @Sendable (TraceEvent, inout TextLine) -> Void) {
        self.name = name
        self.tag = tag
        self.encode = encode
        self.decode = decode
        self.detail = detail
    }

    /// Everything about the event except its sequence number and cycle: each column its kind declares,
    /// as `name=value`, in the declared order, leaving out NULLs and the numbers whose names are shown.
    public func detail(of e: TraceEvent, into line: inout TextLine) { detail(e, &line) }
}
