import Foundation
import TraceFormat
import ArgumentParser
import SEVMachine

/// Parses numbers written in decimal or with a 0x prefix.
struct FlexibleNumber: ExpressibleByArgument {
    let value: UInt64

    init?(argument: String) {
        let s = argument.lowercased()
        guard let v = s.hasPrefix("0x") ? UInt64(s.dropFirst(2), radix: 16) : UInt64(s) else { return nil }
        value = v
    }
}

/// Hex arguments.
enum HexArgument {
    static func bytes(_ s: String, count: Int, name: String) throws -> [UInt8] {
        let digits = Array(s.lowercased().hasPrefix("0x") ? String(s.dropFirst(2)) : s)
        guard digits.count == 2 * count else {
            throw InputError(description: "--\(name) takes \(count) bytes (\(2 * count) hex digits), got \(digits.count) digits")
        }
        return try stride(from: 0, to: digits.count, by: 2).map {
            guard let b = UInt8(String(digits[$0...$0 + 1]), radix: 16) else {
                throw InputError(description: "--\(name): '\(String(digits[$0...$0 + 1]))' is not hex")
            }
            return b
        }
    }

    static func string(_ bytes: [UInt8]) -> String { bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }
}

struct Measure: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compute an SEV launch measurement, or check one a launch reported, as a guest owner does.",
        discussion: """
            MEASURE = HMAC-SHA256(TIK, 0x04 || API_MAJOR || API_MINOR || BUILD || POLICY (LE32) || DIGEST || MNONCE); \
            firmware older than API 0.17 omits the 0x04 || version prefix. Prints 32 bytes as lowercase hex; with \
            --launch-measure-blob (what QEMU's query-sev-launch-measure returns: base64 of measurement || mnonce) it \
            checks the blob's measurement instead, prints "verified" or the difference, and exits 1 on a mismatch.

            Numbers (--api-major, --api-minor, --build/--build-id, --policy) are decimal, or hex with 0x, as sevctl \
            reads them. Byte strings (--digest/--launch-digest, --mnonce/--nonce, --tik) are hex or base64; a string \
            that is neither the hex nor the base64 of the right number of bytes is refused. The TIK can come from a \
            file of 16 raw bytes (--tik-file, sevctl's VM_tik.bin). sev-tool's form, where every field is hex bytes, \
            is --sev-tool CONTEXT API_MAJOR API_MINOR BUILD_ID POLICY DIGEST MNONCE TIK, as its calc_measurement \
            takes them (e.g. 04 00 12 0f 00 …: API 0.18, build 15).
            """)

    @Option(help: "Firmware API major version (decimal, or 0x hex).") var apiMajor: FlexibleNumber?
    @Option(help: "Firmware API minor version (decimal, or 0x hex).") var apiMinor: FlexibleNumber?
    @Option(name: [.long, .customLong("build-id")], help: "Firmware build (decimal, or 0x hex; --build-id as sevctl).") var build: FlexibleNumber?
    @Option(help: "Guest policy (decimal, or 0x hex).") var policy: FlexibleNumber?
    @Option(name: [.long, .customLong("launch-digest")], help: "SHA-256 launch digest: 64 hex digits or base64 (--launch-digest as sevctl).")
    var digest: String?
    @Option(name: [.long, .customLong("nonce")], help: "The firmware's nonce from LAUNCH_MEASURE: 32 hex digits or base64 (--nonce as sevctl).")
    var mnonce: String?
    @Option(help: "Transport integrity key: 32 hex digits or base64.") var tik: String?
    @Option(help: "A file holding the 16-byte transport integrity key (sevctl's VM_tik.bin).") var tikFile: String?
    @Option(help: "Check this measurement: base64 (or hex) of measurement || mnonce, 48 bytes, as QEMU reports it.")
    var launchMeasureBlob: String?
    @Option(parsing: .upToNextOption, help: "sev-tool's calc_measurement arguments, all hex: CONTEXT API_MAJOR API_MINOR BUILD_ID POLICY DIGEST MNONCE TIK.")
    var sevTool: [String] = []

    /// The inputs, whichever form gave them.
    struct Inputs {
        var apiMajor: UInt8, apiMinor: UInt8, build: UInt8, policy: UInt32
        var digest: [UInt8], mnonce: [UInt8]?, tik: [UInt8]
    }

    func run() throws {
        let inputs = sevTool.isEmpty ? try named() : try Self.sevToolForm(sevTool)
        var mnonce = inputs.mnonce
        var reported: [UInt8]?
        if let launchMeasureBlob {
            let blob = try Self.bytes(launchMeasureBlob, count: 48, name: "launch-measure-blob")
            reported = Array(blob[0..<32])
            if let given = mnonce, given != Array(blob[32...]) {
                throw InputError(description: "--nonce differs from the nonce in --launch-measure-blob")
            }
            mnonce = Array(blob[32...])
        }
        guard let mnonce else { throw InputError(description: "give --mnonce (--nonce) or --launch-measure-blob") }
        let m = LaunchMeasurement.compute(apiMajor: inputs.apiMajor, apiMinor: inputs.apiMinor, build: inputs.build,
                                          policy: inputs.policy, digest: inputs.digest, mnonce: mnonce, tik: inputs.tik)
        guard let reported else {
            Console.line(HexArgument.string(m))
            return
        }
        if m == reported {
            Console.line("verified: the launch's measurement \(HexArgument.string(m)) is what these inputs give")
        } else {
            Console.line("mismatch: the launch reported \(HexArgument.string(reported)); these inputs give \(HexArgument.string(m))")
            throw ExitCode(1)
        }
    }

    /// The named options (sevctl's names and bases, and this tool's).
    func named() throws -> Inputs {
        func number(_ v: FlexibleNumber?, _ name: String, max: UInt64) throws -> UInt64 {
            guard let v else { throw InputError(description: "give --\(name)") }
            guard v.value <= max else { throw InputError(description: "--\(name) \(v.value) is out of range (at most \(max))") }
            return v.value
        }
        guard let digest else { throw InputError(description: "give --digest (--launch-digest)") }
        var key: [UInt8]
        switch (tik, tikFile) {
        case (let t?, nil): key = try Self.bytes(t, count: 16, name: "tik")
        case (nil, let f?):
            key = [UInt8](try InputFile.data(f, what: "TIK file", limit: 1 << 10))
            guard key.count == 16 else { throw InputError(description: "\(f) holds \(key.count) bytes; a TIK is 16") }
        default: throw InputError(description: "give --tik or --tik-file, not both or neither")
        }
        return Inputs(apiMajor: UInt8(try number(apiMajor, "api-major", max: 255)), apiMinor: UInt8(try number(apiMinor, "api-minor", max: 255)),
                      build: UInt8(try number(build, "build", max: 255)), policy: UInt32(try number(policy, "policy", max: UInt64(UInt32.max))),
                      digest: try Self.bytes(digest, count: 32, name: "digest"),
                      mnonce: try mnonce.map { try Self.bytes($0, count: 16, name: "mnonce") }, tik: key)
    }

    /// sev-tool's calc_measurement arguments: every field hex, the context 04.
    static func sevToolForm(_ a: [String]) throws -> Inputs {
        guard a.count == 8 else { throw InputError(description: "--sev-tool takes 8 hex fields (CONTEXT API_MAJOR API_MINOR BUILD_ID POLICY DIGEST MNONCE TIK), got \(a.count)") }
        func byte(_ i: Int, _ name: String) throws -> UInt8 { try HexArgument.bytes(a[i], count: 1, name: "sev-tool \(name)")[0] }
        guard try byte(0, "context") == 0x04 else { throw InputError(description: "--sev-tool: the context is 04 (LAUNCH_MEASURE's HMAC)") }
        let policyDigits = a[4].lowercased().hasPrefix("0x") ? String(a[4].dropFirst(2)) : a[4]
        guard !policyDigits.isEmpty, policyDigits.count <= 8, let policy = UInt32(policyDigits, radix: 16) else {
            throw InputError(description: "--sev-tool policy: '\(printable(a[4]))' is not up to 8 hex digits")
        }
        return Inputs(apiMajor: try byte(1, "api major"), apiMinor: try byte(2, "api minor"), build: try byte(3, "build id"), policy: policy,
                      digest: try HexArgument.bytes(a[5], count: 32, name: "sev-tool digest"),
                      mnonce: try HexArgument.bytes(a[6], count: 16, name: "sev-tool mnonce"),
                      tik: try HexArgument.bytes(a[7], count: 16, name: "sev-tool tik"))
    }

    /// `count` bytes written as hex or as base64; anything else (or both readings failing) is refused.
    static func bytes(_ s: String, count: Int, name: String) throws -> [UInt8] {
        let hexDigits = s.lowercased().hasPrefix("0x") ? String(s.dropFirst(2)) : s
        if hexDigits.count == 2 * count, hexDigits.allSatisfy(\.isHexDigit) {
            return try HexArgument.bytes(hexDigits, count: count, name: name)
        }
        if let data = Data(base64Encoded: s), data.count == count { return [UInt8](data) }
        throw InputError(description: "--\(name) takes \(count) bytes as \(2 * count) hex digits or as base64; '\(printable(String(s.prefix(100))))' is neither")
    }
}
