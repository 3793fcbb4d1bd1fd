import ArgumentParser
import Foundation
import SEVMachine

struct Session: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a guest owner's launch session for a platform's PDH certificate.",
        discussion: "Checks the PDH certificate (P-384 ECDH), draws a guest-owner Diffie-Hellman key and transport keys from --seed, and writes godh.cert (the owner's DH certificate for LAUNCH_START), session.bin (the 128-byte SESSION buffer), tek.bin and tik.bin. With --chain, also checks that the PDH leads to AMD through the PEK and CEK.")

    @Option(help: "The platform's PDH certificate (2084 bytes, as PDH_CERT_EXPORT returns it).") var pdh: String
    @Option(help: "The platform's certificate chain (PEK, OCA, CEK) to check the PDH against.") var chain: String?
    @Option(help: "The guest policy the session binds.") var policy: FlexibleNumber
    @Option(help: "Seed of the owner's keys.") var seed: UInt64 = 1
    @Option(name: .shortAndLong, help: "Directory to write the files into.") var output: String = "."

    func run() throws {
        guard policy.value <= UInt64(UInt32.max) else { throw InputError(description: "--policy is a 32-bit value") }
        guard let data = FileManager.default.contents(atPath: pdh), let cert = SEVCertificate(bytes: Array(data)) else {
            throw InputError(description: "\(pdh): not a 2084-byte SEV certificate")
        }
        guard cert.isECDHP384, let pdhKey = cert.publicKeyX963 else {
            throw InputError(description: "\(pdh): not a P-384 ECDH (PDH) certificate")
        }
        if let chain {
            guard let c = FileManager.default.contents(atPath: chain) else { throw InputError(description: "\(chain): cannot read") }
            guard GuestOwner.checkChain(pdh: cert, chain: Array(c)) else {
                throw CheckFailed(message: "\(pdh): the certificate chain does not lead to AMD")
            }
        }
        var rng = SeededGenerator(seed: seed)
        let godh = KeyPair(rng: &rng)
        guard let session = LaunchSession.create(own: godh, pdh: pdhKey, policy: UInt32(policy.value), rng: &rng) else {
            throw InputError(description: "\(pdh): no key agreement with this PDH")
        }
        let godhCert = SEVCertificate(apiMajor: 0, apiMinor: 0, usage: .pdh, algorithm: .ecdhSHA256, publicKey: godh.publicKey)
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        for (name, bytes) in [("godh.cert", godhCert.bytes), ("session.bin", session.blob), ("tek.bin", session.tek),
                              ("tik.bin", session.tik)] {
            let path = output + "/" + name
            guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
                throw InputError(description: "\(path): cannot write")
            }
        }
        Console.line("wrote godh.cert, session.bin, tek.bin, tik.bin to \(output) (tik \(HexArgument.string(session.tik)))")
    }
}
