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
    }

    private init(unchecked path: String) { self.path = Self.normalized(path) }

    private static func normalized(_ path: String) -> String {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        return p
    }

    /// Makes an empty bundle directory at `path`, replacing a previous bundle there. Refuses to replace
    /// anything that is not a bundle.
    public static func create(at path: String) throws(TraceError) -> TraceBundle {
        let bundle = TraceBundle(unchecked: path)
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: bundle.path, isDirectory: &isDir) {
            let contents = (try? fm.contentsOfDirectory(atPath: bundle.path)) ?? []
            let known: Set<String> = ["events.zst", "index.sqlite", "index.sqlite.tmp"]
            guard isDir.boolValue, contents.allSatisfy(known.contains) else {
                throw TraceError.io(path: bundle.path, reason: "exists and is not a trace bundle; not replacing it")
            }
            do { try fm.removeItem(atPath: bundle.path) } catch {
                throw TraceError.io(path: bundle.path, reason: "cannot replace: \(error.localizedDescription)")
            }
        }
        do { try fm.createDirectory(atPath: bundle.path, withIntermediateDirectories: true) } catch {
            throw TraceError.io(path: bundle.path, reason: "cannot create: \(error.localizedDescription)")
        }
        return bundle
    }

    /// Deletes the bundle (used when recording fails, so nothing half-written stays behind).
    public func remove() { try? FileManager.default.removeItem(atPath: path) }

    /// Opens the events for reading.
    public func reader() throws(TraceError) -> TraceReader { try TraceReader(path: eventsPath) }

    /// Opens the index read-only.
    public func index() throws(TraceError) -> TraceIndex {
        guard FileManager.default.fileExists(atPath: indexPath) else {
            throw TraceError.badIndex(path: indexPath, reason: "missing (run `sev-trace reindex` to rebuild it from events.zst)")
        }
        return try TraceIndex(path: indexPath)
    }

    /// Opens the index for rewriting its findings.
    public func writableIndex() throws(TraceError) -> TraceIndex {
        guard FileManager.default.fileExists(atPath: indexPath) else {
            throw TraceError.badIndex(path: indexPath, reason: "missing (run `sev-trace reindex` to rebuild it from events.zst)")
        }
        return try TraceIndex(path: indexPath, writable: true)
    }

    /// Builds an index from `events.zst` at `destination` (default: the bundle's own index, replacing it).
    /// Findings are not events: the new index has none until the analyzer runs.
    @discardableResult
    public func rebuildIndex(at destination: String? = nil) throws -> String {
        let target = destination ?? indexPath
        let tmp = target + ".tmp"
        try? FileManager.default.removeItem(atPath: tmp)
        do {
            let reader = try self.reader()
            let builder = try IndexBuilder(path: tmp)
            var chunk = 0
            while let info = try reader.chunkInfo(chunk) {
                for e in try reader.events(of: info) { builder.observe(seq: e.seq, chunk: info.index, cycle: e.cycle, e.body) }
                builder.chunkWritten(info)
                chunk += 1
            }
            let last = try reader.allChunks().last
            try builder.finish(header: reader.header, eventCount: last.map { $0.lastSeq + 1 } ?? 0, chunkCount: chunk,
                               eventsBytes: last?.endOffset ?? 0)
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw error
        }
        try? FileManager.default.removeItem(atPath: target)
        try FileManager.default.moveItem(atPath: tmp, toPath: target)
        return target
    }
}
