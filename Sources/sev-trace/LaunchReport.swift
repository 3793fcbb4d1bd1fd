import ArgumentParser
import Foundation
import Scenario
import SEVMachine
import TraceFormat

/// `sev-trace launch-report`: each launch of a trace as its guest owner checks it.
struct LaunchReport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "launch-report",
        abstract: "Show each guest's launch as its owner checks it: policy, firmware version, launch digest, measurement, and whether it verifies.",
        discussion: """
            Everything comes from the trace: the policy from LAUNCH_START, the firmware's API version and build \
            from the scenario's platform (and any DOWNLOAD_FIRMWARE since), the launch digest as the SHA-256 of \
            the bytes the firmware read on LAUNCH_UPDATE_DATA's data path, and the measurement and mnonce \
            LAUNCH_MEASURE returned. With --owner-keys DIR (what record --owner-keys wrote: VM_tik.bin) the \
            measurement is recomputed with the owner's TIK; exit 1 when one does not verify.
            """)

    @Argument(help: "The trace bundle.")
    var bundle: String

    @Option(help: "A directory of the owners' transport integrity keys, VM_tik.bin as sevctl names them.")
    var ownerKeys: String?

    /// One guest's launch, as the trace has it.
    struct Launch {
        var platform: UInt8
        var handle: UInt32
        var vm: String?
        var policy: UInt32
        var api: (major: UInt8, minor: UInt8, build: UInt8)
        /// SHA-256 of the bytes measured so far (a digest, not the bytes: a trace may measure any amount).
        var digest = LaunchDigest()
        var measuredBytes = 0
        var updates = 0
        var measurement: [UInt8]?
        var mnonce: [UInt8]?
        var measureSeq: UInt64?
        var startSeq: UInt64
    }

    func run() throws {
        let b = try TraceBundle(existing: bundle)
        let reader = try b.reader()
        let h = reader.header
        let script = try ScenarioParser(file: h.scenarioName).parse(h.scenarioText)
        var firmware: [UInt8: (UInt8, UInt8, UInt8)] = [:]
        for (i, p) in script.platforms.enumerated() { firmware[UInt8(i)] = (p.config.apiMajor, p.config.apiMinor, p.config.build) }
        var vmByASID: [UInt32: String] = [:]
        var launches: [Launch] = []
        var current: [UInt64: Int] = [:]  // (platform << 32 | handle) → index in launches
        var reads: [UInt8] = []  // what the PSP read on its data path since the last command
        var image: [UInt8] = []  // everything the PSP read since the last command (DOWNLOAD_FIRMWARE's image)
        try reader.forEachEvent { e in
            switch e.body {
            case .vmCreated(let v):
                vmByASID[UInt32(v.platform) << 16 | UInt32(v.asid)] = v.name
            case .memoryAccess(let a) where a.actor == .psp && a.kind == .read:
                let bytes = (0..<min(Int(a.size), 8)).map { UInt8(truncatingIfNeeded: a.value >> UInt64(8 * $0)) }
                if image.count < 64 { image += bytes }
                if a.register == Instruction.pspData, reads.count < 1 << 24 { reads += bytes }
            case .pspCommand(let p):
                defer { reads.removeAll(keepingCapacity: true); image.removeAll(keepingCapacity: true) }
                guard p.status == SEVStatus.success.rawValue else { return true }
                let key = UInt64(p.platform) << 32 | UInt64(p.handle)
                switch SEVCommand(rawValue: p.command) {
                case .downloadFirmware where image.count >= 7:
                    firmware[p.platform] = (image[4], image[5], image[6])
                case .launchStart:
                    let d = p.data(as: SEVData.LaunchStart.self)
                    current[key] = launches.count
                    launches.append(Launch(platform: p.platform, handle: p.handle, policy: d.policy,
                                           api: firmware[p.platform] ?? (0, 0, 0), startSeq: e.seq))
                case .activate:
                    if let i = current[key] { launches[i].vm = vmByASID[UInt32(p.platform) << 16 | UInt32(p.asid)] }
                case .launchUpdateData:
                    if let i = current[key] {
                        launches[i].digest.update(reads)
                        launches[i].measuredBytes += reads.count
                        launches[i].updates += 1
                    }
                case .launchMeasure where p.result.count == 48:
                    if let i = current[key] {
                        launches[i].measurement = Array(p.result[0..<32])
                        launches[i].mnonce = Array(p.result[32...])
                        launches[i].measureSeq = e.seq
                        launches[i].api = firmware[p.platform] ?? launches[i].api
                    }
                default: break
                }
            default: break
            }
            return true
        }
        guard !launches.isEmpty else {
            Console.line("no launch in this trace (no successful LAUNCH_START)")
            return
        }
        var mismatches = 0
        for l in launches {
            let name = l.vm ?? "guest handle \(l.handle)"
            let hex = HexArgument.string
            Console.line("\(name) (platform \(l.platform), handle \(l.handle), LAUNCH_START #\(l.startSeq)): policy 0x\(String(l.policy, radix: 16)), API \(l.api.major).\(l.api.minor) build \(l.api.build)")
            let digest = l.digest.finalize()
            Console.line("  launch digest  \(hex(digest))  (\(l.updates) LAUNCH_UPDATE_DATA, \(l.measuredBytes) bytes)")
            guard let m = l.measurement, let n = l.mnonce, let seq = l.measureSeq else {
                Console.line("  measurement    none (no successful LAUNCH_MEASURE)")
                continue
            }
            Console.line("  measurement    \(hex(m))  mnonce \(hex(n))  (LAUNCH_MEASURE #\(seq))")
            guard let dir = ownerKeys else {
                Console.line("  owner's check  not made (give --owner-keys DIR with \(l.vm ?? "VM")_tik.bin)")
                continue
            }
            let file = dir + "/\(l.vm ?? "handle\(l.handle)")_tik.bin"
            guard FileManager.default.fileExists(atPath: file) else {
                Console.line("  owner's check  not made (no \(file))")
                continue
            }
            let tik = [UInt8](try InputFile.data(file, what: "TIK file", limit: 1 << 10))
            guard tik.count == 16 else { throw InputError(description: "\(file) holds \(tik.count) bytes; a TIK is 16") }
            let expected = LaunchMeasurement.compute(apiMajor: l.api.major, apiMinor: l.api.minor, build: l.api.build, policy: l.policy,
                                                     digest: digest, mnonce: n, tik: tik)
            if expected == m {
                Console.line("  owner's check  verified with \(file)")
            } else {
                mismatches += 1
                Console.line("  owner's check  MISMATCH with \(file): it gives \(hex(expected))")
            }
        }
        if mismatches > 0 { throw ExitCode(1) }
    }
}
