import Foundation
import Scenario
import Testing
import TraceFormat
@testable import Query

/// `memory_at(seq, vm, gpa, length)` in SQL gives, row by row, what ``MemoryTimeTravel`` sees.
struct MemoryAtTests {
    static let bundle = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Traces/conformance/guest-states.sevtrace").path

    @Test("memory_at rows are the view's bytes, by VM name or number or by system physical address",
          arguments: [(UInt64(8000), UInt64(0x110000)), (7900, 0x100000), (9000, 0x130000)])
    func matchesTheView(seq: UInt64, gpa: UInt64) throws {
        let bundle = try TraceBundle(existing: Self.bundle)
        let engine = try QueryEngine(bundle: bundle)
        let view = try MemoryTimeTravel.view(bundle, at: seq, .gpa(vm: "guest", gpa), length: 32)
        let columns = "offset, address, spa, data, dram, cbit, last_write"
        let byName = try engine.run("SELECT \(columns) FROM memory_at(\(seq), 'guest', \(gpa), 32)")[0].rows
        let byNumber = try engine.run("SELECT \(columns) FROM memory_at(\(seq), 0, \(gpa), 32)")[0].rows
        let bySPA = try engine.run("SELECT \(columns) FROM memory_at(\(seq), NULL, \(view.spa[0]), 32)")[0].rows
        #expect(byName.count == 32 && byName == byNumber)
        for (i, row) in byName.enumerated() {
            let expected: [SQLiteValue] = [
                .integer(Int64(i)), .integer(Int64(gpa) + Int64(i)), .integer(Int64(view.spa[i])), .integer(Int64(view.data[i])),
                .integer(Int64(view.dram[i])), view.lastWrite[i] == nil ? .null : .integer(view.cbit[i] ? 1 : 0),
                view.lastWrite[i].map { .integer(Int64($0)) } ?? .null,
            ]
            #expect(row == expected, "byte \(i)")
            // By system physical address, the same bytes (the address column is then the spa).
            #expect(Array(bySPA[i][2...]) == Array(row[2...]))
        }
    }

    @Test("bad calls are errors that name memory_at and say what is wrong")
    func refusals() throws {
        let engine = try QueryEngine(bundle: try TraceBundle(existing: Self.bundle))
        for (sql, words) in [("SELECT * FROM memory_at(8000)", "give memory_at"), ("SELECT * FROM memory_at(8000, 'nobody', 0)", "no VM named"),
                             ("SELECT * FROM memory_at(8000, 'guest', 0, 0)", "length"), ("SELECT * FROM memory_at(-1, 'guest', 0)", "seq"),
                             ("SELECT * FROM memory_at(99999999, 'guest', 0)", "there is no event"), ("SELECT * FROM memory_at(1, 77, 0)", "no VM number 77")] {
            do {
                _ = try engine.run(sql)
                Issue.record("\(sql) ran")
            } catch {
                #expect("\(error)".contains("memory_at") && "\(error)".contains(words), "\(sql): \(error)")
            }
        }
    }
}
