#if canImport(Glibc)
import Glibc
#endif

/// An exclusive `flock` on a directory, held until this object goes away. Writers of a bundle hold one on
/// the bundle (or its staging directory) for as long as they write, so that two never write one bundle,
/// and a directory whose lock is free while it still looks half-written was left by a writer that died.
final class DirectoryLock {
    private let fd: Int32

    /// Opens `path` (a directory, not through a symlink) and locks it.
    ///
    /// - Parameter wait: block until the lock is free; otherwise fail at once when another process holds it.
    /// - Returns: nil when `wait` is false and another process holds the lock.
    init?(_ path: String, wait: Bool) throws(TraceError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw TraceError.io(path: path, reason: FileDescriptor.errnoText()) }
        var tries = 0
        while flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0 {
            if errno == EINTR { continue }
            let busy = errno == EWOULDBLOCK
            // A lock this process just let go of can still be held for an instant by a child another thread
            // forked before the descriptor was closed (it shares the lock until its exec closes the copy):
            // a writer that really holds the lock holds it far longer than these few milliseconds.
            if busy && tries < Self.busyRetries {
                tries += 1
                usleep(Self.busyRetryMicroseconds)
                continue
            }
            let reason = FileDescriptor.errnoText()
            close(fd)
            if busy { return nil }
            throw TraceError.io(path: path, reason: "cannot lock: \(reason)")
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// How often, and how long apart, a busy lock is tried again before it counts as another writer's.
    static let busyRetries = 20
    static let busyRetryMicroseconds: UInt32 = 5_000

    /// Flushes the directory's entries to disk (after a rename inside it).
    func sync() { fsync(fd) }
}
