/// One kind of event as ``EventSchema`` declares it: the payload `P` its events carry, its fields in the
/// order `events.zst` codes them (with `seq` and `cycle` where its table shows them), and how its payload
/// is taken from an event and put back. The codec, the lines of text and the SQL tables of the kind are
/// all made from this one list.
public struct EventDeclaration<P: Sendable>: Sendable {
    let fields: [EventField<P>]
    /// The payload decoding starts from, each coded field then overwritten.
    let blank: P
    let extract: @Sendable (EventBody) -> P?
    let embed: @Sendable (P) -> EventBody

    /// A kind whose fields are `fields`, in coding order. (Inlined where each kind is declared, so that its
    /// closures work on the concrete payload rather than through generic value witnesses.)
    @inline(__always)
    init(_ blank: P, _ fields: [EventField<P>], extract: @escaping @Sendable (EventBody) -> P?,
         embed: @escaping @Sendable (P) -> EventBody) {
        self.blank = blank
        self.fields = fields
        self.extract = extract
        self.embed = embed
    }

    /// Every column, in declaration order.
    var columns: [EventColumn<P>] { fields.flatMap(\.columns) }

    /// The names of the columns, in declaration order.
    public var columnNames: [String] { columns.map(\.name) }

    /// The columns' values for an event of the kind, nil for an event of another.
    public func row(_ e: TraceEvent) -> [SQLiteValue]? {
        guard let p = extract(e.body) else { return nil }
        return columns.map { $0.value(e, p) }
    }

    /// The kind with its name and tag, its payload's type erased. `tag` is nil for the kinds
    /// ``EventCodec`` codes by hand, whose fields then carry no coding.
    func kind(_ name: String, tag: EventCodec.Tag?) -> EventKind {
        let coded = fields.filter(\.isCoded)
        precondition(tag != nil || coded.isEmpty, "\(name) is coded by hand, not by its declaration")
        // The fields' codings chained into one closure each way: calling through captured closures costs
        // no reference counting, where walking an array of fields retains each one it visits.
        let encodeAll = coded.reduce({ _, _, _ in } as EventField<P>.Encode) { before, field in
            let encode = field.encode!
            return { p, w, state in
                before(&p, &w, &state)
                encode(&p, &w, &state)
            }
        }
        let decodeAll = coded.reduce({ _, _, _ in } as EventField<P>.Decode) { before, field in
            let decode = field.decode!
            return { p, r, state in
                try before(&p, &r, &state)
                try decode(&p, &r, &state)
            }
        }
        let listAll = columns.reduce({ _, _, _ in } as @Sendable (TraceEvent, P, inout TextLine) -> Void) { before, column in
            { e, p, line in
                before(e, p, &line)
                column.list(e, p, into: &line)
            }
        }
        let (blank, extract, embed) = (blank, extract, embed)
        return EventKind(name: name, tag: tag, encode: { body, w, state in
            guard var p = extract(body) else { return }
            encodeAll(&p, &w, &state)
        }, decode: { r, state in
            var p = blank
            try decodeAll(&p, &r, &state)
            return embed(p)
        }, detail: { e, line in
            guard let p = extract(e.body) else { return }
            listAll(e, p, &line)
        })
    }
}
