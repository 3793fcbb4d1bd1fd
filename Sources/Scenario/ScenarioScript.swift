import SEVMachine
import TraceFormat

/// A parsed scenario: the platform and the statements to run, in order, each with where it was written.
public struct ScenarioScript: Sendable {
    /// The file name used in diagnostics.
    public var file: String
    /// The scenario's full text (stored in the trace for replay).
    public var text: String
    /// The platforms, in declaration order (one called `host` with the defaults when none is declared).
    public var platforms: [(name: String, config: PlatformConfig)]
    public var statements: [Located]
    /// The limits the script was parsed under, which also bound its run.
    public var limits = ScenarioLimits()

    /// The first platform's configuration.
    public var platform: PlatformConfig { platforms[0].config }

    /// A statement and its place in the file.
    public struct Located: Sendable {
        public var location: SourceLocation
        public var statement: Statement
    }

    /// What a scenario can say.
    public enum Statement: Sendable {
        /// Create a VM.
        case vm(VMSpec)
        /// Attach a DMA-capable device.
        case device(name: String, platform: String)
        /// The guest kernel maps `pages` pages at `gpa` decrypted at boot.
        case shared(vm: String, gpa: UInt64, pages: UInt64)
        /// Bytes the hypervisor loads at `gpa` before launch (measured by LAUNCH_UPDATE_DATA).
        case data(vm: String, gpa: UInt64, bytes: [UInt8])
        /// A guest program, assembled, loaded at `gpa` before launch, run from its first instruction.
        case program(vm: String, gpa: UInt64, instructions: [Instruction])
        /// A guest owner with its own Diffie-Hellman key and the policy it asks for.
        case owner(name: String, policy: UInt32)
        /// Launch the VM as KVM and QEMU do.
        case launch(LaunchSpec)
        /// The owner sends a secret with LAUNCH_SECRET (then LAUNCH_FINISH); it becomes a taint source.
        case inject(vm: String, gpa: UInt64, name: String, owner: String, bytes: [UInt8], expect: String?)
        /// KVM_SEV_DBG_DECRYPT / DBG_ENCRYPT.
        case debugDecrypt(vm: String, gpa: UInt64, length: Int, expect: String?, expectBytes: [UInt8]?)
        case debugEncrypt(vm: String, gpa: UInt64, bytes: [UInt8], expect: String?)
        /// KVM_SEV_GET_ATTESTATION_REPORT.
        case attest(vm: String, mnonce: [UInt8], expect: String?)
        /// Migrate the VM to another platform, where it continues as `newName`.
        case migrate(vm: String, platform: String, newName: String, finish: Bool, expect: String?)
        /// Run a vCPU until it halts, optionally with another ASID in its VMCB; `expectShutdown` when the
        /// scenario means the guest to crash.
        case run(vm: String, vcpu: Int, asid: UInt16?, expectShutdown: Bool)
        /// A statement run `count` times in a row (`times=N`).
        indirect case repeated(count: Int, statement: Statement)
        /// Destroy the VM as KVM does; its ASID waits for reclaim.
        case destroy(vm: String)
        /// Run every vCPU of the VMs interleaved by the seeded scheduler until all halt; `actions` (device
        /// and hypervisor statements) run in order, each at a point between time slices the seed picks.
        case schedule(vms: [String], quantum: Int, actions: [Statement])
        /// The guest writes a secret into its private memory: the analyzer's taint source.
        case secret(vm: String, gpa: UInt64, name: String, bytes: [UInt8])
        /// A device reads or writes guest memory by DMA.
        case dmaRead(device: String, vm: String, gpa: UInt64, length: Int)
        case dmaWrite(device: String, vm: String, gpa: UInt64, bytes: [UInt8])
        /// The hypervisor reads or writes guest memory. A read `as` a name keeps the bytes it got.
        case hvRead(vm: String, gpa: UInt64, length: Int, capture: String?)
        case hvWrite(vm: String, gpa: UInt64, bytes: [UInt8])
        /// The hypervisor writes back bytes an earlier read captured (ciphertext, for a replay).
        case hvWriteCaptured(vm: String, gpa: UInt64, capture: String)
        /// The hypervisor unmaps guest pages to watch the guest's accesses to them (nested page faults).
        case hvUnmap(vm: String, gpa: UInt64, pages: UInt64)
        /// The hypervisor's CPUID 0x8000001F tells the guest another C-bit position than the hardware's.
        case hvCPUIDCbit(vm: String, position: Int)
        /// The hypervisor answers the VM's exits with values it chose (`hv answer`).
        case hvAnswer(vm: String, answer: HypervisorAnswer)
        /// The VMM deletes one of the VM's memslots (KVM_SET_USER_MEMORY_REGION with size 0).
        case hvDeleteSlot(vm: String, slot: UInt16)
        /// The host kernel swaps guest pages out; the guest's next access brings each back (async PF).
        case hvSwapOut(vm: String, gpa: UInt64, pages: UInt64)
        /// The hypervisor points a guest page at the frame behind another guest physical address.
        case hvRemap(vm: String, gpa: UInt64, toGPA: UInt64, of: String)
        /// The host kernel migrates a guest page to another host frame.
        case hvMigratePage(vm: String, gpa: UInt64)
        /// VM_PAGE_FLUSH of one guest page with the guest's ASID.
        case hvPageFlush(vm: String, gpa: UInt64)
        /// WBINVD on every core of a platform, or on one (a hypervisor that forgets the others).
        case wbinvd(platform: String, core: Int?)
        /// One firmware command issued directly, for firmware tests.
        case psp(command: PSPStatement, platform: String, vm: String?, arguments: PSPArguments, expect: String?)
        /// One `KVM_MEMORY_ENCRYPT_OP` ioctl issued directly, for KVM tests and launches taken step by step.
        case kvm(KVMStatement)
    }

    /// A VM as `vm` declares it; the defaults are the language's.
    public struct VMSpec: Sendable {
        public var name: String
        /// The platform it runs on.
        public var platform: String
        public var memory: UInt64 = 4 << 20
        public var policy: UInt32 = 0x1
        /// false: a plain VM (KVM gives it an ASID above the SEV range).
        public var sev = true
        public var vcpus = 1
        /// Where the guest kernel registers its kvmclock page, if it does.
        public var kvmclock: UInt64?
        /// The guest kernel maps its memory with large pages (2M, or 4M with legacy paging).
        public var largePages = false
        /// The guest physical address of its MMIO window, if it has one.
        public var mmio: UInt64?
        public var paging: PagingMode = .long
        /// The memslots its memory is split into.
        public var slots = 1
        /// The guest kernel runs `sev_verify_cbit` at boot.
        public var verifyCbit = false

        public init(name: String, platform: String) {
            self.name = name
            self.platform = platform
        }
    }

    /// A `launch`: a guest owner's session when one is named; stop before LAUNCH_FINISH when `finish` is
    /// false (so the owner can inject a secret); `pin` false skips KVM_MEMORY_ENCRYPT_REG_REGION; `share`
    /// names the guest whose key to share; `placement` and `entry` are where a malicious hypervisor loads
    /// the image's blocks and starts the guest instead.
    public struct LaunchSpec: Sendable {
        public var vm: String
        public var owner: String?
        public var finish = true
        public var share: String?
        public var pin = true
        public var placement: [UInt64]?
        public var entry: UInt64?
        public var expect: String?

        public init(vm: String) { self.vm = vm }
    }

    /// A `kvm` statement: the sub-command id (one KVM knows, or any number), the `/dev/sev` descriptor
    /// (nil: the VMM's), the arguments the sub-command takes, and the outcome expected.
    public struct KVMStatement: Sendable {
        public var vm: String
        public var command: UInt32
        public var fd: Int32?
        public var gpa: UInt64?
        public var length: UInt32?
        public var policy: UInt32?
        public var expect: String?
        /// `expect-hex=`: the bytes the sub-command must give back (measurement, report, plaintext).
        public var expectBytes: [UInt8]?
    }

    /// What a raw firmware command takes besides the VM's handle.
    public struct PSPArguments: Sendable {
        public var asid: UInt16?
        public var policy: UInt32?
        public var gpa: UInt64?
        /// COPY's destination: the guest address whose frame receives the bytes.
        public var destination: UInt64?
        public var length: UInt32?
        /// DOWNLOAD_FIRMWARE's image version (API major, minor, build).
        public var firmware: (major: UInt8, minor: UInt8, build: UInt8)?
        /// PEK_CERT_IMPORT: whether the owner's OCA signed the PEK certificate.
        public var ocaSigned = true
    }

    /// One answer a hypervisor chose: IN from a port, a load from an MMIO address, a CPUID leaf, an MSR.
    public enum HypervisorAnswer: Sendable {
        case port(UInt16, value: UInt64)
        case mmio(UInt64, value: UInt64)
        case cpuid(UInt32, eax: UInt64, ebx: UInt64, ecx: UInt64, edx: UInt64)
        case msr(UInt32, value: UInt64)
    }

    /// The firmware commands a scenario can issue directly.
    public enum PSPStatement: String, CaseIterable, Sendable {
        case initialize = "init", shutdown, platformStatus = "platform_status", dfFlush = "df_flush"
        case pekGen = "pek_gen", pdhGen = "pdh_gen", factoryReset = "factory_reset"
        case activate, deactivate, decommission, guestStatus = "guest_status"
        case launchStart = "launch_start", launchUpdateData = "launch_update_data", launchMeasure = "launch_measure"
        case launchFinish = "launch_finish"
        case pekCSR = "pek_csr", pdhCertExport = "pdh_cert_export", getID = "get_id", downloadFirmware = "download_firmware"
        case pekCertImport = "pek_cert_import"
        case copy

        /// Whether the command names a VM.
        var needsVM: Bool {
            switch self {
            case .activate, .deactivate, .decommission, .guestStatus, .launchStart, .launchUpdateData, .launchMeasure,
                 .launchFinish, .copy: true
            default: false
            }
        }

        /// The options the command takes besides `expect=`.
        var options: [String] {
            switch self {
            case .activate: ["asid"]
            case .launchStart: ["policy"]
            case .launchUpdateData: ["gpa", "len"]
            case .copy: ["gpa", "len", "to"]
            case .launchMeasure: ["len"]
            case .deactivate, .decommission, .guestStatus, .launchFinish: []
            case .pekCSR, .pdhCertExport, .getID: ["platform", "len"]
            case .downloadFirmware: ["platform", "api", "build"]
            case .pekCertImport: ["platform", "len", "signed"]
            default: ["platform"]
            }
        }

        /// The SEV API command.
        var command: SEVCommand {
            switch self {
            case .initialize: .initialize
            case .shutdown: .shutdown
            case .platformStatus: .platformStatus
            case .dfFlush: .dfFlush
            case .pekGen: .pekGen
            case .pdhGen: .pdhGen
            case .factoryReset: .factoryReset
            case .activate: .activate
            case .deactivate: .deactivate
            case .decommission: .decommission
            case .guestStatus: .guestStatus
            case .launchStart: .launchStart
            case .launchUpdateData: .launchUpdateData
            case .launchMeasure: .launchMeasure
            case .launchFinish: .launchFinish
            case .pekCSR: .pekCSR
            case .pekCertImport: .pekCertImport
            case .pdhCertExport: .pdhCertExport
            case .getID: .getID
            case .downloadFirmware: .downloadFirmware
            case .copy: .copy
            }
        }
    }
}
