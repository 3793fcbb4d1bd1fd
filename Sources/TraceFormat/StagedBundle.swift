import CFileSystem
import Foundation

/// A new bundle being written beside its final place, at `TARGET.tmp`, and moved into place in one
/// rename only when it is complete. An existing bundle at the target stays as it was until then, so a
/// failed or killed recording never loses it; what a killed writer leaves at `TARGET.tmp` can be
/// salvaged with `sev-trace reindex --salvage`.
public final class StagedBundle {
    /// Where the bundle will be.
    public let target: String
    /// The staging directory being written (a bundle in its own right once its index is written).
    public let staging: TraceBundle
    /// Held from creation until the bundle is committed or discarded.
    private var lock: DirectoryLock?
    private var done = false

    /// Makes the staging directory for a bundle at `path` and locks it.
    ///
    /// - Throws: ``TraceError/io(path:reason:)`` when `path` names no possible bundle (`.`, `..`, `/`),
    ///   holds something other than a bundle, another writer is writing it, or a writer that died left
    ///   its staging directory (which is kept for salvage).
    /// - Parameter suffix: what the staging directory's name adds to the target's (`.tmp` for a
    ///   recording; salvage uses another, since it may read from a recording's `.tmp`).
    public init(at path: String, suffix: String = ".tmp") throws(TraceError) {
        let target = TraceBundle.normalized(path)
        let last = target.split(separator: "/").last.map(String.init) ?? ""
        guard !last.isEmpty, last != ".", last != ".." else {
            throw TraceError.io(path: path, reason: "is not a name for a trace bundle (give a new directory name such as run.sevtrace)")
        }
        try Self.checkReplaceable(target)
        self.target = target
        let stagingPath = target + suffix
        let parent = Self.parent(of: target)
        if !FileManager.default.fileExists(atPath: parent) {
            do { try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true) } catch {
                throw TraceError.io(path: parent, reason: "cannot create: \(error.localizedDescription)")
            }
        }
        // The parent's lock makes "look at the staging directory, then make and lock it" one step.
        guard let parentLock = try DirectoryLock(parent, wait: true) else {
            throw TraceError.io(path: parent, reason: "cannot lock")
        }
        if mkdir(stagingPath, 0o755) != 0 {
            let reason = FileDescriptor.errnoText()
            guard errno == EEXIST else { throw TraceError.io(path: stagingPath, reason: "cannot create: \(reason)") }
            guard FileDescriptor.kind(of: stagingPath).exists, (try? DirectoryLock(stagingPath, wait: false)) == nil else {
                throw TraceError.io(path: stagingPath,
                                    reason: "holds what a writer that was stopped left behind: keep its complete chunks with `sev-trace reindex --salvage \(stagingPath) -o NEW.sevtrace` (which then removes it), or remove it")
            }
            throw TraceError.io(path: target, reason: "another sev-trace is writing this bundle (its staging directory \(stagingPath) is locked)")
        }
        guard let lock = try DirectoryLock(stagingPath, wait: false) else {
            throw TraceError.io(path: target, reason: "another sev-trace is writing this bundle")
        }
        self.lock = lock
        staging = TraceBundle(unchecked: stagingPath)
        withExtendedLifetime(parentLock) {}
    }

    deinit { if !done { discard() } }

    /// The directory that holds `target`.
    private static func parent(of target: String) -> String {
        let parent = (target as NSString).deletingLastPathComponent
        return parent.isEmpty ? "." : parent
    }

    /// Refuses a target that exists and is not a bundle (a file, or a directory holding anything else).
    private static func checkReplaceable(_ target: String) throws(TraceError) {
        let kind = FileDescriptor.kind(of: target)
        guard kind.exists else { return }
        var isDir: ObjCBool = false
        let contents = (try? FileManager.default.contentsOfDirectory(atPath: target)) ?? []
        guard FileManager.default.fileExists(atPath: target, isDirectory: &isDir), isDir.boolValue, !kind.regular,
              contents.allSatisfy(TraceBundle.knownFiles.contains) else {
            throw TraceError.io(path: target, reason: "exists and is not a trace bundle; not replacing it")
        }
    }

    /// Moves the complete staging directory into place, replacing an old bundle there in one atomic
    /// exchange, then deletes the old one.
    public func commit() throws(TraceError) {
        for file in [staging.eventsPath, staging.indexPath] {
            guard let fd = try? FileDescriptor.openForReading(file) else { continue }
            fsync(fd.fd)
        }
        let parentLock = try DirectoryLock(Self.parent(of: target), wait: true)
        // Checked again under the lock: what is replaced must still be a bundle.
        try Self.checkReplaceable(target)
        if FileDescriptor.kind(of: target).exists {
            guard cfs_exchange(staging.path, target) == 0 else {
                throw TraceError.io(path: target, reason: "cannot replace: \(FileDescriptor.errnoText())")
            }
            try? FileManager.default.removeItem(atPath: staging.path)  // now the old bundle
        } else {
            guard rename(staging.path, target) == 0 else {
                throw TraceError.io(path: target, reason: "cannot move the new bundle into place: \(FileDescriptor.errnoText())")
            }
        }
        parentLock?.sync()
        done = true
        lock = nil
    }

    /// Deletes the staging directory (a recording that failed).
    public func discard() {
        try? FileManager.default.removeItem(atPath: staging.path)
        done = true
        lock = nil
    }

    /// The bundle at the target, once committed.
    public var bundle: TraceBundle { TraceBundle(unchecked: target) }
}
