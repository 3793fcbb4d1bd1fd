import Foundation
import TestSupport
import Testing

/// What is left when `record`, `analyze` and `reindex` fail, race or are killed: the old bundle, a
/// valid new one, or a partial one that `reindex --salvage` turns into a valid bundle; never a bundle
/// that verifies with wrong content.
@Suite(.serialized)
struct CrashConsistencyTests {
    typealias CLI = CommandLineTests

    /// A scenario whose recording takes a second or two: a guest spinning `loops` times.
    static func spinner(_ loops: Int) -> String {
        """
        vm guest memory=4M
        program guest at=0x100000
            mov r10, \(loops)
        spin:
            sub r10, 1
            jnz r10, spin
            hlt
        end
        launch guest
        secret guest 0x180000 key hex="01 02 03 04 05 06 07 08"
        run guest
        hv read guest 0x180000 8
        """
    }

    static func bytes(_ path: String) -> Data? { try? Data(contentsOf: URL(fileURLWithPath: path)) }

    /// Starts the executable and returns the running process.
    static func start(_ args: [String], in dir: String) throws -> Process {
        let p = Process()
        p.executableURL = CLI.executable
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    @Test("a failed re-record keeps the old bundle as it was, and leaves nothing beside it")
    func failedRerecord() throws {
        let s = CLI.Scratch()
        #expect(try CLI.run(["record", "-o", "a.sevtrace"], in: s.path).status == 0)
        let old = Self.bytes(s.path + "/a.sevtrace/events.zst")
        try "vm guest\nrun nobody\n".write(toFile: s.path + "/bad.sev", atomically: true, encoding: .utf8)
        let r = try CLI.run(["record", "bad.sev", "-o", "a.sevtrace"], in: s.path)
        #expect(r.status == 2)
        #expect(Self.bytes(s.path + "/a.sevtrace/events.zst") == old)
        #expect(try CLI.run(["verify", "a.sevtrace"], in: s.path).status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.path).sorted() == ["a.sevtrace", "bad.sev"])
        // A limit hit mid-run is a failure like any other.
        let limited = try CLI.run(["record", "-o", "a.sevtrace", "--max-events", "1000"], in: s.path)
        #expect(limited.status == 2)
        #expect(limited.stderr.contains("--max-events"))
        #expect(Self.bytes(s.path + "/a.sevtrace/events.zst") == old)
    }

    @Test("a second recorder on the same -o is refused while the first writes; the first succeeds")
    func concurrentRecorders() throws {
        let s = CLI.Scratch()
        try Self.spinner(400_000).write(toFile: s.path + "/spin.sev", atomically: true, encoding: .utf8)
        let first = try Self.start(["record", "spin.sev", "-o", "x.sevtrace", "--no-analyze"], in: s.path)
        while !FileManager.default.fileExists(atPath: s.path + "/x.sevtrace.tmp") && first.isRunning { usleep(2000) }
        let second = try CLI.run(["record", "spin.sev", "-o", "x.sevtrace", "--no-analyze"], in: s.path)
        first.waitUntilExit()
        #expect(second.status == 2)
        #expect(second.stderr.contains("another sev-trace is writing this bundle"), "\(second.stderr)")
        #expect(first.terminationStatus == 0)
        #expect(try CLI.run(["analyze", "x.sevtrace"], in: s.path).status == 0)
        #expect(try CLI.run(["verify", "x.sevtrace"], in: s.path).status == 0)
    }

    @Test("record killed at seeded moments leaves the old bundle intact and a partial one that salvages")
    func killedRecord() throws {
        let s = CLI.Scratch()
        try Self.spinner(300_000).write(toFile: s.path + "/spin.sev", atomically: true, encoding: .utf8)
        #expect(try CLI.run(["record", "-o", "k.sevtrace"], in: s.path).status == 0)
        let old = Self.bytes(s.path + "/k.sevtrace/events.zst")
        #expect(try CLI.run(["record", "spin.sev", "-o", "full.sevtrace", "--chunk-bytes", "4096"], in: s.path).status == 0)
        let complete = Self.bytes(s.path + "/full.sevtrace/events.zst")
        var rng = SplitMix(seed: 7)
        var salvaged = 0
        for round in 0..<6 {
            let delay = 20_000 + rng.next() % 1_500_000
            let p = try Self.start(["record", "spin.sev", "-o", "k.sevtrace", "--chunk-bytes", "4096"], in: s.path)
            usleep(UInt32(delay))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            // The bundle at the target is the old one or the complete new one, and it verifies.
            let now = Self.bytes(s.path + "/k.sevtrace/events.zst")
            let isNew = try CLI.run(["diff", "k.sevtrace", "full.sevtrace"], in: s.path).status == 0
            #expect(now == old || isNew, "round \(round) after \(delay) µs")
            #expect(try CLI.run(["verify", "k.sevtrace"], in: s.path).status == 0, "round \(round)")
            guard FileManager.default.fileExists(atPath: s.path + "/k.sevtrace.tmp") else { continue }
            // A new recording is refused until the partial one is dealt with, and says how.
            let refused = try CLI.run(["record", "spin.sev", "-o", "k.sevtrace"], in: s.path)
            #expect(refused.status == 2 && refused.stderr.contains("reindex --salvage"), "\(refused.stderr)")
            let header = Self.bytes(s.path + "/k.sevtrace.tmp/events.zst")?.count ?? 0
            let saved = try CLI.run(["reindex", "--salvage", "k.sevtrace.tmp", "-o", "saved\(round).sevtrace"], in: s.path)
            if saved.status == 0 {
                salvaged += 1
                #expect(try CLI.run(["verify", "saved\(round).sevtrace"], in: s.path).status == 0)
                // What was salvaged is a prefix of the complete recording.
                let part = Self.bytes(s.path + "/saved\(round).sevtrace/events.zst") ?? Data()
                #expect(complete?.prefix(part.count) == part, "round \(round)")
                #expect(!FileManager.default.fileExists(atPath: s.path + "/k.sevtrace.tmp"))
            } else {
                // Killed before the file header was whole: nothing to keep, and the error says so.
                #expect(header < 64 && saved.stderr.hasPrefix("error: "), "round \(round): \(saved.stderr)")
                try FileManager.default.removeItem(atPath: s.path + "/k.sevtrace.tmp")
            }
        }
        #expect(Self.bytes(s.path + "/k.sevtrace/events.zst") != nil)
        _ = salvaged
    }

    @Test("analyze and reindex killed at seeded moments leave the index as it was, which still verifies",
          arguments: ["analyze", "reindex"])
    func killedIndexWriters(_ command: String) throws {
        let s = CLI.Scratch()
        try Self.spinner(200_000).write(toFile: s.path + "/spin.sev", atomically: true, encoding: .utf8)
        #expect(try CLI.run(["record", "spin.sev", "-o", "k.sevtrace"], in: s.path).status == 0)
        let findings = try CLI.run(["query", "k.sevtrace", Self.write(s, "SELECT count(*) AS n FROM findings;")], in: s.path).stdout
        var rng = SplitMix(seed: command == "analyze" ? 11 : 12)
        for round in 0..<5 {
            let delay = 10_000 + rng.next() % 800_000
            let p = try Self.start([command, "k.sevtrace"], in: s.path)
            usleep(UInt32(delay))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            let v = try CLI.run(["verify", "k.sevtrace"], in: s.path)
            #expect(v.status == 0, "round \(round) after \(delay) µs: \(v.stderr)")
            let now = try CLI.run(["query", "k.sevtrace", Self.write(s, "SELECT count(*) AS n FROM findings;")], in: s.path).stdout
            #expect(now == findings)
        }
        // A writer that was killed left at most its scratch index, which the next writer replaces.
        #expect(try CLI.run([command, "k.sevtrace"], in: s.path).status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.path + "/k.sevtrace").sorted() == ["events.zst", "index.sqlite"])
    }

    static func write(_ s: CLI.Scratch, _ sql: String) throws -> String {
        let path = s.path + "/q.sql"
        try sql.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
