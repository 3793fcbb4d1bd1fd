import Foundation

/// The committed traces under Traces/: the top-level ones, then detectors/ and conformance/.
public enum GoldenTraces {
    /// The repository's Traces directory, found from a test file's path (`#filePath`).
    public static func directory(from testFile: String) -> URL {
        URL(fileURLWithPath: testFile).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Traces")
    }

    /// Every bundle's path relative to `directory`, sorted within each folder.
    public static func bundles(in directory: URL) -> [String] {
        var out: [String] = []
        for sub in ["", "detectors/", "conformance/"] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path + "/" + sub)) ?? []
            out += names.filter { $0.hasSuffix(".sevtrace") }.sorted().map { sub + $0 }
        }
        return out
    }
}
