/// One recorded event: its position in the trace, the simulated cycle at which it happened, and what happened.
public struct TraceEvent: Equatable, Sendable {
    /// The event's sequence number: its zero-based position in the trace.
    public var seq: UInt64
    /// The simulated cycle count when the event happened (non-decreasing along the trace).
    public var cycle: UInt64
    /// What happened.
    public var body: EventBody

    public init(seq: UInt64, cycle: UInt64, body: EventBody) {
        self.seq = seq
        self.cycle = cycle
        self.body = body
    }
}

/// The vocabulary of the trace. The format knows these shapes; what they mean belongs to the simulator and analyzer.
public enum EventBody: Equatable, Sendable {
    /// A memory access by a vCPU, the hypervisor, a device or the PSP, with its C-bit decision.
    case memoryAccess(MemoryAccess)
    /// An instruction that moved or combined data between registers.
    case registerOp(RegisterOp)
    /// A guest changed the C-bit of a page in its own page tables.
    case cbitChange(CbitChange)
    /// The hypervisor changed the nested page table of a VM.
    case nptChange(NPTChange)
    /// The PSP ran one SEV firmware command.
    case pspCommand(PSPCommand)
    /// The hypervisor created a VM.
    case vmCreated(VMCreated)
    /// Bytes of guest memory were declared secret: a taint source.
    case taintSource(TaintSource)
    /// A vCPU changed its paging mode.
    case vcpuMode(VCPUModeChange)
    /// A vCPU halted.
    case vcpuHalt(VCPURef)
    /// The hypervisor entered a guest (VMRUN) with a VMCB naming an ASID.
    case vmRun(VMRun)
    /// The guest exited to the hypervisor (#VMEXIT), with what the hypervisor sees of its state.
    case vmExit(VMExit)
    /// The guest kernel is about to hand bytes over to a device on purpose (a SWIOTLB bounce): what it
    /// copies into this range is meant to leave the guest.
    case handover(Handover)
    /// The guest owner checked a launch's measurement against the image she expects.
    case ownerCheck(OwnerCheck)
    /// A cache operation: a line written back to memory, a CLFLUSH, a WBINVD, or a platform announcing
    /// its cache.
    case cacheOp(CacheOp)
    /// A platform powered on, with what its CPUID and MSRs say about memory encryption.
    case platformInfo(PlatformInfo)
    /// A `KVM_MEMORY_ENCRYPT_OP` ioctl, as KVM answered it.
    case kvmIoctl(KVMIoctl)
}

/// One `KVM_MEMORY_ENCRYPT_OP` ioctl on a VM: the sub-command id the caller passed (any number), the
/// `sev_fd` in its `struct kvm_sev_cmd`, what KVM returned (0, or an errno) and the firmware status it
/// put in `error` (0 when the firmware did not refuse). The firmware commands it issued are recorded on
/// their own, before it.
public struct KVMIoctl: Equatable, Sendable {
    public var vm: UInt16
    /// The sub-command id (``KVMSevCommand``'s raw value, or any other number the caller passed).
    public var command: UInt32
    public var fd: Int32
    /// 0 for success, else the errno KVM returned (positive: 22 for `-EINVAL`).
    public var errno: Int32
    /// The firmware status KVM reported in `error`.
    public var firmwareError: UInt32

    public init(vm: UInt16, command: UInt32, fd: Int32, errno: Int32, firmwareError: UInt32) {
        self.vm = vm
        self.command = command
        self.fd = fd
        self.errno = errno
        self.firmwareError = firmwareError
    }
}

/// A platform's memory-encryption facts as its processor reports them (CPUID 0x8000001F and
/// 0x80000008, SYSCFG), recorded at power-on so a reader knows the hardware's C-bit whatever a
/// hypervisor tells its guests.
public struct PlatformInfo: Equatable, Sendable {
    public var platform: UInt8
    /// The C-bit position (CPUID 0x8000001F EBX[5:0]).
    public var cbitPosition: UInt8
    /// The physical-address width (CPUID 0x80000008 EAX[7:0]) and the bits memory encryption takes.
    public var physAddrBits: UInt8
    public var physAddrReduction: UInt8
    /// The SEV ASIDs: the smallest for SEV without ES, and the largest.
    public var minSEVASID: UInt16
    public var maxSEVASID: UInt16
    /// CPU cores, and the bytes of each core's cache (0: none).
    public var cores: UInt16
    public var cacheBytes: UInt64
    /// SYSCFG MemEncryptionModEn, and whether the host runs with SME.
    public var memoryEncryption: Bool
    public var sme: Bool

    public init(platform: UInt8, cbitPosition: UInt8, physAddrBits: UInt8, physAddrReduction: UInt8, minSEVASID: UInt16,
                maxSEVASID: UInt16, cores: UInt16, cacheBytes: UInt64, memoryEncryption: Bool, sme: Bool) {
        self.platform = platform
        self.cbitPosition = cbitPosition
        self.physAddrBits = physAddrBits
        self.physAddrReduction = physAddrReduction
        self.minSEVASID = minSEVASID
        self.maxSEVASID = maxSEVASID
        self.cores = cores
        self.cacheBytes = cacheBytes
        self.memoryEncryption = memoryEncryption
        self.sme = sme
    }
}

/// What the cache did.
public enum CacheOperation: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    /// A dirty line went back to memory (encrypted with its tag's key): `spa` is the line.
    case writeBack = 0
    /// CLFLUSH of the `lines` lines from `spa` tagged with key `asid` (0: unkeyed).
    case clflush
    /// WBINVD on every core: every line of the platform.
    case wbinvd
    /// A platform with a cache of `lines` lines was powered on (`spa` is its address base).
    case present
    /// VM_PAGE_FLUSH (MSR 0xC001_011E): the lines of the 4 KiB page at `spa` tagged with key `asid`
    /// go back to memory and out of the cache, which a host CLFLUSH cannot do for a guest's lines.
    case pageFlush

    public var description: String {
        switch self {
        case .writeBack: "writeback"
        case .clflush: "clflush"
        case .wbinvd: "wbinvd"
        case .present: "present"
        case .pageFlush: "vm_page_flush"
        }
    }
}

/// A cache operation.
public struct CacheOp: Equatable, Sendable {
    public var op: CacheOperation
    public var spa: UInt64
    /// The key id of the line(s): the ASID of private lines, 0 for unkeyed ones.
    public var asid: UInt16
    public var lines: UInt64
    /// The core whose cache it concerns (a write-back, WBINVD, or the cache's announcement); 0 for the
    /// broadcast operations (CLFLUSH, VM_PAGE_FLUSH), which reach every core.
    public var core: UInt16

    public init(op: CacheOperation, spa: UInt64, asid: UInt16, lines: UInt64, core: UInt16 = 0) {
        self.op = op
        self.spa = spa
        self.asid = asid
        self.lines = lines
        self.core = core
    }
}

/// A deliberate hand-over: `length` bytes at `gpa` (`spa`) of a VM's shared memory are about to receive
/// data the guest means to send out.
public struct Handover: Equatable, Sendable {
    public var vm: UInt16
    public var vcpu: UInt16
    public var gpa: UInt64
    public var spa: UInt64
    public var length: UInt64

    public init(vm: UInt16, vcpu: UInt16, gpa: UInt64, spa: UInt64, length: UInt64) {
        self.vm = vm
        self.vcpu = vcpu
        self.gpa = gpa
        self.spa = spa
        self.length = length
    }
}

/// The guest owner's check of a launch: whether she accepted its measurement, and the image she expects,
/// as the blocks she measured in LAUNCH_UPDATE_DATA order (each with the guest physical address it must
/// be loaded at) and the guest physical address the guest must start at. The measurement covers the
/// blocks' contents only, not where they lie or where the guest starts, so a launch can pass the check
/// with the blocks elsewhere (undeSErVed trust): the analyzer compares.
public struct OwnerCheck: Equatable, Sendable {
    /// One block of the expected image.
    public struct Region: Equatable, Sendable {
        public var gpa: UInt64
        public var length: UInt64

        public init(gpa: UInt64, length: UInt64) {
            self.gpa = gpa
            self.length = length
        }
    }

    public var vm: UInt16
    public var accepted: Bool
    public var entry: UInt64
    public var regions: [Region]

    public init(vm: UInt16, accepted: Bool, entry: UInt64, regions: [Region]) {
        self.vm = vm
        self.accepted = accepted
        self.entry = entry
        self.regions = regions
    }
}

/// A VMRUN: which VM and vCPU, the ASID the VMCB it ran carried, the VMCB's nested-paging control and
/// nested page table root, and the event the hypervisor injected with it, if any.
public struct VMRun: Equatable, Sendable {
    /// Bits of the VMCB's `nested_ctl` (offset 0x90): nested paging, SEV, SEV-ES.
    public static let npEnable: UInt64 = 1 << 0, sevEnable: UInt64 = 1 << 1, sevESEnable: UInt64 = 1 << 2

    public var vm: UInt16
    public var vcpu: UInt16
    public var asid: UInt16
    /// The VMCB's `nested_ctl`: NP_ENABLE, SEV_ENABLE (the ASID selects a memory-encryption key), SEV-ES_ENABLE.
    public var nestedControl: UInt64
    /// The VMCB's nCR3: the system physical address of the nested page table's root.
    public var ncr3: UInt64
    /// The VMCB's EVENTINJ field (0: nothing injected): bits 7:0 the vector, 10:8 the type (3: an
    /// exception), 11 error code valid, 31 valid, 63:32 the error code.
    public var eventInjection: UInt64
    /// The guest CR2 the hypervisor put in the VMCB with an injected page fault (0 otherwise).
    public var cr2: UInt64

    public init(vm: UInt16, vcpu: UInt16, asid: UInt16, nestedControl: UInt64 = npEnable, ncr3: UInt64 = 0,
                eventInjection: UInt64 = 0, cr2: UInt64 = 0) {
        self.vm = vm
        self.vcpu = vcpu
        self.asid = asid
        self.nestedControl = nestedControl
        self.ncr3 = ncr3
        self.eventInjection = eventInjection
        self.cr2 = cr2
    }

    /// EVENTINJ for a hardware exception with `vector`, and its error code when it has one.
    public static func exception(vector: UInt8, errorCode: UInt32?) -> UInt64 {
        1 << 31 | 3 << 8 | UInt64(vector) | (errorCode.map { 1 << 11 | UInt64($0) << 32 } ?? 0)
    }

    /// Whether the VMCB had SEV enabled: the guest's C=1 accesses use the key of its ASID.
    public var sevEnabled: Bool { nestedControl & Self.sevEnable != 0 }

    /// The vector of the injected event, nil when none.
    public var injectedVector: UInt8? { eventInjection & 1 << 31 != 0 ? UInt8(truncatingIfNeeded: eventInjection) : nil }
}

/// A #VMEXIT: the SVM exit code and information, the guest's rip, and its general-purpose registers as
/// the hypervisor reads them from the VMCB (all of them, for a guest without SEV-ES).
public struct VMExit: Equatable, Sendable {
    /// SVM exit codes the simulator produces.
    public static let interrupt: UInt16 = 0x60, cpuid: UInt16 = 0x72, hlt: UInt16 = 0x78, ioio: UInt16 = 0x7B, msr: UInt16 = 0x7C,
                      shutdown: UInt16 = 0x7F, vmmcall: UInt16 = 0x81, npf: UInt16 = 0x400

    public var vm: UInt16
    public var vcpu: UInt16
    public var exitCode: UInt16
    public var exitInfo1: UInt64
    public var exitInfo2: UInt64
    public var rip: UInt64
    /// r0-r15 (RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8-R15).
    public var registers: [UInt64]

    public init(vm: UInt16, vcpu: UInt16, exitCode: UInt16, exitInfo1: UInt64, exitInfo2: UInt64, rip: UInt64,
                registers: [UInt64]) {
        self.vm = vm
        self.vcpu = vcpu
        self.exitCode = exitCode
        self.exitInfo1 = exitInfo1
        self.exitInfo2 = exitInfo2
        self.rip = rip
        self.registers = registers
    }

    /// A short name for the exit code.
    public static func name(of code: UInt16) -> String {
        switch code {
        case cpuid: "CPUID"
        case hlt: "HLT"
        case ioio: "IOIO"
        case msr: "MSR"
        case vmmcall: "VMMCALL"
        case shutdown: "SHUTDOWN"
        case interrupt: "INTR"
        case npf: "NPF"
        default: "0x" + String(code, radix: 16)
        }
    }
}

/// Who performed a memory access.
public enum Actor: Hashable, Sendable, CustomStringConvertible {
    case vcpu(vm: UInt16, index: UInt16)
    case hypervisor
    case device(UInt16)
    case psp

    public var description: String {
        switch self {
        case .vcpu(let vm, let index): "vcpu\(vm).\(index)"
        case .hypervisor: "hv"
        case .device(let id): "dev\(id)"
        case .psp: "psp"
        }
    }
}

/// What kind of memory access.
public enum AccessKind: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    case read = 0, write, fetch, pageWalk, nestedWalk, dmaRead, dmaWrite

    public var description: String {
        switch self {
        case .read: "read"
        case .write: "write"
        case .fetch: "fetch"
        case .pageWalk: "ptwalk"
        case .nestedWalk: "nptwalk"
        case .dmaRead: "dma-read"
        case .dmaWrite: "dma-write"
        }
    }

    /// True for the kinds that move data out of memory.
    public var isRead: Bool { self != .write && self != .dmaWrite }
}

/// Why the access was (or was not) made with the guest's key.
public enum CbitReason: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    /// The C-bit of the guest page-table entry that maps the address.
    case guestPTE = 0
    /// Forced to 1: paging is off (real or protected mode), so there is no guest page table to ask.
    case forcedNonPaged
    /// Forced to 1: instruction fetches are always private.
    case forcedFetch
    /// Forced to 1: guest page-table walks are always private.
    case forcedPageWalk
    /// A host access: the host page tables decide (no SME: never encrypted).
    case host
    /// A device access: devices have no key.
    case device
    /// The PSP chose the key explicitly for a firmware command.
    case firmware
    /// Forced to 1: 32-bit paging without PAE, whose 4-byte entries have no room for the C-bit.
    case forcedLegacyPaging

    public var description: String {
        switch self {
        case .guestPTE: "pte"
        case .forcedNonPaged: "forced-nonpaged"
        case .forcedFetch: "forced-fetch"
        case .forcedPageWalk: "forced-ptwalk"
        case .host: "host"
        case .device: "device"
        case .firmware: "firmware"
        case .forcedLegacyPaging: "forced-legacy"
        }
    }
}

/// A memory access.
public struct MemoryAccess: Equatable, Sendable {
    /// No register took part (for example a page walk or DMA).
    public static let noRegister: UInt8 = 0xFF
    /// The host's copy path: a write on it names in `gva` the (traced) address its bytes were read from.
    public static let hostCopyRegister: UInt8 = 19
    /// The first of the four guest-kernel save slots (20-23) that hold a caller's registers around a
    /// hypercall the kernel makes itself.
    public static let kernelSaveRegister: UInt8 = 20
    /// The size of a vCPU's register file as events number it: r0-r15, the latch (16), the paths that
    /// are not vCPU registers (17-19), and the kernel save slots (20-23).
    public static let vcpuRegisterSlots = 24
    /// The access concerns no VM (a host-only access).
    public static let noVM: UInt16 = 0xFFFF

    public var actor: Actor
    /// The VM whose memory this is: the vCPU's VM, the VM a device's DMA or the hypervisor's access
    /// addressed by guest physical address, or ``noVM``.
    public var vm: UInt16
    /// The ASID whose key the access used when `cbit` is set (0: the host).
    public var asid: UInt16
    public var kind: AccessKind
    /// Guest virtual address (0 when there is none).
    public var gva: UInt64
    /// Guest physical address (0 when there is none), without the C-bit.
    public var gpa: UInt64
    /// System physical address.
    public var spa: UInt64
    /// Bytes accessed.
    public var size: UInt32
    /// Whether the access went through the encryption engine with the ASID's key.
    public var cbit: Bool
    public var reason: CbitReason
    /// The register the data came from or went to, or ``noRegister``.
    public var register: UInt8
    /// The data as the actor saw it, little-endian, for accesses of at most 8 bytes (ciphertext for a keyless reader of a private line).
    public var value: UInt64

    public init(actor: Actor, vm: UInt16, asid: UInt16, kind: AccessKind, gva: UInt64, gpa: UInt64, spa: UInt64, size: UInt32,
                cbit: Bool, reason: CbitReason, register: UInt8 = MemoryAccess.noRegister, value: UInt64 = 0) {
        self.actor = actor
        self.vm = vm
        self.asid = asid
        self.kind = kind
        self.gva = gva
        self.gpa = gpa
        self.spa = spa
        self.size = size
        self.cbit = cbit
        self.reason = reason
        self.register = register
        self.value = value
    }
}

/// The kind of a register-to-register instruction effect.
public enum RegisterOpKind: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    /// dst = immediate (clears what dst carried).
    case loadImmediate = 0
    /// dst = src.
    case move
    /// dst = dst op src: the result depends on both.
    case add, sub, xor, and, or
    /// dst = dst op immediate: the result depends on dst only.
    case addImmediate

    public var description: String {
        switch self {
        case .loadImmediate: "li"
        case .move: "mov"
        case .add: "add"
        case .sub: "sub"
        case .xor: "xor"
        case .and: "and"
        case .or: "or"
        case .addImmediate: "addi"
        }
    }
}

/// An instruction effect that moves data between registers, so taint can follow it.
public struct RegisterOp: Equatable, Sendable {
    public var vm: UInt16
    public var vcpu: UInt16
    public var op: RegisterOpKind
    public var dst: UInt8
    /// The source register, or ``MemoryAccess/noRegister``.
    public var src: UInt8
    /// The value written to dst.
    public var result: UInt64

    public init(vm: UInt16, vcpu: UInt16, op: RegisterOpKind, dst: UInt8, src: UInt8, result: UInt64) {
        self.vm = vm
        self.vcpu = vcpu
        self.op = op
        self.dst = dst
        self.src = src
        self.result = result
    }
}

/// A C-bit change in a guest page-table entry.
public struct CbitChange: Equatable, Sendable {
    public var vm: UInt16
    public var vcpu: UInt16
    public var gva: UInt64
    /// The guest physical page the entry maps.
    public var gpa: UInt64
    /// The system physical page the entry maps.
    public var spa: UInt64
    /// Where the page-table entry itself lives (system physical).
    public var pteSPA: UInt64
    public var old: Bool
    public var new: Bool

    public init(vm: UInt16, vcpu: UInt16, gva: UInt64, gpa: UInt64, spa: UInt64, pteSPA: UInt64, old: Bool, new: Bool) {
        self.vm = vm
        self.vcpu = vcpu
        self.gva = gva
        self.gpa = gpa
        self.spa = spa
        self.pteSPA = pteSPA
        self.old = old
        self.new = new
    }
}

/// A nested-page-table operation.
public enum NPTOperation: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    case map = 0, unmap, remap

    public var description: String {
        switch self {
        case .map: "map"
        case .unmap: "unmap"
        case .remap: "remap"
        }
    }
}

/// A change of a VM's nested page table covering `pages` consecutive 4 KiB pages.
public struct NPTChange: Equatable, Sendable {
    public var vm: UInt16
    public var op: NPTOperation
    public var gpa: UInt64
    public var spa: UInt64
    public var pages: UInt64

    public init(vm: UInt16, op: NPTOperation, gpa: UInt64, spa: UInt64, pages: UInt64) {
        self.vm = vm
        self.op = op
        self.gpa = gpa
        self.spa = spa
        self.pages = pages
    }
}

/// One SEV firmware command as the PSP ran it.
public struct PSPCommand: Equatable, Sendable {
    /// The platform whose PSP ran it.
    public var platform: UInt8
    /// The SEV API command id (for example 0x30 for LAUNCH_START).
    public var command: UInt8
    /// The guest handle the command named (0: none).
    public var handle: UInt32
    /// The ASID involved (0: none).
    public var asid: UInt16
    /// The SEV API status code the firmware returned.
    public var status: UInt16
    public var platformBefore: UInt8
    public var platformAfter: UInt8
    /// Guest state before and after (0xFF: no guest).
    public var guestBefore: UInt8
    public var guestAfter: UInt8
    /// The command buffer as the firmware left it (packed, little-endian, as the SEV API lays it out).
    public var buffer: [UInt8]
    /// What the command gave back in the caller's memory, when it succeeded: LAUNCH_MEASURE's measurement ‖
    /// mnonce, the attestation report, DBG_DECRYPT's plaintext, SEND_START's session, PEK_CSR's request,
    /// GET_ID's ids (empty for the others).
    public var result: [UInt8]

    public init(platform: UInt8 = 0, command: UInt8, handle: UInt32, asid: UInt16, status: UInt16, platformBefore: UInt8,
                platformAfter: UInt8, guestBefore: UInt8, guestAfter: UInt8, buffer: [UInt8], result: [UInt8] = []) {
        self.result = result
        self.platform = platform
        self.command = command
        self.handle = handle
        self.asid = asid
        self.status = status
        self.platformBefore = platformBefore
        self.platformAfter = platformAfter
        self.guestBefore = guestBefore
        self.guestAfter = guestAfter
        self.buffer = buffer
    }
}

/// A VM as the hypervisor created it.
public struct VMCreated: Equatable, Sendable {
    public var vm: UInt16
    /// The platform the VM runs on.
    public var platform: UInt8
    public var name: String
    /// The ASID the hypervisor gave it: one of the platform's SEV ASIDs for an SEV guest, one above them
    /// for a VM without SEV (as KVM's `min_asid = max_sev_asid + 1`).
    public var asid: UInt16
    public var policy: UInt32
    public var memoryBytes: UInt64
    public var vcpus: UInt16
    /// Whether the VM is an SEV guest.
    public var sev: Bool

    public init(vm: UInt16, platform: UInt8 = 0, name: String, asid: UInt16, policy: UInt32, memoryBytes: UInt64, vcpus: UInt16,
                sev: Bool) {
        self.vm = vm
        self.platform = platform
        self.name = name
        self.sev = sev
        self.asid = asid
        self.policy = policy
        self.memoryBytes = memoryBytes
        self.vcpus = vcpus
    }
}

/// A declared secret: `length` bytes of a VM's memory from `gpa` (at `spa`).
public struct TaintSource: Equatable, Sendable {
    public var vm: UInt16
    public var name: String
    public var gpa: UInt64
    public var spa: UInt64
    public var length: UInt64

    public init(vm: UInt16, name: String, gpa: UInt64, spa: UInt64, length: UInt64) {
        self.vm = vm
        self.name = name
        self.gpa = gpa
        self.spa = spa
        self.length = length
    }
}

/// A vCPU's paging mode, which decides whether the guest page tables choose the C-bit.
public enum PagingMode: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    /// Real mode, or protected mode with paging off: linear is physical.
    case real = 0, protected
    /// PAE paging (3 levels of 8-byte entries over a 32-bit linear address) and long mode (4 levels).
    case pae, long
    /// 32-bit paging without PAE: 2 levels of 4-byte entries, 4 KiB or 4 MiB pages.
    case legacy

    public var description: String {
        switch self {
        case .real: "real"
        case .protected: "protected"
        case .pae: "pae"
        case .long: "long"
        case .legacy: "legacy"
        }
    }

    /// Whether the vCPU translates through guest page tables in this mode.
    public var walksGuestPageTables: Bool { self != .real && self != .protected }
    /// Whether the page-table entries carry the C-bit (8-byte entries), so the guest chooses it per page;
    /// in every other mode the hardware forces it.
    public var pteChoosesCbit: Bool { self == .pae || self == .long }
}

/// A vCPU's mode change.
public struct VCPUModeChange: Equatable, Sendable {
    public var vm: UInt16
    public var vcpu: UInt16
    public var mode: PagingMode

    public init(vm: UInt16, vcpu: UInt16, mode: PagingMode) {
        self.vm = vm
        self.vcpu = vcpu
        self.mode = mode
    }
}

/// Names a vCPU.
public struct VCPURef: Hashable, Sendable {
    public var vm: UInt16
    public var vcpu: UInt16

    public init(vm: UInt16, vcpu: UInt16) {
        self.vm = vm
        self.vcpu = vcpu
    }
}
