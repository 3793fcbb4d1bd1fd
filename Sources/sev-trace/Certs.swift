import ArgumentParser
import Foundation
import Scenario
import SEVMachine
import TraceFormat

struct Certs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export a simulated platform's PDH certificate and chain (PDH_CERT_EXPORT).",
        discussion: "Powers on the scenario's platforms with --seed, as `record` does, and writes pdh.cert and cert_chain.cert (PEK, OCA, CEK) of the named platform. A platform's keys depend only on the seed and its place among the platforms, so these are the certificates a recording with the same scenario and seed uses (until the scenario issues PEK_GEN or PDH_GEN).")

    @Argument(help: "The scenario (default: the embedded default scenario).") var scenario: String?
    @Option(help: "The platform (default: the first).") var platform: String?
    @Option(help: "The seed.") var seed: UInt64 = 1
    @Option(name: .shortAndLong, help: "Directory to write the files into.") var output: String = "."

    func run() throws {
        let script = try ScenarioInput.load(scenario, limits: ScenarioLimits())
        let machine = Machine(seed: seed, sink: CountingSink())
        for p in script.platforms { machine.addPlatform(name: p.name, config: p.config) }
        guard let target = platform.map(machine.platform(named:)) ?? machine.platforms.first else {
            throw InputError(description: "no platform named '\(platform ?? "")'")
        }
        let identity = target.firmware.identity
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        for (name, bytes) in [("pdh.cert", identity.pdhCert.bytes), ("cert_chain.cert", identity.chain)] {
            guard FileManager.default.createFile(atPath: output + "/" + name, contents: Data(bytes)) else {
                throw InputError(description: "\(output)/\(name): cannot write")
            }
        }
        Console.line("wrote pdh.cert and cert_chain.cert of platform \(target.name) to \(output)")
    }
}
