import CSQLite
import Scenario
import TraceFormat

/// The `memory_at(seq, vm, gpa, length)` table-valued function: memory right after event `seq`, one row
/// per byte, as ``MemoryTimeTravel`` sees it. `vm` is a VM's name or number; with `vm` NULL, `gpa` is a
/// system physical address as the trace numbers them. `length` defaults to 16.
///
/// Columns: `offset`, `address` (the guest or system physical address of the byte), `spa`, `data` (as its
/// last writer wrote it), `dram` (what DRAM held), `cbit` and `last_write` (NULL for a byte never written).
enum MemoryAtTable {
    static let columns = ["offset", "address", "spa", "data", "dram", "cbit", "last_write"]
    static let arguments = ["seq", "vm", "gpa", "length"]

    /// One call's rows.
    final class Cursor {
        var view: MemoryTimeTravel.View?
        var base: UInt64 = 0
        var row = 0
        var count: Int { view?.data.count ?? 0 }
    }

    private nonisolated(unsafe) static let module: UnsafeMutablePointer<sqlite3_module> = {
        let m = UnsafeMutablePointer<sqlite3_module>.allocate(capacity: 1)
        m.initialize(to: sqlite3_module())
        m.pointee.xCreate = nil  // eponymous-only: called as a function, never created
        m.pointee.xConnect = { db, aux, _, _, ppVtab, _ in
            VirtualTable.connect(db, columns: MemoryAtTable.columns + MemoryAtTable.arguments.map { "\($0) HIDDEN" }, aux: aux, ppVtab)
        }
        m.pointee.xDisconnect = { vtab in VirtualTable.disconnect(vtab) }
        m.pointee.xBestIndex = { _, info in
            // Each argument given (an = constraint on its hidden column) becomes an xFilter argument, in
            // the arguments' order; idxNum says which were given.
            let info = info!
            var given: [Int32: Int] = [:]
            for i in 0..<Int(info.pointee.nConstraint) {
                let c = info.pointee.aConstraint[i]
                let argument = c.iColumn - Int32(MemoryAtTable.columns.count)
                guard argument >= 0, Int32(c.op) == SQLITE_INDEX_CONSTRAINT_EQ else { continue }
                if c.usable == 0 { return SQLITE_CONSTRAINT }
                given[argument] = i
            }
            var argv: Int32 = 0
            for argument in Int32(0)..<Int32(MemoryAtTable.arguments.count) {
                guard let i = given[argument] else { continue }
                argv += 1
                info.pointee.aConstraintUsage[i].argvIndex = argv
                info.pointee.aConstraintUsage[i].omit = 1
                info.pointee.idxNum |= 1 << argument
            }
            // Without seq and gpa the call fails in xFilter with a message; any plan that gives them wins.
            info.pointee.estimatedCost = given[0] != nil && given[2] != nil ? 1 : 1e12
            return SQLITE_OK
        }
        m.pointee.xOpen = { _, ppCursor in VirtualTable.open(Cursor(), ppCursor) }
        m.pointee.xClose = { cursor in VirtualTable.close(cursor, as: Cursor.self) }
        m.pointee.xFilter = { cursor, idxNum, _, argc, argv in
            let c = MemoryAtTable.cursor(cursor!)
            let source = VirtualTable.owner(cursor!.pointee.pVtab!, as: EventsTable.Source.self)
            var values: [Int32: OpaquePointer] = [:]
            var next = 0
            for argument in Int32(0)..<Int32(MemoryAtTable.arguments.count) where idxNum & (1 << argument) != 0 && next < Int(argc) {
                values[argument] = argv![next]
                next += 1
            }
            c.view = nil
            c.row = 0
            do {
                c.view = try MemoryAtTable.view(values, source)
                c.base = c.view?.gpa ?? c.view?.spa.first ?? 0
            } catch {
                VirtualTable.setError(cursor!.pointee.pVtab, "memory_at: \(error)")
                return SQLITE_ERROR
            }
            return SQLITE_OK
        }
        m.pointee.xNext = { cursor in
            MemoryAtTable.cursor(cursor!).row += 1
            return SQLITE_OK
        }
        m.pointee.xEof = { cursor in
            let c = MemoryAtTable.cursor(cursor!)
            return c.row >= c.count ? 1 : 0
        }
        m.pointee.xRowid = { cursor, rowid in
            rowid!.pointee = Int64(MemoryAtTable.cursor(cursor!).row)
            return SQLITE_OK
        }
        m.pointee.xColumn = { cursor, ctx, column in
            let c = MemoryAtTable.cursor(cursor!)
            guard let v = c.view else {
                sqlite3_result_null(ctx)
                return SQLITE_OK
            }
            let i = c.row
            func int(_ n: UInt64) { sqlite3_result_int64(ctx, Int64(bitPattern: n)) }
            switch column {
            case 0: int(UInt64(i))
            case 1: int(c.base &+ UInt64(i))
            case 2: int(v.spa[i])
            case 3: int(UInt64(v.data[i]))
            case 4: int(UInt64(v.dram[i]))
            case 5: if v.lastWrite[i] == nil { sqlite3_result_null(ctx) } else { int(v.cbit[i] ? 1 : 0) }
            case 6: if let w = v.lastWrite[i] { int(w) } else { sqlite3_result_null(ctx) }
            default: sqlite3_result_null(ctx)  // the arguments' hidden columns
            }
            return SQLITE_OK
        }
        return m
    }()

    struct ArgumentError: Error, CustomStringConvertible { let description: String }

    /// The view the arguments ask for.
    static func view(_ values: [Int32: OpaquePointer], _ source: EventsTable.Source) throws -> MemoryTimeTravel.View {
        func integer(_ argument: Int32, _ name: String) throws -> UInt64? {
            guard let v = values[argument], sqlite3_value_type(v) != SQLITE_NULL else { return nil }
            guard sqlite3_value_type(v) == SQLITE_INTEGER, sqlite3_value_int64(v) >= 0 else {
                throw ArgumentError(description: "\(name) must be a non-negative integer")
            }
            return UInt64(sqlite3_value_int64(v))
        }
        guard let seq = try integer(0, "seq"), let address = try integer(2, "gpa") else {
            throw ArgumentError(description: "give memory_at(seq, vm, gpa[, length])")
        }
        let length = try integer(3, "length") ?? 16
        guard length >= 1 && length <= UInt64(MemoryTimeTravel.maxLength) else {
            throw ArgumentError(description: "length must be 1 to \(MemoryTimeTravel.maxLength)")
        }
        var place = MemoryTimeTravel.Place.spa(address)
        if let v = values[1], sqlite3_value_type(v) != SQLITE_NULL {
            if sqlite3_value_type(v) == SQLITE_INTEGER {
                // A VM's number: its name from the index.
                let id = sqlite3_value_int64(v)
                let stmt = try SQLiteStatementHandle(source.db, "SELECT name FROM vms WHERE vm = ?1")
                sqlite3_bind_int64(stmt.handle, 1, id)
                guard sqlite3_step(stmt.handle) == SQLITE_ROW, let text = sqlite3_column_text(stmt.handle, 0) else {
                    throw ArgumentError(description: "no VM number \(id) in the trace")
                }
                place = .gpa(vm: String(cString: text), address)
            } else if let text = sqlite3_value_text(v) {
                place = .gpa(vm: String(cString: text), address)
            }
        }
        return try MemoryTimeTravel.view(source.bundle, at: seq, place, length: Int(length))
    }

    /// A statement finalized when it goes.
    final class SQLiteStatementHandle {
        let handle: OpaquePointer
        init(_ db: OpaquePointer, _ sql: String) throws {
            var stmt: OpaquePointer?
            guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK, let stmt else {
                throw ArgumentError(description: String(cString: sqlite3_errmsg(db)))
            }
            handle = stmt
        }
        deinit { sqlite3_finalize(handle) }
    }

    static func cursor(_ p: UnsafeMutablePointer<sqlite3_vtab_cursor>) -> Cursor { VirtualTable.state(p, as: Cursor.self) }

    /// Registers the function on a connection whose events table reads `source`'s bundle.
    static func register(handle: OpaquePointer, source: EventsTable.Source) throws {
        let aux = Unmanaged.passRetained(source).toOpaque()
        let rc = sqlite3_create_module_v2(handle, "memory_at", module, aux) { p in
            Unmanaged<EventsTable.Source>.fromOpaque(p!).release()
        }
        guard rc == SQLITE_OK else { throw SQLiteError(code: rc, message: "cannot register memory_at") }
    }
}
