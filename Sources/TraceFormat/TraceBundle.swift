import Foundation

/// A trace on disk: the directory `NAME.sevtrace/` holding `events.zst` and `index.sqlite`.
public struct TraceBundle: Sendable {
    public let path: String

    public var eventsPath: String { path + "/events.zst" }
    public var indexPath: String { path + "/index.sqlite" }

    /// Names an existing bundle; fails when `path` holds no `events.zst`.
    public init(existing path: String) throws(TraceError) {
        self.path = Self.normalized(path)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: self.path, isDirectory: &isDir), isDir.boolValue else {
            throw TraceError.io(path: self.path, reason: "no such trace bundle")
        }
        guard FileManager.default.fileExists(atPath: eventsPath) else {
            throw TraceError.io(path: self.path, reason: "not a trace bundle (no events.zst)")
        }
        for file in [eventsPath, indexPath] {
            let kind = FileDescriptor.kind(of: file)
            if kind.exists && !kind.regular {
                throw TraceError.io(path: file, reason: "is not a regular file (a symlink, FIFO or directory); a bundle holds only regular files")
            }
        }
    }

    init(unchecked path: String) { self.path = Self.normalized(path) }

    static func normalized(_ path: String) -> String {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        return p
    }

    /// The files a bundle may hold: its two, and the index a writer is replacing them with.
    static let knownFiles: Set<String> = ["events.zst", "index.sqlite", "index.sqlite.tmp"]

    /// Opens the events for reading.
    public func reader() throws(TraceError) -> TraceReader { try TraceReader(path: eventsPath) }

    /// Opens the index read-only.
    /// - Parameter temporary: let queries make TEMP tables and views (in memory).
    public func index(temporary: Bool = false) throws(TraceError) -> TraceIndex {
        guard FileManager.default.fileExists(atPath: indexPath) else {
            throw TraceError.badIndex(path: indexPath, reason: "missing (run `sev-trace reindex` to rebuild it from events.zst)")
        }
        return try TraceIndex(path: indexPath, temporary: temporary)
    }

    /// Rewrites the index safely: `body` changes a copy, which replaces `index.sqlite` in one rename
    /// only when `body` returns. A writer killed half-way leaves the old index as it was. Only one writer
    /// at a time: another one fails at once.
    public func rewriteIndex(_ body: (TraceIndex) throws -> Void) throws {
        let lock = try writerLock()
        let tmp = indexPath + ".tmp"
        Self.removeIndexFiles(tmp)  // a killed writer's
        do {
            _ = try index()  // the current index must be sound before it is copied
            try FileManager.default.copyItem(atPath: indexPath, toPath: tmp)
            try body(try TraceIndex(path: tmp, writable: true))
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw error
        }
        try install(tmp, lock: lock)
    }

    /// Builds a new index from `events.zst` in place of the old one; `body` (the analysis) runs on it
    /// before it replaces the old one in one rename. Findings are not events: the new index has none
    /// until `body` adds them.
    public func rebuildIndex(_ body: (TraceIndex) throws -> Void = { _ in }) throws {
        let lock = try writerLock()
        let tmp = indexPath + ".tmp"
        Self.removeIndexFiles(tmp)
        do {
            try buildIndex(at: tmp)
            try body(try TraceIndex(path: tmp, writable: true))
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw error
        }
        try install(tmp, lock: lock)
    }

    /// Builds an index from `events.zst` at `destination`, which must not exist.
    public func buildIndex(at destination: String) throws {
        let reader = try self.reader()
        let builder = try IndexBuilder(path: destination)
        var chunk = 0
        while let info = try reader.chunkInfo(chunk) {
            for e in try reader.events(of: info) { builder.observe(seq: e.seq, chunk: info.index, cycle: e.cycle, e.body) }
            builder.chunkWritten(info)
            chunk += 1
        }
        let last = try reader.allChunks().last
        try builder.finish(header: reader.header, eventCount: last.map { $0.lastSeq + 1 } ?? 0, chunkCount: chunk,
                           eventsBytes: last?.endOffset ?? 0)
    }

    /// Removes a database file and any journal or WAL beside it (which SQLite would otherwise apply).
    static func removeIndexFiles(_ path: String) {
        for suffix in ["", "-journal", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    }

    /// The lock every writer of this bundle holds.
    func writerLock() throws(TraceError) -> DirectoryLock {
        guard let lock = try DirectoryLock(path, wait: false) else {
            throw TraceError.io(path: path, reason: "another sev-trace is writing this bundle")
        }
        return lock
    }

    private func install(_ tmp: String, lock: DirectoryLock) throws(TraceError) {
        if let fd = try? FileDescriptor.openForReading(tmp) { fsync(fd.fd) }
        guard rename(tmp, indexPath) == 0 else {
            let reason = FileDescriptor.errnoText()
            try? FileManager.default.removeItem(atPath: tmp)
            throw TraceError.io(path: indexPath, reason: "cannot replace: \(reason)")
        }
        lock.sync()
    }
}
