import ArgumentParser
import Foundation
import SEVMachine

struct Session: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a guest owner's launch session for a platform's PDH certificate.",
        discussion: "Checks the PDH certificate (P-384 ECDH), draws a guest-owner Diffie-Hellman key and transport keys from --seed, and writes godh.cert (the owner's DH certificate for LAUNCH_START), session.bin (the 128-byte SESSION buffer), tek.bin and tik.bin, and what QEMU takes (sev-guest's dh-cert-file and session-file) as sevctl names them: NAME_godh.b64 and NAME_session.b64, with NAME_tek.bin and NAME_tik.bin. The keys are never printed. With --chain (PEK, OCA, CEK as sev-tool writes cert_chain.cert, or PDH, PEK, OCA, CEK as sevctl exports the full chain), also checks that the PDH belongs to the chain and the chain leads to AMD.")

    @Option(help: "The platform's PDH certificate (2084 bytes, as PDH_CERT_EXPORT returns it).") var pdh: String
    @Option(help: "The platform's certificate chain (PEK, OCA, CEK) to check the PDH against.") var chain: String?
    @Option(help: "The guest policy the session binds.") var policy: FlexibleNumber
    @Option(help: "Seed of the owner's keys.") var seed: UInt64 = 1
    @Option(name: .shortAndLong, help: "Directory to write the files into.") var output: String = "."
    @Option(help: "The name of the QEMU files, NAME_godh.b64 and NAME_session.b64 (as sevctl session --name).") var name: String = "vm"

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
            if let problem = GuestOwner.chainProblem(pdh: cert, chain: Array(c)) {
                throw CheckFailed(message: "\(pdh) with \(chain): \(problem)")
            }
        }
        var rng = SeededGenerator(seed: seed)
        let godh = KeyPair(rng: &rng)
        guard let session = LaunchSession.create(own: godh, pdh: pdhKey, policy: UInt32(policy.value), rng: &rng) else {
            throw InputError(description: "\(pdh): no key agreement with this PDH")
        }
        let godhCert = SEVCertificate(apiMajor: 0, apiMinor: 0, usage: .pdh, algorithm: .ecdhSHA256, publicKey: godh.publicKey)
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        guard !name.isEmpty, !name.contains("/") else { throw InputError(description: "--name is a file name prefix, without '/'") }
        let files: [(String, Data)] = [
            ("godh.cert", Data(godhCert.bytes)), ("session.bin", Data(session.blob)), ("tek.bin", Data(session.tek)), ("tik.bin", Data(session.tik)),
            ("\(name)_godh.b64", Data(Data(godhCert.bytes).base64EncodedString().utf8)),
            ("\(name)_session.b64", Data(Data(session.blob).base64EncodedString().utf8)),
            ("\(name)_tek.bin", Data(session.tek)), ("\(name)_tik.bin", Data(session.tik)),
        ]
        for (file, bytes) in files {
            let path = output + "/" + file
            do { try bytes.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
                throw InputError(description: "\(path): cannot write")
            }
        }
        Console.line("wrote \(files.map(\.0).joined(separator: ", ")) to \(output)")
        Console.line("QEMU: -object sev-guest,id=sev0,policy=0x\(String(policy.value, radix: 16)),dh-cert-file=\(output)/\(name)_godh.b64,session-file=\(output)/\(name)_session.b64")
    }
}
