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
