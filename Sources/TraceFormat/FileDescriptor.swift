#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An owning wrapper around a POSIX file descriptor, closed on deinit.
final class FileDescriptor {
    let fd: Int32
    let path: String

    /// Opens the regular file `path` for reading; a symlink, FIFO, device or directory is refused
    /// (without blocking on a FIFO).
    static func openForReading(_ path: String) throws(TraceError) -> FileDescriptor {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else {
            throw TraceError.io(path: path, reason: errno == ELOOP ? "is a symbolic link; traces hold only regular files" : Self.errnoText())
        }
        let file = FileDescriptor(fd: fd, path: path)
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw TraceError.io(path: path, reason: Self.errnoText()) }
        guard st.st_mode & S_IFMT == S_IFREG else { throw TraceError.io(path: path, reason: "is not a regular file") }
        return file
    }

    /// Whether `path` exists, and if so whether it is a regular file (not a symlink, FIFO or directory).
    static func kind(of path: String) -> (exists: Bool, regular: Bool) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return (false, false) }
        return (true, st.st_mode & S_IFMT == S_IFREG)
    }

    /// Creates (or truncates) `path` for writing.
    static func create(_ path: String) throws(TraceError) -> FileDescriptor {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TraceError.io(path: path, reason: Self.errnoText()) }
        return FileDescriptor(fd: fd, path: path)
    }

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    /// The file's size in bytes.
    func size() throws(TraceError) -> UInt64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw TraceError.io(path: path, reason: Self.errnoText()) }
        return UInt64(st.st_size)
    }

    /// Reads up to `count` bytes at `offset`; fewer only at the end of the file.
    func read(count: Int, at offset: UInt64) throws(TraceError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        let fd = self.fd
        while done < count {
            let n = out.withUnsafeMutableBytes { buf in
                pread(fd, buf.baseAddress! + done, count - done, off_t(offset) + off_t(done))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw TraceError.io(path: path, reason: Self.errnoText())
            }
            if n == 0 { break }
            done += n
        }
        if done < count { out.removeSubrange(done...) }
        return out
    }

    /// Writes all of `bytes` at the current position.
    func write(_ bytes: [UInt8]) throws(TraceError) {
        var done = 0
        let fd = self.fd
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { buf in Glibc.write(fd, buf.baseAddress! + done, bytes.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw TraceError.io(path: path, reason: Self.errnoText())
            }
            done += n
        }
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}
