import Foundation

/// Python 3 as the tests use it to run the tools of the field (SARIF validators, jsonschema, DuckDB):
/// whether a module is installed, and running a script.
public enum PythonTool {
    /// Whether `python3 -c source` succeeds: the test-only modules `source` imports are installed.
    public static func can(_ source: String) -> Bool {
        (try? run(source, []).status) == 0
    }

    /// A Python 3 whose `sqlite3` module can load extensions (some builds leave that out; Debian's has
    /// it), or nil.
    public static let withLoadableSQLite: String? = {
        let probe = "import sqlite3; sqlite3.connect(':memory:').enable_load_extension(True)"
        return ["python3", "/usr/bin/python3"].first { (try? run(probe, [], interpreter: $0).status) == 0 }
    }()

    /// Runs a Python script with arguments in `directory`; returns its status, standard output and error.
    /// `interpreter` is looked up on the PATH unless it is a path.
    public static func run(_ source: String, _ arguments: [String], in directory: String? = nil,
                           interpreter: String = "python3") throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [interpreter, "-c", source] + arguments
        if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, o, e)
    }
}
