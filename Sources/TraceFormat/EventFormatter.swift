/// One-line, human-readable renderings of events, shared by `dump`, `replay` and the `events` table: each
/// event's columns as its kind declares them (``EventSchema``).
public enum EventFormatter {
    /// A short name for the event's type.
    public static func typeName(_ b: EventBody) -> String { EventSchema.typeNames[EventSchema.ordinal(b)] }

    /// The VM an event concerns, if any.
    public static func vm(_ b: EventBody) -> UInt16? {
        switch b {
        case .memoryAccess(let a): a.vm == MemoryAccess.noVM ? nil : a.vm
        case .registerOp(let r): r.vm
        case .cbitChange(let c): c.vm
        case .nptChange(let n): n.vm
        case .vmCreated(let v): v.vm
        case .taintSource(let t): t.vm
        case .vcpuMode(let m): m.vm
        case .vcpuHalt(let h): h.vm
        case .vmRun(let v): v.vm
        case .vmExit(let x): x.vm
        case .handover(let h): h.vm
        case .ownerCheck(let o): o.vm
        case .kvmIoctl(let k): k.vm
        case .pspCommand, .cacheOp, .platformInfo: nil
        }
    }

    /// `r0`…`r15`, `latch` for the string-copy data path, `psp` and `psp-tek` for the firmware's data
    /// and transport paths, `host-copy` for the host's copies.
    public static func registerName(_ r: UInt8) -> String {
        switch r {
        case 16: "latch"
        case 17: "psp"
        case 18: "psp-tek"
        case 19: "host-copy"
        case 20...23: "ksave\(r - 20)"
        default: "r\(r)"
        }
    }

    static func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

    /// Everything about the event except its sequence number and cycle: the columns its kind declares
    /// (``EventSchema``), as `name=value`.
    public static func detail(_ e: TraceEvent) -> String {
        var line = TextLine()
        detail(e, into: &line)
        return line.string
    }

    /// Appends the event's detail to `line`: each `name=value` after a space, but for the first when
    /// `line` is empty.
    @inline(__always)
    public static func detail(_ e: TraceEvent, into line: inout TextLine) {
        EventSchema.kinds[EventSchema.ordinal(e.body)].detail(of: e, into: &line)
    }

    /// `#SEQ @CYCLE TYPE DETAIL`.
    public static func line(_ e: TraceEvent) -> String {
        var text = TextLine()
        line(e, into: &text)
        return text.string
    }

    /// Appends `#SEQ @CYCLE TYPE DETAIL` to `text`.
    public static func line(_ e: TraceEvent, into text: inout TextLine) {
        text.byte(UInt8(ascii: "#"))
        text.decimal(e.seq)
        text.ascii(" @")
        text.decimal(e.cycle)
        text.byte(UInt8(ascii: " "))
        text.ascii(typeName(e.body))
        detail(e, into: &text)  // each column after a space
    }
}
