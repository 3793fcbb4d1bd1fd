import TraceFormat

/// A VM as the hypervisor sees it: its memory (through the nested page table), its ASID and SEV
/// handle, its vCPUs, and what its owner asked to load before launch.
public final class VirtualMachine {
    public let id: UInt16
    public let name: String
    /// The platform the VM runs on.
    public unowned let platform: Platform
    public let memoryBytes: UInt64
    public let policy: UInt32
    /// The ASID KVM gave it (0: not an SEV guest).
    public internal(set) var asid: UInt16
    /// The firmware's handle for it (0 before LAUNCH_START).
    public internal(set) var handle: UInt32 = 0
    /// Whether KVM_SEV_INIT ran for it.
    public internal(set) var sevActive = false
    /// The `/dev/sev` descriptor LAUNCH_START or RECEIVE_START gave (`sev->fd`): later sub-commands issue
    /// their firmware commands through it. 0 until then, which is not `/dev/sev`.
    var sevFD: Int32 = 0
    /// Whether the hypervisor destroyed it.
    public internal(set) var destroyed = false
    /// The nested page table's top level in host memory, and its last-level tables in order.
    public internal(set) var nptRoot: UInt64 = 0
    var nptTables: [UInt64] = []
    /// Frames of pages the hypervisor unmapped to watch them, by guest page number.
    var trackedFrames: [UInt64: UInt64] = [:]
    /// Frames of pages the host swapped out, by guest page; the nested page table has no entry for them.
    var swappedFrames: [UInt64: UInt64] = [:]
    /// The nested page table: the system physical page of each guest physical page (`unmapped` if none).
    var npt: [UInt64]
    static let unmapped = UInt64.max
    public internal(set) var vcpus: [VCPU] = []
    /// Data staged into guest memory by the hypervisor before launch and measured by LAUNCH_UPDATE_DATA.
    public internal(set) var image: [(gpa: UInt64, bytes: [UInt8])] = []
    /// Guest physical ranges the guest kernel maps decrypted at boot (`__bss_decrypted`-style).
    public internal(set) var sharedAtBoot: [(gpa: UInt64, pages: UInt64)] = []
    /// Where the guest kernel's own pages start (guest physical), at the top of its memory, and how many
    /// there are: its data page (`sev_verify_cbit`'s scratch value), then the page tables.
    public let pageTableBase: UInt64
    public let pageTablePages: UInt64
    /// The kernel's data page, below its page tables.
    var kernelDataPage: UInt64 { pageTableBase }
    /// Where the guest starts executing once booted.
    public var entry: UInt64 = 0
    /// Where the guest kernel registers its kvmclock area at boot: one 32-byte `pvclock_vcpu_time_info` per
    /// vCPU, as each vCPU's MSR_KVM_SYSTEM_TIME_NEW (a guest can also write the MSR itself); nil when none.
    public var kvmclockGPA: UInt64? {
        didSet { for v in vcpus { v.kvmclockGPA = kvmclockGPA.map { $0 + UInt64(v.index) * 32 } } }
    }
    /// How many times the hypervisor updated the kvmclock area.
    var kvmclockVersion: UInt32 = 0
    /// A 4 KiB page of emulated device registers outside guest RAM (nil: none). It has no memory behind
    /// it and no nested page table entry, so every guest access to it is a #VMEXIT(NPF) KVM emulates.
    public var mmioGPA: UInt64?
    /// The emulated device's registers, by guest physical address (looked up, never iterated).
    var mmioRegisters: [UInt64: UInt64] = [:]

    /// The KVM memory slots holding the VM's RAM, by guest physical address.
    public internal(set) var memslots: [Memslot] = []
    /// Where the VMM maps the VM's RAM in its own address space: one contiguous block, as QEMU allocates
    /// guest RAM, whatever the memslots and host frames behind it.
    public var userspaceBase: UInt64 { 0x7F00_0000_0000 | UInt64(id) << 36 }
    /// The VMM's address of guest physical address `gpa`.
    public func userAddress(of gpa: UInt64) -> UInt64 { userspaceBase &+ gpa }  // no such address for a GPA outside RAM: KVM finds no memslot

    /// Whether an access to `gpa` is MMIO for KVM: the VM's device page, or an address no memslot covers
    /// (QEMU's unassigned memory).
    func isMMIO(_ gpa: UInt64) -> Bool { isDevicePage(gpa) || !memslots.contains { $0.contains(gpa: gpa) } }
    /// Whether `gpa` falls in the VM's MMIO (device) page.
    func isDevicePage(_ gpa: UInt64) -> Bool { mmioGPA.map { gpa >> 12 == $0 >> 12 } ?? false }
    /// Whether the hypervisor has copied the image into guest memory.
    var imageLoaded = false
    /// Guest pages the guest told the hypervisor it maps decrypted (the page encryption status that
    /// migration needs).
    private var sharedPages: Set<UInt64> = []

    /// Whether the guest page holding `gpa` is shared (mapped C=0 by the guest).
    public func isShared(gpa: UInt64) -> Bool { sharedPages.contains(gpa >> 12) }

    func markShared(gpa: UInt64, _ shared: Bool) {
        if shared { sharedPages.insert(gpa >> 12) } else { sharedPages.remove(gpa >> 12) }
    }

    /// Whether the VMM registered the VM's memory with KVM_MEMORY_ENCRYPT_REG_REGION: KVM pinned it, so
    /// the host kernel cannot migrate its pages.
    public internal(set) var pinned = false

    /// Whether the guest kernel maps its memory with 2 MiB pages.
    public let largePages: Bool
    /// The paging mode the guest kernel enables at boot: long mode (4 levels), PAE (3 levels, 32-bit
    /// addresses) or 32-bit paging without PAE (2 levels of 4-byte entries, no room for the C-bit).
    public let paging: PagingMode
    /// The C-bit position the hypervisor's CPUID 0x8000001F reports to this guest, when it lies (nil:
    /// the platform's real one). A guest that believes a bit the hardware ignores maps everything C=0.
    public var cpuidCbitPosition: Int?
    /// What a malicious (or merely emulating) hypervisor answers this VM's exits with, where it chose:
    /// IN by port, MMIO loads by address, CPUID by leaf (EAX, EBX, ECX, EDX), RDMSR by MSR. Looked up,
    /// never walked, so their order cannot reach a trace.
    public var answers = HypervisorAnswers()
    /// Whether the guest kernel checks the C-bit CPUID gave it before trusting it (Linux's
    /// `sev_verify_cbit`, since 5.10): a value stored while paging is off must read back the same
    /// through the new page tables, or the kernel stops.
    public let verifyCbit: Bool

    /// The guest kernel's `sme_me_mask`: the C-bit it sets in its page-table entries, learned at boot
    /// from CPUID 0x8000001F and SEV_STATUS (0 until then, and for a guest without SEV).
    public internal(set) var smeMeMask: UInt64 = 0
    /// Pages of the split pool already used.
    var splitPagesUsed: UInt64 = 0

    init(id: UInt16, name: String, platform: Platform, memoryBytes: UInt64, policy: UInt32, sev: Bool, asid: UInt16, frames: [UInt64],
         largePages: Bool = false, paging: PagingMode = .long, verifyCbit: Bool = false) {
        self.verifyCbit = verifyCbit
        self.largePages = largePages
        self.paging = paging
        self.id = id
        self.name = name
        self.platform = platform
        self.memoryBytes = memoryBytes
        self.policy = policy
        self.isSEV = sev
        self.asid = asid
        npt = frames
        let pts = GuestKernel.identityMapPages(memoryBytes: memoryBytes, largePages: largePages, paging: paging) + 1
        pageTablePages = pts
        pageTableBase = memoryBytes - pts * 4096
    }

    /// Whether the VM runs under SEV: KVM sets SEV_ENABLE in its vCPUs' VMCBs, and its ASID is one of the
    /// platform's SEV ASIDs.
    public let isSEV: Bool

    /// The system physical address of guest physical address `gpa`.
    @inline(__always)
    public func translate(_ gpa: UInt64) throws(MachineError) -> UInt64 {
        let page = gpa >> 12
        guard page < UInt64(npt.count), npt[Int(page)] != Self.unmapped else { throw .unmappedGPA(vm: name, gpa: gpa) }
        return npt[Int(page)] << 12 | (gpa & 0xFFF)
    }

    /// Adds bytes to load at `gpa` before launch.
    public func addImage(gpa: UInt64, bytes: [UInt8]) { image.append((gpa, bytes)) }

    /// Asks the guest kernel to map `pages` pages at `gpa` decrypted when it boots.
    public func addSharedAtBoot(gpa: UInt64, pages: UInt64) { sharedAtBoot.append((gpa, pages)) }
}
