/// What the simulated SEV platform is: the values CPUID Fn8000_001F reports, its memory, and the
/// firmware version the PSP reports.
public struct PlatformConfig: Equatable, Sendable {
    /// CPUID Fn8000_001F EBX[5:0]: the C-bit's position in a page-table entry.
    public var cbitPosition: Int = 47
    /// CPUID Fn8000_001F EBX[11:6]: physical-address bits lost when encryption is on.
    public var physAddrReduction: Int = 5
    /// CPUID Fn8000_0008 EAX[7:0]: physical-address bits before the reduction.
    public var physAddrBits: Int = 48
    /// CPUID Fn8000_001F ECX: the number of encrypted guests supported at once (the largest SEV ASID).
    public var maxSEVASID: UInt16 = 15
    /// CPUID Fn8000_001F EDX: the smallest ASID for an SEV guest without SEV-ES.
    public var minSEVASID: UInt16 = 1
    /// Bytes of system memory.
    public var memoryBytes: UInt64 = 64 << 20
    /// The firmware's API version and build, as PLATFORM_STATUS reports them and the measurement includes them.
    public var apiMajor: UInt8 = 0
    public var apiMinor: UInt8 = 17
    public var build: UInt8 = 48
    /// Bytes of each core's cache (8-way, 64-byte lines); 0 runs without caches.
    public var cacheBytes: Int = 0
    /// CPU cores. vCPU n of every VM runs on core n mod `cores`; the host's own accesses on core 0.
    /// WBINVD acts on one core, so the firmware's DF_FLUSH wants it on every one.
    public var cores: Int = 1
    /// Whether the host runs with SME: the memory controller draws a host key into slot 0 at power-on and
    /// every access without a guest key is encrypted with it (host page tables, the NPT's host C-bit and
    /// DMA addresses all carry `sme_me_mask`, as a Linux host with `mem_encrypt=on` sets them).
    public var sme: Bool = false
    /// SYSCFG (MSR 0xC001_0010) bit 23, MemEncryptionModEn, which the BIOS sets. Without it the host
    /// kernel clears its SME and SEV features: no SME, and KVM offers no SEV guests.
    public var memoryEncryptionEnabled: Bool = true

    /// The host's SYSCFG value as far as memory encryption goes.
    public var syscfg: UInt64 { memoryEncryptionEnabled ? 1 << 23 : 0 }

    public init() {}

    /// The mask of the C-bit in a page-table entry (`sme_me_mask` in Linux).
    public var cbitMask: UInt64 { 1 << UInt64(cbitPosition) }

    /// Address bits of an 8-byte page-table entry that must be 0: those at and above the physical-address
    /// width, which memory encryption reduces by `physAddrReduction`, except the C-bit itself.
    public var reservedAddressBits: UInt64 {
        let width = physAddrBits - (memoryEncryptionEnabled ? physAddrReduction : 0)
        return 0x000F_FFFF_FFFF_F000 & ~((1 << UInt64(width)) - 1) & ~cbitMask
    }
}

/// Bounds on what one simulation may do, so that a mistake in a scenario ends with an error that names
/// the limit instead of running for hours or taking all memory.
public struct MachineLimits: Sendable, Equatable {
    /// Steps of work the whole simulation may do, over every run, vCPU and repetition: guest
    /// instructions, accesses by the hypervisor, devices and the PSP, and world switches (see
    /// `Machine.countSteps`).
    public var maxSteps: UInt64
    /// Simulated memory of all platforms together.
    public var maxMemoryBytes: UInt64

    public init(maxSteps: UInt64 = 10_000_000, maxMemoryBytes: UInt64 = 4 << 30) {
        self.maxSteps = maxSteps
        self.maxMemoryBytes = maxMemoryBytes
    }
}
