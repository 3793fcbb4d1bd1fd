import Foundation

/// A fresh directory under the system's temporary directory, removed with everything in it when the
/// last reference goes away. For tests.
public final class TemporaryDirectory {
    /// The directory's path.
    public let path: String

    /// Creates the directory (`mkdtemp`).
    public init(prefix: String = "sev-trace-test") {
        var template = Array((NSTemporaryDirectory() + "/\(prefix)-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { fatalError("cannot create a temporary directory") }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
