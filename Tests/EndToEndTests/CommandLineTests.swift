import Foundation
import Scenario
import TestSupport
import Testing

/// The `sev-trace` executable, run as a user runs it.
@Suite(.serialized)
struct CommandLineTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The built executable, beside the test bundle.
    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("sev-trace")
    }

    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    @discardableResult
    static func run(_ args: [String], in dir: String, input: String? = nil) throws -> Run {
        let p = Process()
        p.executableURL = executable
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        let stdin = Pipe()
        p.standardInput = input == nil ? FileHandle.nullDevice : stdin
        try p.run()
        if let input {
            stdin.fileHandleForWriting.write(Data(input.utf8))
            try stdin.fileHandleForWriting.close()
        }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                   stderr: String(decoding: e, as: UTF8.self))
    }

    typealias Scratch = TemporaryDirectory

    @Test("the executable is built")
    func built() {
        #expect(FileManager.default.isExecutableFile(atPath: Self.executable.path))
    }

    @Test("record, query, replay and verify the default scenario; two processes record identical bytes")
    func mainJob() throws {
        let s = Scratch()
        let rec = try Self.run(["record"], in: s.path)
        #expect(rec.status == 0, "\(rec.stderr)")
        #expect(rec.stdout.contains("PRIVATE_TO_SHARED"))
        #expect(rec.stdout.contains("trace: default.sevtrace"))
        let leaks = Self.root.appendingPathComponent("Queries/leaks.sql").path
        let q = try Self.run(["query", "default.sevtrace", leaks], in: s.path)
        #expect(q.status == 0 && q.stdout.contains("PRIVATE_TO_DMA"))
        let json = try Self.run(["query", "default.sevtrace", leaks, "--format", "json"], in: s.path)
        #expect(json.status == 0)
        #expect((try? JSONSerialization.jsonObject(with: Data(json.stdout.utf8))) is [[String: Any]])
        let replay = try Self.run(["replay", "default.sevtrace"], in: s.path)
        #expect(replay.status == 0 && replay.stdout.hasPrefix("identical"))
        #expect(try Self.run(["verify", "default.sevtrace"], in: s.path).status == 0)
        #expect(try Self.run(["record", "-o", "again.sevtrace"], in: s.path).status == 0)
        let a = try Data(contentsOf: URL(fileURLWithPath: s.path + "/default.sevtrace/events.zst"))
        let b = try Data(contentsOf: URL(fileURLWithPath: s.path + "/again.sevtrace/events.zst"))
        #expect(a == b)
        let dump = try Self.run(["dump", "default.sevtrace", "--from", "2", "--count", "3"], in: s.path)
        #expect(dump.stdout.split(separator: "\n").map { $0.prefix(3) } == ["#2 ", "#3 ", "#4 "])
    }

    @Test("a 4-VM × 2-vCPU scenario records identically in two processes, and differently under another seed")
    func smpAcrossProcesses() throws {
        let s = Scratch()
        let scenario = Self.root.appendingPathComponent("Traces/scenarios/smp.sev").path
        for (name, seed) in [("one", "1"), ("two", "1"), ("three", "3")] {
            let r = try Self.run(["record", scenario, "-o", name + ".sevtrace", "--seed", seed, "--no-analyze"], in: s.path)
            #expect(r.status == 0, "\(r.stderr)")
        }
        let bytes = { (n: String) in try Data(contentsOf: URL(fileURLWithPath: s.path + "/\(n).sevtrace/events.zst")) }
        #expect(try bytes("one") == bytes("two"))
        #expect(try bytes("one") != bytes("three"))
        #expect(try Self.run(["replay", "three.sevtrace"], in: s.path).status == 0)
    }

    @Test("a flipped byte in a chunk makes verify and dump fail with one line naming the chunk")
    func corruptChunk() throws {
        let s = Scratch()
        try Self.run(["record"], in: s.path)
        let path = s.path + "/default.sevtrace/events.zst"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count - 40] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: path))
        let v = try Self.run(["verify", "default.sevtrace"], in: s.path)
        #expect(v.status == 1)
        #expect(v.stderr.hasPrefix("error: chunk 0 at offset "))
        #expect(v.stderr.split(separator: "\n").count == 1)
        let d = try Self.run(["dump", "default.sevtrace"], in: s.path)
        #expect(d.status != 0 && d.stderr.hasPrefix("error: chunk 0"))
        // The events table is exported straight from the trace: the same one line, and no file left behind.
        let x = try Self.run(["export", "default.sevtrace", "--table", "events", "-o", "events.csv"], in: s.path)
        #expect(x.status == 2 && x.stderr.hasPrefix("error: chunk 0") && x.stderr.split(separator: "\n").count == 1, "\(x.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.path).allSatisfy { !$0.hasPrefix("events.csv") && !$0.hasSuffix(".partial") })
    }

    @Test("a misspelled instruction is reported as FILE:LINE:COLUMN: error:, and no bundle is left")
    func badScenario() throws {
        let s = Scratch()
        try "vm guest\nprogram guest\n    mvo r1, 2\n    hlt\nend\n".write(toFile: s.path + "/bad.sev", atomically: true, encoding: .utf8)
        let r = try Self.run(["record", "bad.sev"], in: s.path)
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("bad.sev:3:5: error: unknown instruction 'mvo'"))
        #expect(!FileManager.default.fileExists(atPath: s.path + "/bad.sevtrace"))
    }

    @Test("bench runs its scenario, with extra platform options, and reports each figure beside its baseline")
    func benchSmoke() throws {
        let s = Scratch()
        let r = try Self.run(["bench", "--accesses", "2000", "--platform", "cache=64K cores=2 sme=yes"], in: s.path)
        #expect(r.status == 0, "\(r.stderr)")
        for line in ["simulate only", "simulate + record", "recording cost ratio", "bytes/event", "naive 30-byte record", "decode only",
                     "analysis cost ratio", "peak resident memory", "| workload | events |"] {
            #expect(r.stdout.contains(line), "\(line)")
        }
        let rows = r.stdout.split(separator: "\n").filter { row in ["copy", "uninitialised", "mixed", "fill"].contains { row.hasPrefix("| \($0) |") } }
        #expect(rows.count == 4 && rows.allSatisfy { $0.split(separator: "|").count == 11 }, "one row per workload, every column filled")
        let one = try Self.run(["bench", "--accesses", "2000", "--workload", "mixed"], in: s.path)
        #expect(one.status == 0 && one.stdout.contains("| mixed |") && !one.stdout.contains("| copy |"), "\(one.stderr)")
        let bad = try Self.run(["bench", "--accesses", "2000", "--platform", "cores=0"], in: s.path)
        #expect(bad.status == 2 && bad.stderr.hasPrefix("bench-copy:"), "\(bad.stderr)")
        for huge in [["--accesses", "18446744073709551615"], ["--queries", "--events", "0"]] {
            let r = try Self.run(["bench"] + huge, in: s.path)
            #expect(r.status != 0 && r.stderr.hasPrefix("error: --accesses and --events take 1 to"), "\(huge): \(r.stderr)")
        }
    }

    @Test("bench --queries records the mixed trace and answers every question of its table")
    func benchQueries() throws {
        let s = Scratch()
        let r = try Self.run(["bench", "--queries", "--events", "200000", "--runs", "1"], in: s.path)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("index.sqlite: ") && r.stdout.contains("% of events.zst"))
        for question in ["every access to a page touched all along the trace", "every access to a cold page", "the same, joined by hand",
                         "count(*) over all", "exact accesses per ASID", "every #VMEXIT by kind", "64 bytes of a guest page at event",
                         "SELECT * of", "seek to a random event"] {
            let row = r.stdout.split(separator: "\n").first { $0.hasPrefix("| " + question) }
            // Every row has its time, goal and a non-empty answer.
            #expect(row.map { $0.split(separator: "|").count == 4 && !$0.hasSuffix("|  |") } == true, "\(question): \(row ?? "missing")")
        }
        #expect(r.stdout.contains("exits of 6 kinds") && r.stdout.contains("bytes written"), "\(r.stdout)")
    }

    @Test("diff: the same scenario and seed are identical; another seed differs at the first event it changes")
    func diff() throws {
        let s = Scratch()
        for (name, seed) in [("a", "1"), ("b", "1"), ("c", "2")] {
            let r = try Self.run(["record", "-o", name + ".sevtrace", "--seed", seed, "--no-analyze"], in: s.path)
            #expect(r.status == 0, "\(r.stderr)")
        }
        let same = try Self.run(["diff", "a.sevtrace", "b.sevtrace"], in: s.path)
        #expect(same.status == 0 && same.stdout.hasPrefix("identical ("), "\(same.stdout)")
        let other = try Self.run(["diff", "a.sevtrace", "c.sevtrace"], in: s.path)
        #expect(other.status == 1)
        #expect(other.stdout.hasPrefix("seed: 1 and 2\na.sevtrace: #"), "\(other.stdout)")
        #expect(other.stderr.hasPrefix("error: the traces differ at event #"))
    }

    @Test("a trace's bytes do not depend on the path its scenario was named by; diff reports header differences")
    func pathIndependentHeader() throws {
        let s = Scratch()
        try FileManager.default.createDirectory(atPath: s.path + "/sub", withIntermediateDirectories: true)
        try Self.race.write(toFile: s.path + "/sub/race.sev", atomically: true, encoding: .utf8)
        try Self.race.write(toFile: s.path + "/race2.sev", atomically: true, encoding: .utf8)
        for (path, out) in [("sub/race.sev", "rel"), (s.path + "/sub/race.sev", "abs"), ("./sub//race.sev", "dots"), ("race2.sev", "renamed")] {
            let r = try Self.run(["record", path, "-o", out + ".sevtrace", "--no-analyze"], in: s.path)
            #expect(r.status == 0, "\(r.stderr)")
        }
        let bytes = { (n: String) in try Data(contentsOf: URL(fileURLWithPath: s.path + "/\(n).sevtrace/events.zst")) }
        #expect(try bytes("rel") == bytes("abs"))
        #expect(try bytes("rel") == bytes("dots"))
        let same = try Self.run(["diff", "rel.sevtrace", "abs.sevtrace"], in: s.path)
        #expect(same.status == 0 && same.stdout.hasPrefix("identical ("), "\(same.stdout)")
        // Same events, another scenario name: the traces are not identical, and diff says why.
        let renamed = try Self.run(["diff", "rel.sevtrace", "renamed.sevtrace"], in: s.path)
        #expect(renamed.status == 1)
        #expect(renamed.stdout.hasPrefix("scenario name: race.sev and race2.sev\nthe same "), "\(renamed.stdout)")
        #expect(renamed.stderr == "error: the traces' headers differ (1 field)\n")
    }

    static let race = "vm guest memory=4M\nprogram guest at=0x100000\n    mov r1, 2\n    hlt\nend\nlaunch guest\nrun guest\n"

    @Test("a scenario that fails at run time leaves nothing half-written")
    func runtimeFailure() throws {
        let s = Scratch()
        try "vm guest\nprogram guest\n    mov r1, 0x7000000\n    load r2, [r1]\n    hlt\nend\nlaunch guest\nrun guest\n"
            .write(toFile: s.path + "/fault.sev", atomically: true, encoding: .utf8)
        let r = try Self.run(["record", "fault.sev"], in: s.path)
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("fault.sev:8:1: error: guest vcpu 0: page fault"))
        #expect(!FileManager.default.fileExists(atPath: s.path + "/fault.sevtrace"))
    }

    @Test("usage errors are one line beginning error: and exit 2", arguments: [
        ["query"], ["nonsense"], ["replay", "missing.sevtrace"], ["query", "x", "y", "--format", "xml"],
        ["analyze", "missing.sevtrace", "--fail-on", "urgent"],
    ])
    func usage(_ args: [String]) throws {
        let scratch = Scratch()
        let r = try Self.run(args, in: scratch.path)
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("error: "))
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
    }

    @Test("analyze --fail-on exits 1 when a finding is that bad, 0 otherwise")
    func failOn() throws {
        let s = Scratch()
        try Self.run(["record", "--no-analyze"], in: s.path)
        #expect(try Self.run(["analyze", "default.sevtrace", "--fail-on", "high"], in: s.path).status == 1)
        #expect(try Self.run(["analyze", "default.sevtrace", "--fail-on", "critical"], in: s.path).status == 0)
        let only = try Self.run(["analyze", "default.sevtrace", "--detectors", "CIPHERTEXT_OBSERVATION"], in: s.path)
        #expect(only.stdout.contains("findings (1)"))
    }

    @Test("measure prints the measurement sev-tool's formula gives (checked against Python's hmac)")
    func measure() throws {
        let s = Scratch()
        let zeros32 = String(repeating: "0", count: 64), zeros16 = String(repeating: "0", count: 32)
        let r = try Self.run(["measure", "--api-major", "0", "--api-minor", "17", "--build", "48", "--policy", "0x1",
                              "--digest", zeros32, "--mnonce", zeros16, "--tik", zeros16], in: s.path)
        #expect(r.status == 0)
        #expect(r.stdout == "4765ae6d28c002eb6511f99419a160ea08f262e4f304740cac0ade34e871b689\n")
        let old = try Self.run(["measure", "--api-major", "0", "--api-minor", "16", "--build", "48", "--policy", "1",
                                "--digest", zeros32, "--mnonce", zeros16, "--tik", zeros16], in: s.path)
        #expect(old.stdout.count == 65 && old.stdout != r.stdout, "before API 0.17 the version prefix is left out")
        let bad = try Self.run(["measure", "--api-major", "0", "--api-minor", "17", "--build", "48", "--policy", "1",
                                "--digest", "12", "--mnonce", zeros16, "--tik", zeros16], in: s.path)
        #expect(bad.status == 2 && bad.stderr.hasPrefix("error: --digest takes 32 bytes"))
    }

    /// sev-tool's README example of calc_measurement: its inputs (all hex, as sev-tool takes them) and output.
    static let sevToolVector = (fields: ["04", "00", "12", "0f", "00", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                                         "4fbe0bedbad6c86ae8f68971d103e554", "66320db73158a35a255d051758e95ed4"],
                                measurement: "6faab2daae389bcd3405a05d6cafe33c0414f7bedd0bae19ba5f38b7fd1664ea")

    static func base64(_ hex: String) -> String {
        Data(stride(from: 0, to: hex.count, by: 2).map { i in
            UInt8(hex[hex.index(hex.startIndex, offsetBy: i)...hex.index(hex.startIndex, offsetBy: i + 1)], radix: 16)!
        }).base64EncodedString()
    }

    @Test("measure gives sev-tool's published answer from sev-tool's form, sevctl's form and this tool's, and checks a launch blob")
    func measureForms() throws {
        let s = Scratch()
        let v = Self.sevToolVector
        let f = v.fields
        try Data(Self.base64(f[7]).utf8).write(to: URL(fileURLWithPath: s.path + "/tik.b64"))
        FileManager.default.createFile(atPath: s.path + "/VM_tik.bin", contents: Data(base64Encoded: Self.base64(f[7])))
        let forms: [[String]] = [
            ["--sev-tool"] + f,
            ["--api-major", "0", "--api-minor", "0x12", "--build-id", "15", "--policy", "0", "--launch-digest", Self.base64(f[5]),
             "--nonce", Self.base64(f[6]), "--tik-file", "VM_tik.bin"],
            ["--api-major", "0", "--api-minor", "18", "--build", "0xf", "--policy", "0x0", "--digest", f[5], "--mnonce", f[6], "--tik", f[7]],
        ]
        for form in forms {
            let r = try Self.run(["measure"] + form, in: s.path)
            #expect(r.status == 0 && r.stdout == v.measurement + "\n", "\(form): \(r.stdout) \(r.stderr)")
        }
        // QEMU's query-sev-launch-measure answer: base64 of measurement || mnonce.
        let blob = Self.base64(v.measurement + f[6])
        let common = ["--api-major", "0", "--api-minor", "18", "--build-id", "15", "--launch-digest", Self.base64(f[5]), "--tik-file", "VM_tik.bin"]
        let ok = try Self.run(["measure"] + common + ["--policy", "0", "--launch-measure-blob", blob], in: s.path)
        #expect(ok.status == 0 && ok.stdout.hasPrefix("verified"), "\(ok.stdout) \(ok.stderr)")
        let wrong = try Self.run(["measure"] + common + ["--policy", "1", "--launch-measure-blob", blob], in: s.path)
        #expect(wrong.status == 1 && wrong.stdout.hasPrefix("mismatch"))
        // What is neither hex nor base64 of the right length, or given twice over, is refused, not guessed.
        for bad in [common + ["--policy", "0", "--nonce", "4fbe0bed"], common + ["--policy", "0", "--tik", f[7], "--nonce", Self.base64(f[6])],
                    ["--sev-tool"] + Array(f.dropLast()), ["--sev-tool", "05"] + Array(f.dropFirst()),
                    common + ["--policy", "0", "--launch-measure-blob", blob, "--nonce", Self.base64("00" + String(f[6].dropFirst(2)))]] {
            let r = try Self.run(["measure"] + bad, in: s.path)
            #expect(r.status == 2 && r.stderr.hasPrefix("error: "), "\(bad): \(r.stderr)")
        }
    }

    @Test("measure gives sevctl's test answer from sevctl's inputs (its tests/data/measurement/tik1.bin) and from sev-tool's form")
    func measureSevctlVector() throws {
        let s = Scratch()
        // sevctl's measurement test: API 0x01.40 build 40, policy 0x03, its nonce, TIK file and launch digest.
        let tik = "3569cf61a32a602b87185ac6e0f55913"
        FileManager.default.createFile(atPath: s.path + "/tik1.bin", contents: Data(base64Encoded: Self.base64(tik)))
        let digest = "xkvRAfyaSizgonxAjZIAkR8TmolUabBKQKb6KJCDDSM=", nonce = "wxP6tRHCFrFQWxsuqZA8QA=="
        let expected = Data(base64Encoded: "lswbxWxI9gckya16JQvdFtpYmNO4b+3inAPpqsgoBI4=")!.map { String(format: "%02x", $0) }.joined()
        let sevctl = try Self.run(["measure", "--api-major", "0x01", "--api-minor", "40", "--build-id", "40", "--policy", "0x03",
                                   "--nonce", nonce, "--tik-file", "tik1.bin", "--launch-digest", digest], in: s.path)
        #expect(sevctl.status == 0 && sevctl.stdout == expected + "\n", "\(sevctl.stdout) \(sevctl.stderr)")
        let hex = { (b64: String) in Data(base64Encoded: b64)!.map { String(format: "%02x", $0) }.joined() }
        let sevTool = try Self.run(["measure", "--sev-tool", "04", "01", "28", "28", "03", hex(digest), hex(nonce), tik], in: s.path)
        #expect(sevTool.status == 0 && sevTool.stdout == expected + "\n", "\(sevTool.stdout) \(sevTool.stderr)")
        // sevctl's newer output, measurement || nonce, is what --launch-measure-blob checks.
        let blob = "lswbxWxI9gckya16JQvdFtpYmNO4b+3inAPpqsgoBI7DE/q1EcIWsVBbGy6pkDxA"
        let verify = try Self.run(["measure", "--api-major", "1", "--api-minor", "40", "--build-id", "40", "--policy", "3",
                                   "--tik-file", "tik1.bin", "--launch-digest", digest, "--launch-measure-blob", blob], in: s.path)
        #expect(verify.status == 0 && verify.stdout.hasPrefix("verified"), "\(verify.stdout) \(verify.stderr)")
    }

    @Test("record --owner-keys writes the owner's TIK and TEK; with the TIK, measure and launch-report recompute the measurement in the trace")
    func ownerKeysRecomputeMeasurement() throws {
        let s = Scratch()
        try """
            platform memory=64M
            vm guest memory=2M policy=0x0
            owner alice policy=0x0
            data guest 0x100000 text="measured bytes!!"
            psp platform_status
            launch guest owner=alice
            """.write(toFile: s.path + "/m.sev", atomically: true, encoding: .utf8)
        let r = try Self.run(["record", "m.sev", "--owner-keys", "keys"], in: s.path)
        #expect(r.status == 0, "\(r.stderr)")
        let tik = try Data(contentsOf: URL(fileURLWithPath: s.path + "/keys/guest_tik.bin"))
        let tek = try Data(contentsOf: URL(fileURLWithPath: s.path + "/keys/guest_tek.bin"))
        #expect(tik.count == 16 && tek.count == 16 && tik != tek)
        try """
            SELECT (SELECT hex(buffer) FROM psp_commands WHERE command_name = 'PLATFORM_STATUS'),
                   (SELECT hex(result) FROM psp_commands WHERE command_name = 'LAUNCH_MEASURE' AND result IS NOT NULL);
            """.write(toFile: s.path + "/q.sql", atomically: true, encoding: .utf8)
        let q = try Self.run(["query", "m.sevtrace", "q.sql", "--format", "csv"], in: s.path)
        let row = q.stdout.split(separator: "\n")[1].split(separator: ",").map { String($0).lowercased() }
        let status = row[0], blob = row[1]
        #expect(blob.count == 96, "measurement ‖ mnonce")
        // PLATFORM_STATUS: API major, minor, state, owner, then CONFIG whose top byte is the build.
        let byte = { (i: Int) in String(Int(status.dropFirst(2 * i).prefix(2), radix: 16)!) }
        let hex = { (d: Data) in d.map { String(format: "%02x", $0) }.joined() }
        // The launch digest: SHA-256 of the one 16-byte block LAUNCH_UPDATE_DATA measured.
        let digest = "\(hex(Data("measured bytes!!".utf8)))"
        let hash = try PythonTool.run("import hashlib,sys;print(hashlib.sha256(bytes.fromhex(sys.argv[1])).hexdigest())", [digest])
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let m = try Self.run(["measure", "--api-major", byte(0), "--api-minor", byte(1), "--build", byte(7), "--policy", "0",
                              "--digest", hash, "--mnonce", String(blob.suffix(32)), "--tik", hex(tik)], in: s.path)
        #expect(m.status == 0, "\(m.stderr)")
        #expect(m.stdout == String(blob.prefix(64)) + "\n", "the measurement the firmware returned, recomputed from the TIK")
        // launch-report does the owner's whole check from the trace and her key file.
        let report = try Self.run(["launch-report", "m.sevtrace", "--owner-keys", "keys"], in: s.path)
        #expect(report.status == 0, "\(report.stderr)")
        #expect(report.stdout.contains("launch digest  \(hash)") && report.stdout.contains("measurement    \(blob.prefix(64))")
                && report.stdout.contains("owner's check  verified"), "\(report.stdout)")
        var wrong = tik
        wrong[0] ^= 1
        try wrong.write(to: URL(fileURLWithPath: s.path + "/keys/guest_tik.bin"))
        let refused = try Self.run(["launch-report", "m.sevtrace", "--owner-keys", "keys"], in: s.path)
        #expect(refused.status == 1 && refused.stdout.contains("MISMATCH"), "\(refused.stdout)")
        let unchecked = try Self.run(["launch-report", "m.sevtrace"], in: s.path)
        #expect(unchecked.status == 0 && unchecked.stdout.contains("not made"))
    }

    @Test("query takes SQL from -c, a file or standard input, binds --param, and keeps TEMP tables in memory")
    func querySources() throws {
        let s = Scratch()
        #expect(try Self.run(["record", "-o", "t.sevtrace"], in: s.path).status == 0)
        let before = try FileManager.default.contentsOfDirectory(atPath: s.path + "/t.sevtrace").sorted()
        let sql = "CREATE TEMP TABLE kinds AS SELECT type, count(*) AS n FROM events GROUP BY type; SELECT n FROM kinds WHERE type = :kind;"
        let viaC = try Self.run(["query", "t.sevtrace", "-c", sql, "--param", "kind=vmrun", "--format", "csv"], in: s.path)
        #expect(viaC.status == 0, "\(viaC.stderr)")
        #expect(viaC.stdout.hasPrefix("n\n") && !viaC.stdout.contains("\r"), "CSV with LF line ends")
        let viaStdin = try Self.run(["query", "t.sevtrace", "--param", "kind=vmrun", "--format", "csv"], in: s.path, input: sql)
        #expect(viaStdin.stdout == viaC.stdout, "\(viaStdin.stderr)")
        try sql.write(toFile: s.path + "/q.sql", atomically: true, encoding: .utf8)
        let viaFile = try Self.run(["query", "t.sevtrace", "q.sql", "--param", "kind=vmrun", "--format", "csv"], in: s.path)
        #expect(viaFile.stdout == viaC.stdout)
        let dash = try Self.run(["query", "t.sevtrace", "-", "--param", "kind=vmrun", "--format", "csv"], in: s.path, input: sql)
        #expect(dash.stdout == viaC.stdout)
        // Integers bind as integers (decimal or hex), other values as text.
        let typed = try Self.run(["query", "t.sevtrace", "-c", "SELECT typeof(:a), typeof(:b), typeof(:c), :b;", "--param", "a=12",
                                  "--param", "b=0x10", "--param", "c=guest", "--format", "csv"], in: s.path)
        #expect(typed.stdout == "typeof(:a),typeof(:b),typeof(:c),:b\ninteger,integer,text,16\n", "\(typed.stderr)")
        // Several statements as JSON: one document, an array per statement that returns rows.
        let json = try Self.run(["query", "t.sevtrace", "-c", "SELECT 1 AS a; SELECT 2 AS b; SELECT 3 AS c WHERE 0;", "--format", "json"],
                                in: s.path)
        let doc = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[[String: Int]]]
        #expect(doc == [[["a": 1]], [["b": 2]], []], "\(json.stdout)")
        // Refusals: a missing parameter, both a file and -c, and any write outside TEMP.
        let missing = try Self.run(["query", "t.sevtrace", "-c", "SELECT :nope;"], in: s.path)
        #expect(missing.status == 2 && missing.stderr == "error: -c:1:1: no value for the parameter :nope (give --param nope=VALUE)\n")
        #expect(try Self.run(["query", "t.sevtrace", "q.sql", "-c", "SELECT 1;"], in: s.path).status == 2)
        for write in ["CREATE TABLE main.x(a);", "INSERT INTO vms SELECT * FROM vms;", "CREATE TEMP TABLE t AS SELECT 1; INSERT INTO main.vms SELECT * FROM vms;"] {
            let r = try Self.run(["query", "t.sevtrace", "-c", write], in: s.path)
            #expect(r.status == 2 && r.stderr.contains("read-only"), "\(write): \(r.stderr)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.path + "/t.sevtrace").sorted() == before,
                "nothing is written beside the trace")
        #expect(try Self.run(["verify", "t.sevtrace"], in: s.path).status == 0)
    }

    /// Whether Python can load DuckDB (the CI installs it).
    static let hasDuckDB = PythonTool.can("import duckdb")

    @Test("export streams a table as CSV and JSON Lines that DuckDB reads whole, row for row",
          .enabled(if: hasDuckDB, "needs `pip install duckdb` (.ci/run installs it)"))
    func exportForDuckDB() throws {
        let s = Scratch()
        let bundle = Self.root.appendingPathComponent("Traces/firmware-tour.sevtrace").path
        for (table, format) in [("events", "csv"), ("events", "jsonl"), ("psp_commands", "jsonl"), ("findings", "csv"),
                                ("vm_exits", "csv"), ("register_ops", "jsonl"), ("event_counts", "csv")] {
            let file = "\(table).\(format)"
            let r = try Self.run(["export", bundle, "--table", table, "--format", format, "-o", file], in: s.path)
            #expect(r.status == 0, "\(r.stderr)")
            let count = try Self.run(["query", bundle, "-c", "SELECT count(*) FROM \(table);", "--format", "csv"],
                                     in: s.path)
            let expected = count.stdout.split(separator: "\n")[1]
            let reader = format == "csv" ? "read_csv_auto" : "read_json_auto"
            let script = "import duckdb, sys; r = duckdb.sql(\"SELECT count(*) FROM \(reader)('\(file)')\").fetchall(); print(r[0][0])"
            let read = try PythonTool.run(script, [], in: s.path)
            let rows = read.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(read.status == 0 && String(expected) == rows, "\(table) \(format): DuckDB read \(rows), the index holds \(expected): \(read.stderr)")
        }
        let bad = try Self.run(["export", bundle, "--table", "nope"], in: s.path)
        #expect(bad.status == 2 && bad.stderr.hasPrefix("error: no table 'nope'"))
        let nowhere = try Self.run(["export", bundle, "--table", "events", "-o", "missing/dir/x.csv"], in: s.path)
        #expect(nowhere.status == 2 && !FileManager.default.fileExists(atPath: s.path + "/missing"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.path).allSatisfy { !$0.hasSuffix(".partial") })
    }

    /// The loadable SQLite extension, beside the executable (`swift build` builds it with the tests).
    static var sqliteExtension: String {
        Self.executable.deletingLastPathComponent().appendingPathComponent("libsevtrace").path
    }

    /// The sqlite3 shell, when installed (the CI installs it).
    static let sqliteShell = ["/usr/bin/sqlite3", "/usr/local/bin/sqlite3"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Runs a program with arguments; its status and output.
    static func runTool(_ path: String, _ args: [String], in dir: String) throws -> Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    /// A question over every event, whose answer changes if a row is lost, repeated or altered.
    static let eventsDigest = "SELECT count(*), sum(seq), count(DISTINCT type), sum(spa % 1000003), sum(value % 1000003), " +
        "count(detail) FROM events"

    @Test("the extension gives the sqlite3 shell the events table: the same answers as sev-trace query, on every golden trace",
          .enabled(if: sqliteShell != nil, "needs the sqlite3 shell (apt-get install sqlite3; .ci/run installs it)"))
    func sqliteShellExtension() throws {
        let s = Scratch()
        let traces = Self.root.appendingPathComponent("Traces")
        let bundles = try FileManager.default.contentsOfDirectory(atPath: traces.path).filter { $0.hasSuffix(".sevtrace") }.sorted()
        #expect(bundles.count > 5)
        for name in bundles {
            let bundle = traces.appendingPathComponent(name).path
            let ours = try Self.run(["query", bundle, "-c", Self.eventsDigest, "--format", "csv"], in: s.path)
            let shell = try Self.runTool(Self.sqliteShell!, ["-readonly", "-csv", bundle + "/index.sqlite",
                                                              ".load \(Self.sqliteExtension)", Self.eventsDigest], in: s.path)
            #expect(shell.status == 0 && !ours.stdout.isEmpty, "\(name): \(shell.stderr)")
            #expect(shell.stdout.split(separator: "\n").last == ours.stdout.split(separator: "\n").last, "\(name)")
        }
        // The documented example runs as written (with this build's library).
        let doc = try String(contentsOf: Self.root.appendingPathComponent("Queries/README.md"), encoding: .utf8)
        let example = "SELECT type, count(*) AS n FROM events GROUP BY type ORDER BY n DESC, type"
        #expect(doc.contains(example) && doc.contains(".load .build/release/libsevtrace"))
        let bundle = traces.appendingPathComponent("firmware-tour.sevtrace").path
        let shell = try Self.runTool(Self.sqliteShell!, ["-readonly", bundle + "/index.sqlite", ".load \(Self.sqliteExtension)", example],
                                     in: s.path)
        let ours = try Self.run(["query", bundle, "-c", example, "--format", "csv"], in: s.path)
        #expect(shell.status == 0 && shell.stdout.replacingOccurrences(of: "|", with: ",")
                == ours.stdout.split(separator: "\n").dropFirst().joined(separator: "\n") + "\n")
        // The tables decoded from the events are there too.
        let decoded = "SELECT (SELECT count(*) FROM vm_exits), (SELECT total(r0 % 1000003) FROM vm_exits), (SELECT count(*) FROM register_ops), (SELECT count(*) FROM vm_runs)"
        let decodedShell = try Self.runTool(Self.sqliteShell!, ["-readonly", "-csv", bundle + "/index.sqlite", ".load \(Self.sqliteExtension)", decoded],
                                            in: s.path)
        let decodedOurs = try Self.run(["query", bundle, "-c", decoded, "--format", "csv"], in: s.path)
        #expect(decodedShell.status == 0 && decodedShell.stdout.split(separator: "\n").last == decodedOurs.stdout.split(separator: "\n").last,
                "\(decodedShell.stdout) \(decodedShell.stderr)")
        // A connection that could write the trace is refused, and the trace is left as it was.
        let before = try Data(contentsOf: URL(fileURLWithPath: bundle + "/index.sqlite"))
        let writable = try Self.runTool(Self.sqliteShell!, [bundle + "/index.sqlite", ".load \(Self.sqliteExtension)", "SELECT 1"],
                                        in: s.path)
        #expect(writable.status != 0 && writable.stderr.contains("read-only"), "\(writable.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: bundle + "/index.sqlite")) == before)
        // memory_at too: the guest's launch data, decrypted from the trace's writes.
        let guest = traces.appendingPathComponent("conformance/guest-states.sevtrace").path + "/index.sqlite"
        let data = try Self.runTool(Self.sqliteShell!, ["-readonly", guest, ".load \(Self.sqliteExtension)",
                                                         "SELECT group_concat(char(data), '') FROM memory_at(8000, 'guest', 0x110000, 16)"], in: s.path)
        #expect(data.status == 0 && data.stdout == "conformance-data\n", "\(data.stdout) \(data.stderr)")
        let memory = try Self.runTool(Self.sqliteShell!, [":memory:", ".load \(Self.sqliteExtension)"], in: s.path)
        #expect(memory.status != 0 && memory.stderr.contains("index.sqlite"))
    }

    @Test("Python's sqlite3 module loads the extension and reads the events table",
          .enabled(if: PythonTool.withLoadableSQLite != nil, "needs a Python whose sqlite3 module loads extensions (Debian's python3 does)"))
    func pythonExtension() throws {
        let s = Scratch()
        let bundle = Self.root.appendingPathComponent("Traces/firmware-tour.sevtrace").path
        let script = """
        import sqlite3, sys
        c = sqlite3.connect("file:" + sys.argv[1] + "/index.sqlite?mode=ro", uri=True)
        c.enable_load_extension(True)
        c.load_extension(sys.argv[2])
        print(",".join(str(v) for v in c.execute(sys.argv[3]).fetchone()))
        """
        let py = try PythonTool.run(script, [bundle, Self.sqliteExtension, Self.eventsDigest], in: s.path,
                                    interpreter: PythonTool.withLoadableSQLite!)
        let ours = try Self.run(["query", bundle, "-c", Self.eventsDigest, "--format", "csv"], in: s.path)
        #expect(py.status == 0, "\(py.stderr)")
        #expect(py.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == ours.stdout.split(separator: "\n").last.map(String.init))
    }

    @Test("mem shows a guest page after an event: data, DRAM, C-bit and last write; bad places are one error line")
    func memoryTimeTravel() throws {
        let s = Scratch()
        let bundle = Self.root.appendingPathComponent("Traces/conformance/guest-states.sevtrace").path
        let r = try Self.run(["mem", bundle, "--at", "8000", "--vm", "guest", "--gpa", "0x110000", "--length", "32"], in: s.path)
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 4 && lines[0].hasPrefix("after event #8000, platform host, guest gpa 0x110000"))
        #expect(lines[2].hasPrefix("0x110000") && lines[2].contains("63 6f 6e 66 6f 72 6d 61 6e 63 65 2d 64 61 74 61") && lines[2].hasSuffix("  1  #7879"))
        #expect(lines[3].hasSuffix("  -  -"), "never written")
        let rerun = try Self.run(["mem", bundle, "--at", "8000", "--vm", "guest", "--gpa", "0x110000", "--length", "32", "--rerun"], in: s.path)
        #expect(rerun.status == 0 && rerun.stdout == r.stdout, "the re-run all the way shows the same")
        for bad in [["--at", "8000"], ["--at", "99999999", "--spa", "0"], ["--at", "10", "--vm", "nobody", "--gpa", "0"],
                    ["--at", "10", "--spa", "0", "--length", "0"]] {
            let e = try Self.run(["mem", bundle] + bad, in: s.path)
            #expect(e.status != 0 && e.stderr.hasPrefix("error: ") && e.stderr.split(separator: "\n").count == 1, "\(bad): \(e.stderr)")
        }
    }

    @Test("export --perfetto writes a timeline file only when complete; --table and --perfetto exclude each other")
    func perfettoExport() throws {
        let s = Scratch()
        let bundle = Self.root.appendingPathComponent("Traces/race.sevtrace").path
        let r = try Self.run(["export", bundle, "--perfetto", "race.json", "--from", "0", "--to", "2000"], in: s.path)
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.path + "/race.json"))) as? [String: Any]
        #expect((doc?["traceEvents"] as? [Any])?.isEmpty == false)
        for bad in [["--table", "events", "--perfetto", "x.json"], [String](), ["--perfetto", "y.json", "--from", "9", "--to", "3"],
                    ["--perfetto", "missing/dir/z.json"]] {
            let e = try Self.run(["export", bundle] + bad, in: s.path)
            #expect(e.status == 2 && e.stderr.hasPrefix("error: "), "\(bad): \(e.stderr)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.path).sorted() == ["race.json"])
        // report: one HTML file, written whole or not at all.
        let report = try Self.run(["report", bundle, "-o", "race.html"], in: s.path)
        let page = try String(contentsOfFile: s.path + "/race.html", encoding: .utf8)
        #expect(report.status == 0 && page.contains("<h1>sev-trace report"))
        let nowhere = try Self.run(["report", bundle, "-o", "missing/dir/r.html"], in: s.path)
        #expect(nowhere.status == 2 && nowhere.stderr.hasPrefix("error: "))
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.path).sorted() == ["race.html", "race.json"])
    }

    /// util-linux's script, which runs a command under a pseudo-terminal.
    static let scriptTool = ["/usr/bin/script", "/bin/script"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test("progress is drawn on a terminal and not into a pipe; --progress, --no-progress and --quiet override",
          .enabled(if: scriptTool != nil, "needs util-linux's script to make a pseudo-terminal"))
    func progressOnATerminal() throws {
        let s = Scratch()
        let bundle = Self.root.appendingPathComponent("Traces/smp.sevtrace").path
        func underTerminal(_ args: String) throws -> String {
            let r = try Self.runTool(Self.scriptTool!, ["-qec", "\(Self.executable.path) \(args)", "/dev/null"], in: s.path)
            #expect(r.status == 0, "\(args): \(r.stderr)")
            return r.stdout
        }
        let shown = try underTerminal("verify \(bundle)")
        #expect(shown.contains("\r\u{1B}[Kverify: ") && shown.contains("events (100%)") && shown.contains("ok: "), "\(shown.debugDescription)")
        #expect(!(try underTerminal("verify \(bundle) --no-progress")).contains("verify: "))
        let quiet = try underTerminal("verify \(bundle) --quiet")
        #expect(!quiet.contains("verify: ") && !quiet.contains("ok: "), "\(quiet.debugDescription)")
        let piped = try Self.run(["verify", bundle], in: s.path)
        #expect(piped.status == 0 && piped.stderr.isEmpty && piped.stdout.hasPrefix("ok: "))
        let forced = try Self.run(["verify", bundle, "--progress"], in: s.path)
        #expect(forced.stderr.contains("verify: ") && forced.stderr.hasSuffix("\r\u{1B}[K"), "cleared when done: \(forced.stderr.debugDescription)")
        for command in [["record", "--no-analyze", "-o", "p.sevtrace"], ["replay", bundle], ["export", bundle, "--perfetto", "t.json"],
                        ["query", bundle, "-c", "SELECT count(*) FROM events WHERE type = 'mem'"]] {
            let r = try Self.run(command + ["--progress"], in: s.path)
            #expect(r.status == 0 && r.stderr.contains("\(command[0]): "), "\(command): \(r.stderr.debugDescription)")
        }
    }

    @Test("manual prints a man page with every command and its options, which groff formats without a warning")
    func manualPage() throws {
        let s = Scratch()
        let r = try Self.run(["manual"], in: s.path)
        #expect(r.status == 0 && r.stdout.hasPrefix(".TH SEV-TRACE 1 "))
        let help = try Self.run(["--help"], in: s.path).stdout
        let commands = help.split(separator: "\n").drop { !$0.hasPrefix("SUBCOMMANDS:") }.dropFirst()
            .filter { $0.hasPrefix("  ") && !$0.hasPrefix("   ") && !$0.hasPrefix("  See ") }.compactMap { $0.split(separator: " ").first.map(String.init) }
        #expect(commands.count >= 15, "\(commands)")
        for c in commands { #expect(r.stdout.contains(".SS \(c)\n"), "no section for \(c)") }
        for option in ["--owner-keys", "--launch-measure-blob", "--perfetto", "--progress", "--max-shadow-memory", "--sev-tool"] {
            #expect(r.stdout.contains(option), "the page lacks \(option)")
        }
        try r.stdout.write(toFile: s.path + "/sev-trace.1", atomically: true, encoding: .utf8)
        guard let groff = ["/usr/bin/groff"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else { return }
        let g = try Self.runTool(groff, ["-man", "-Tutf8", "-ww", "-z", "sev-trace.1"], in: s.path)
        #expect(g.status == 0 && g.stderr.isEmpty, "\(g.stderr)")
    }

    @Test("streaming a query's rows keeps memory flat as the trace grows (a trace five times longer, the same peak RSS)",
          .enabled(if: PythonTool.can("import resource, subprocess"), "needs python3 to read a child's peak RSS"))
    func streamingMemoryIsFlat() throws {
        let peaks = try Self.peaks(of: [20_000, 100_000], scenario: { iterations in
            """
            platform memory=64M
            vm guest memory=4M policy=0x1
            program guest at=0x100000
                mov r5, \(iterations)
                mov r1, 0x200000
            loop:
                store [r1], r5
                load r2, [r1]
                sub r5, 1
                jnz r5, loop
                hlt
            end
            launch guest
            run guest
            """
        }, running: { trace in
            // Every row goes through the CSV writer to /dev/null.
            ["query", trace, "-c", "SELECT seq, type, spa, value FROM events", "--format", "csv"]
        })
        #expect(peaks[1] - peaks[0] < 16 << 10, "peak RSS \(peaks[0]) KiB for ~140K events, \(peaks[1]) KiB for ~700K")
    }

    @Test("analyzing a trace again leaves its index byte for byte as it was; an analysis that finds otherwise rewrites it")
    func reanalysisKeepsTheIndex() throws {
        let s = Scratch()
        try FileManager.default.copyItem(atPath: Self.root.appendingPathComponent("Traces/default.sevtrace").path, toPath: s.path + "/t.sevtrace")
        let index = s.path + "/t.sevtrace/index.sqlite"
        let before = try Data(contentsOf: URL(fileURLWithPath: index))
        for args in [["analyze", "t.sevtrace"], ["analyze", "t.sevtrace", "--detectors", "PRIVATE_TO_SHARED"]] {
            #expect(try Self.run(args, in: s.path).status == 0)
            #expect(try Data(contentsOf: URL(fileURLWithPath: index)) == before, "\(args) rewrote an index that already held its result")
        }
        // Past one finding, the rest are only counted: the index does change, and back again after.
        #expect(try Self.run(["analyze", "t.sevtrace", "--max-findings", "1"], in: s.path).status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: index)) != before)
        #expect(try Self.run(["analyze", "t.sevtrace"], in: s.path).status == 0)
        #expect(try Self.run(["query", "t.sevtrace", "-c", "SELECT count(*) FROM findings"], in: s.path).stdout
            == (try Self.run(["query", "Traces/default.sevtrace", "-c", "SELECT count(*) FROM findings"], in: Self.root.path).stdout))
    }

    /// For each size, records `scenario(size)` (in 64 KiB chunks, so every trace has many) and returns the
    /// peak resident set, in KiB, of `sev-trace` running `running(bundle)` on it.
    static func peaks(of sizes: [Int], scenario: (Int) -> String, running: (String) -> [String]) throws -> [Int] {
        let s = Scratch()
        return try sizes.map { size in
            try scenario(size).write(toFile: s.path + "/t\(size).sev", atomically: true, encoding: .utf8)
            let r = try run(["record", "t\(size).sev", "--no-analyze", "--chunk-bytes", "65536"], in: s.path)
            #expect(r.status == 0, "\(r.stderr)")
            return try peakRSS(running("t\(size).sevtrace"), in: s.path)
        }
    }

    /// The peak resident set, in KiB, of `sev-trace ARGS` run in `dir` (which must exit 0).
    static func peakRSS(_ args: [String], in dir: String) throws -> Int {
        let r = try PythonTool.run("""
            import resource, subprocess, sys
            done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
            print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
            """, [executable.path] + args, in: dir)
        let fields = r.stdout.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        #expect(fields.count == 2 && fields[0] == 0, "\(args): \(r.stdout) \(r.stderr)")
        return fields.last ?? 0
    }

    @Test("the analyzer's memory does not grow with the private memory a guest fills: 1 MiB or 32 MiB copied in, the same peak RSS, under the README's bound",
          .enabled(if: PythonTool.can("import resource, subprocess"), "needs python3 to read a child's peak RSS"))
    func analysisMemoryIsBounded() throws {
        // A 1 MiB secret copied once or 32 times, word by word, into fresh private memory (`rep movsq`):
        // 8.4M events for 32 MiB, what the debug build the tests run records and analyzes in seconds
        // (`bench --workload fill` measures 1 GiB in a release build).
        let peaks = try Self.peaks(of: [1, 32], scenario: { mib in FillScenario.text(quadwords: 131_072, passes: UInt64(mib)) },
                                   running: { trace in ["analyze", trace] })
        // 31 MiB more written is 7,936 more pages: at the 80 KiB a page once cost that was 620 MiB, with
        // one shadow cell per word still 96 MiB. Filled in order, a page now collapses to one cell.
        #expect(peaks[1] - peaks[0] < 4 << 10, "peak RSS \(peaks[0]) KiB for 1 MiB filled, \(peaks[1]) KiB for 32 MiB")
        #expect(peaks[1] < 256 << 10, "peak RSS \(peaks[1]) KiB for 32 MiB filled, over the 256 MB the README promises for 1 GiB")
    }

    @Test("certs and session produce files a guest owner can launch with: the chain checks, the session opens")
    func ownerTools() throws {
        let s = Scratch()
        #expect(try Self.run(["certs", "-o", "c"], in: s.path).status == 0)
        let r = try Self.run(["session", "--pdh", "c/pdh.cert", "--chain", "c/cert_chain.cert", "--policy", "0x1",
                              "-o", "o"], in: s.path)
        #expect(r.status == 0, "\(r.stderr)")
        for f in ["godh.cert", "session.bin", "tek.bin", "tik.bin"] {
            #expect(FileManager.default.fileExists(atPath: s.path + "/o/" + f))
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: s.path + "/o/session.bin")).count == 128)
        // What QEMU takes, named as sevctl names it; the keys are written, never printed.
        let godh = try String(contentsOfFile: s.path + "/o/vm_godh.b64", encoding: .utf8)
        #expect(Data(base64Encoded: godh) == (try Data(contentsOf: URL(fileURLWithPath: s.path + "/o/godh.cert"))))
        let blob = try String(contentsOfFile: s.path + "/o/vm_session.b64", encoding: .utf8)
        #expect(Data(base64Encoded: blob) == (try Data(contentsOf: URL(fileURLWithPath: s.path + "/o/session.bin"))))
        let tik = try Data(contentsOf: URL(fileURLWithPath: s.path + "/o/vm_tik.bin"))
        #expect(tik == (try Data(contentsOf: URL(fileURLWithPath: s.path + "/o/tik.bin"))))
        let tikHex = tik.map { String(format: "%02x", $0) }.joined()
        #expect(!r.stdout.contains(tikHex) && !r.stderr.contains(tikHex) && r.stdout.contains("session-file="))
        // sevctl's full chain (PDH, PEK, OCA, CEK) is taken as well as sev-tool's (PEK, OCA, CEK).
        let pdh = try Data(contentsOf: URL(fileURLWithPath: s.path + "/c/pdh.cert"))
        let chain = try Data(contentsOf: URL(fileURLWithPath: s.path + "/c/cert_chain.cert"))
        try (pdh + chain).write(to: URL(fileURLWithPath: s.path + "/c/full_chain.cert"))
        let full = try Self.run(["session", "--pdh", "c/pdh.cert", "--chain", "c/full_chain.cert", "--policy", "1", "--name", "g", "-o", "p"], in: s.path)
        #expect(full.status == 0 && FileManager.default.fileExists(atPath: s.path + "/p/g_session.b64"), "\(full.stderr)")
        // A PDH from another platform is reported as not belonging to the chain, not as a chain that fails.
        #expect(try Self.run(["certs", "-o", "d", "--seed", "7"], in: s.path).status == 0)
        let other = try Self.run(["session", "--pdh", "d/pdh.cert", "--chain", "c/cert_chain.cert", "--policy", "1"], in: s.path)
        #expect(other.status == 1 && other.stderr.contains("not signed by the chain's PEK"), "\(other.stderr)")
        let mismatched = try Self.run(["session", "--pdh", "d/pdh.cert", "--chain", "c/full_chain.cert", "--policy", "1"], in: s.path)
        #expect(mismatched.status == 1 && mismatched.stderr.contains("not the one the chain starts with"), "\(mismatched.stderr)")
        var forged = chain
        forged[2 * Self.sevCertificateSize + 1044 + 10] ^= 1  // the CEK's signature by AMD
        try forged.write(to: URL(fileURLWithPath: s.path + "/c/bad_chain.cert"))
        let bad = try Self.run(["session", "--pdh", "c/pdh.cert", "--chain", "c/bad_chain.cert", "--policy", "1"], in: s.path)
        #expect(bad.status == 1 && bad.stderr.contains("does not lead to AMD"), "\(bad.stderr)")
    }

    /// The size of an SEV certificate (SEV API appendix C).
    static let sevCertificateSize = 2084

    @Test("a bad query names the SQL position")
    func badQuery() throws {
        let s = Scratch()
        try Self.run(["record"], in: s.path)
        try "SELECT id\nFROM findngs;\n".write(toFile: s.path + "/q.sql", atomically: true, encoding: .utf8)
        let r = try Self.run(["query", "default.sevtrace", "q.sql"], in: s.path)
        #expect(r.status == 2)
        #expect(r.stderr == "error: q.sql:2:6: no such table: findngs\n")
    }

    @Test("Ctrl-C stops a running query cleanly with one error line")
    func interruptQuery() throws {
        let s = Scratch()
        #expect(try Self.run(["record"], in: s.path).status == 0)
        try "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n;\n"
            .write(toFile: s.path + "/forever.sql", atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = Self.executable
        p.arguments = ["query", "default.sevtrace", "forever.sql"]
        p.currentDirectoryURL = URL(fileURLWithPath: s.path)
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        usleep(500_000)
        kill(p.processIdentifier, SIGINT)
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 130)
        #expect(e == "error: forever.sql:1:1: interrupted\n", "\(e)")
    }

    @Test("control characters a scenario smuggles into an error message are escaped, not sent to the terminal")
    func controlCharacters() throws {
        let s = Scratch()
        try "vm guest\nlaunch \u{1B}[2J\u{202E}guest\n".write(toFile: s.path + "/evil.sev", atomically: true, encoding: .utf8)
        let r = try Self.run(["record", "evil.sev"], in: s.path)
        #expect(r.status == 2)
        #expect(!r.stderr.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x202E })
        #expect(r.stderr.contains("\\u{1B}"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
    }
}
