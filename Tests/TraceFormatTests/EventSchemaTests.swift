import Foundation
import TestSupport
import Testing
@testable import TraceFormat

@Suite("The declared tables of events")
struct EventSchemaTests {
    static let traces = GoldenTraces.directory(from: #filePath)
    static let queriesReadme = traces.deletingLastPathComponent().appendingPathComponent("Queries/README.md")

    @Test("every table's row has a value per column, the same each column gives alone, and no row for another kind of event")
    func rowsMatchColumns() throws {
        var rows = [String: Int](uniqueKeysWithValues: EventSchema.tables.map { ($0.name, 0) })
        for name in GoldenTraces.bundles(in: Self.traces) {
            try TraceBundle(existing: Self.traces.appendingPathComponent(name).path).reader().forEachEvent { e in
                for table in EventSchema.tables {
                    let row = table.row(e)
                    if EventSchema.ordinal(e.body) != table.kind { #expect(row == nil, "\(table.name) #\(e.seq)") }
                    guard let row else { continue }
                    rows[table.name]! += 1
                    #expect(row.count == table.columns.count, "\(table.name)")
                    for (c, value) in zip(table.columns, row) {
                        #expect(c.value(e) == value, "\(table.name).\(c.name) #\(e.seq)")
                        #expect(value != .null || c.nullable, "\(table.name).\(c.name) #\(e.seq) is NULL")
                    }
                }
                return true
            }
        }
        // Otherwise the comparisons with the events (PushdownTests, `sev-trace verify`) would prove nothing.
        for (table, count) in rows { #expect(count > 0, "no golden trace has a row of \(table)") }
    }

    @Test("a line of text is the event's declared columns as name=value: numbers whose names are shown left out, NULLs and zero registers left out, text quoted when it holds a space",
          arguments: [
              (EventBody.kvmIoctl(KVMIoctl(vm: 1, command: 99, fd: -1, errno: 9, firmwareError: 0)),
               "kvm vm=1 command_name=?99 fd=-1 errno_name=EBADF"),
              (.cbitChange(CbitChange(vm: 0, vcpu: 1, gva: 0x200000, gpa: 0x200000, spa: 0x1200000, pteSPA: 0x13ff000, old: true, new: false)),
               "cbit vm=0 vcpu=1 gva=0x200000 gpa=0x200000 spa=0x1200000 pte_spa=0x13ff000 old_c=1 new_c=0"),
              (.vmExit(VMExit(vm: 0, vcpu: 0, exitCode: VMExit.hlt, exitInfo1: 0, exitInfo2: 0, rip: 0x1000, registers: [0, 7, 0, 0xff])),
               "vmexit vm=0 vcpu=0 exit_name=HLT exit_info1=0x0 exit_info2=0x0 rip=0x1000 r1=0x7 r3=0xff"),
              (.vmCreated(VMCreated(vm: 2, name: "my \"vm\"", asid: 3, policy: 5, memoryBytes: 4096, vcpus: 1, sev: true)),
               #"vm vm=2 platform=0 name="my \"vm\"" asid=3 policy=0x5 memory_bytes=4096 vcpus=1 sev=1"#),
              (.memoryAccess(MemoryAccess(actor: .vcpu(vm: 0, index: 1), vm: 0, asid: 1, kind: .write, gva: 0x10, gpa: 0x20, spa: 0x30,
                                          size: 4, cbit: true, reason: .guestPTE, register: 3, value: 0xab)),
               "mem actor=vcpu0.1 vm=0 asid=1 access=write gva=0x10 gpa=0x20 spa=0x30 size=4 cbit=1 reason=pte register=r3 value=0xab"),
              (.memoryAccess(MemoryAccess(actor: .device(2), vm: MemoryAccess.noVM, asid: 0, kind: .dmaRead, gva: 0, gpa: 0, spa: 0x30,
                                          size: 8, cbit: false, reason: .device)),
               "mem actor=dev2 asid=0 access=dma-read gva=0x0 gpa=0x0 spa=0x30 size=8 cbit=0 reason=device value=0x0"),
          ] as [(EventBody, String)])
    func lines(body: EventBody, expected: String) {
        #expect(EventFormatter.line(TraceEvent(seq: 7, cycle: 9, body: body)) == "#7 @9 " + expected)
    }

    @Test("every event of every golden trace prints as name=value pairs named after its kind's columns, in their order")
    func linesFollowColumns() throws {
        let columns: [Int: [String]] = [0: EventSchema.memoryAccess.columnNames]
            .merging(EventSchema.tables.map { ($0.kind, $0.columns.map(\.name)) }) { a, _ in a }
        for name in GoldenTraces.bundles(in: Self.traces) {
            try TraceBundle(existing: Self.traces.appendingPathComponent(name).path).reader().forEachEvent { e in
                let detail = EventFormatter.detail(e)
                guard let declared = columns[EventSchema.ordinal(e.body)] else {
                    Issue.record("no columns declared for \(EventFormatter.typeName(e.body))")
                    return false
                }
                var remaining = declared[...]
                for pair in detail.split(separator: " ") where pair.contains("=") && !pair.hasPrefix("\"") {
                    let key = String(pair.prefix { $0 != "=" })
                    guard let at = remaining.firstIndex(of: key) else {
                        Issue.record("\(name) #\(e.seq): \(key) is not a column of \(EventFormatter.typeName(e.body)), or out of order: \(detail)")
                        return false
                    }
                    remaining = remaining[(at + 1)...]
                }
                return true
            }
        }
    }

    @Test("signed fields stay signed: an ioctl on fd -1")
    func signedFields() throws {
        let e = TraceEvent(seq: 3, cycle: 4, body: .kvmIoctl(KVMIoctl(vm: 1, command: 99, fd: -1, errno: 9, firmwareError: 0)))
        let row = try #require(EventSchema.kvmIoctls.row(e))
        #expect(row == [.integer(3), .integer(4), .integer(1), .integer(99), .text("?99"), .integer(-1), .integer(9), .text("EBADF"),
                        .integer(0), .null])
    }

    @Test("each event type has its name, and the names are those the events table has always used")
    func typeNames() {
        #expect(EventSchema.typeNames == ["mem", "reg", "cbit", "npt", "psp", "vm", "secret", "mode", "halt", "vmrun", "vmexit",
                                          "handover", "owner", "kvm", "cache", "platform"])
        #expect(EventFormatter.typeName(.vcpuHalt(VCPURef(vm: 1, vcpu: 0))) == "halt")
        #expect(EventFormatter.typeName(.platformInfo(PlatformInfo(platform: 0, cbitPosition: 47, physAddrBits: 48, physAddrReduction: 5,
                                                                   minSEVASID: 1, maxSEVASID: 15, cores: 1, cacheBytes: 0,
                                                                   memoryEncryption: true, sme: false))) == "platform")
    }

    @Test("the stored tables are in the index schema with their declared columns and key")
    func storedTablesInSchema() throws {
        let db = try SQLiteDatabase(path: ":memory:", mode: .create)
        try db.execute(TraceIndex.schema)
        for table in EventSchema.stored {
            let info = try db.prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid")
            try info.bind([.text(table.name)])
            var have: [String] = []
            while try info.step() { have.append("\(info.text(0)) \(info.text(1)) \(info.int(2)) \(info.int(3))") }
            let want = table.columns.map { c in
                "\(c.name) \(c.type.rawValue) \(c.name == table.primaryKey || c.nullable ? 0 : 1) \(c.name == table.primaryKey ? 1 : 0)"
            }
            #expect(have == want, "\(table.name)")
        }
    }

    @Test("an index laid out differently but defining the same tables is accepted; a different definition is not")
    func schemaComparedByDefinition() throws {
        let relaid = try SQLiteDatabase(path: ":memory:", mode: .create)
        try relaid.execute(TraceIndex.schema.replacingOccurrences(of: ", ", with: ",\n        "))
        try relaid.execute("INSERT INTO meta VALUES ('format_version', '\(TraceHeader.formatVersion)')")
        #expect(try TraceIndex.schemaProblem(relaid) == nil)

        let changed = try SQLiteDatabase(path: ":memory:", mode: .create)
        try changed.execute(TraceIndex.schema.replacingOccurrences(of: "CREATE TABLE secrets(seq INTEGER PRIMARY KEY, vm INTEGER NOT NULL",
                                                                   with: "CREATE TABLE secrets(seq INTEGER PRIMARY KEY, vm TEXT NOT NULL"))
        try changed.execute("INSERT INTO meta VALUES ('format_version', '\(TraceHeader.formatVersion)')")
        #expect(try TraceIndex.schemaProblem(changed) == "table secrets is not defined as this tool defines it")
    }

    @Test("Queries/README.md documents every declared table and each of its columns")
    func documented() throws {
        let text = try String(contentsOf: Self.queriesReadme, encoding: .utf8)
        let sections = text.components(separatedBy: "\n### ")
        for table in EventSchema.tables {
            let section = sections.first { $0.prefix(while: { $0 != "\n" }).contains("`\(table.name)`") }
            #expect(section != nil, "no section for \(table.name)")
            guard let section else { continue }
            for c in table.columns where !(table.name == "vm_exits" && c.name.first == "r" && c.name.dropFirst().allSatisfy(\.isNumber)) {
                #expect(section.contains("`\(c.name)`"), "\(table.name).\(c.name) is not documented")
            }
            if table.name == "vm_exits" { #expect(section.contains("`r0`…`r15`")) }
        }
    }
}
