import CSQLite
import TraceFormat
import Query

/// The entry point SQLite looks for in `libsevtrace.so` (`sqlite3_` + the file's name + `_init`):
/// `.load libsevtrace` in the sqlite3 shell, `connection.load_extension("libsevtrace")` in Python.
@_cdecl("sqlite3_sevtrace_init")
public func sqlite3_sevtrace_init(_ db: OpaquePointer?, _ errorMessage: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                                  _ api: OpaquePointer?) -> Int32 {
    guard let db else { return SQLITE_ERROR }
    // SQLite unloads this library when the connection closes: no decoding thread may outlive it.
    ChunkPrefetcher.threaded = false
    guard let message = SQLiteExtension.load(into: db) else { return SQLITE_OK }
    if let errorMessage {
        let bytes = Array(message.utf8CString)
        let p = sqlite3_malloc(Int32(bytes.count))!.assumingMemoryBound(to: CChar.self)
        for (i, b) in bytes.enumerated() { p[i] = b }
        errorMessage.pointee = p
    }
    return SQLITE_ERROR
}
