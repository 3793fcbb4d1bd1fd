import CSQLite

/// The plumbing every virtual table of the query layer shares: declaring the columns and keeping the
/// table's owner, cursors holding a Swift object, and error messages SQLite frees itself.
enum VirtualTable {
    /// xConnect: declares `columns` and makes a table that keeps `aux` (the registration's owner).
    static func connect(_ db: OpaquePointer?, columns: [String], aux: UnsafeMutableRawPointer?,
                        _ ppVtab: UnsafeMutablePointer<UnsafeMutablePointer<sqlite3_vtab>?>?) -> Int32 {
        let rc = sqlite3_declare_vtab(db, "CREATE TABLE x(" + columns.joined(separator: ", ") + ")")
        guard rc == SQLITE_OK else { return rc }
        let vt = UnsafeMutablePointer<sevtrace_vtab>.allocate(capacity: 1)
        vt.initialize(to: sevtrace_vtab())
        vt.pointee.owner = aux
        ppVtab!.pointee = UnsafeMutableRawPointer(vt).assumingMemoryBound(to: sqlite3_vtab.self)
        return SQLITE_OK
    }

    /// xDisconnect.
    static func disconnect(_ vtab: UnsafeMutablePointer<sqlite3_vtab>?) -> Int32 {
        UnsafeMutableRawPointer(vtab!).assumingMemoryBound(to: sevtrace_vtab.self).deallocate()
        return SQLITE_OK
    }

    /// The object the table keeps (not retained: the registration owns it).
    static func owner<Owner: AnyObject>(_ vtab: UnsafeMutablePointer<sqlite3_vtab>, as: Owner.Type) -> Owner {
        let vt = UnsafeMutableRawPointer(vtab).assumingMemoryBound(to: sevtrace_vtab.self)
        return Unmanaged<Owner>.fromOpaque(vt.pointee.owner!).takeUnretainedValue()
    }

    /// xOpen: a cursor holding `state`.
    static func open<State: AnyObject>(_ state: State, _ ppCursor: UnsafeMutablePointer<UnsafeMutablePointer<sqlite3_vtab_cursor>?>?) -> Int32 {
        let cur = UnsafeMutablePointer<sevtrace_vtab_cursor>.allocate(capacity: 1)
        cur.initialize(to: sevtrace_vtab_cursor())
        cur.pointee.state = Unmanaged.passRetained(state).toOpaque()
        ppCursor!.pointee = UnsafeMutableRawPointer(cur).assumingMemoryBound(to: sqlite3_vtab_cursor.self)
        return SQLITE_OK
    }

    /// xClose: releases the cursor's state.
    static func close<State: AnyObject>(_ cursor: UnsafeMutablePointer<sqlite3_vtab_cursor>?, as: State.Type) -> Int32 {
        let cur = UnsafeMutableRawPointer(cursor!).assumingMemoryBound(to: sevtrace_vtab_cursor.self)
        Unmanaged<State>.fromOpaque(cur.pointee.state!).release()
        cur.deallocate()
        return SQLITE_OK
    }

    /// The state a cursor holds.
    static func state<State: AnyObject>(_ p: UnsafeMutablePointer<sqlite3_vtab_cursor>, as: State.Type) -> State {
        let cur = UnsafeMutableRawPointer(p).assumingMemoryBound(to: sevtrace_vtab_cursor.self)
        return Unmanaged<State>.fromOpaque(cur.pointee.state!).takeUnretainedValue()
    }

    /// Calls `body` with the state a cursor holds, without retaining it (the cursor does): what the
    /// callbacks SQLite makes for every row use, where a retain and release per call would dominate.
    @inline(__always)
    static func withState<State: AnyObject, R>(_ p: UnsafeMutablePointer<sqlite3_vtab_cursor>, as: State.Type,
                                               _ body: (State) -> R) -> R {
        let cur = UnsafeMutableRawPointer(p).assumingMemoryBound(to: sevtrace_vtab_cursor.self)
        return Unmanaged<State>.fromOpaque(cur.pointee.state!)._withUnsafeGuaranteedRef(body)
    }

    /// Sets the table's error message, in memory SQLite frees.
    static func setError(_ vtab: UnsafeMutablePointer<sqlite3_vtab>, _ message: String) {
        sqlite3_free(vtab.pointee.zErrMsg)
        let bytes = Array(message.utf8)
        let p = sqlite3_malloc(Int32(bytes.count + 1))!.assumingMemoryBound(to: CChar.self)
        for (i, b) in bytes.enumerated() { p[i] = CChar(bitPattern: b) }
        p[bytes.count] = 0
        vtab.pointee.zErrMsg = p
    }
}
