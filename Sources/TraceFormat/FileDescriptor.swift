#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An owning wrapper around a POSIX file descriptor, closed on deinit.
final class FileDescriptor {
    let fd: Int32
    let path: String

    /// Opens `path` for reading.
    static func openForReading(_ path: String) throws(TraceError) -> FileDescriptor {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TraceError.io(path: path, reason: Self.errnoText()) }
        return FileDescriptor(fd: fd, path: path)
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
