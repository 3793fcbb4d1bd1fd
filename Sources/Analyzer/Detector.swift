/// The analyzer's detectors, by stable id.
public enum Detector: String, CaseIterable, Sendable {
    /// A vCPU wrote private-origin data through a C=0 mapping: it now sits in plaintext in shared memory.
    case privateToShared = "PRIVATE_TO_SHARED"
    /// A device read private-origin plaintext by DMA.
    case privateToDMA = "PRIVATE_TO_DMA"
    /// The hypervisor read private-origin plaintext.
    case hvPlaintext = "HV_PLAINTEXT"
    /// A device or the hypervisor read a block stored encrypted: it got ciphertext.
    case ciphertextObservation = "CIPHERTEXT_OBSERVATION"
    /// A device wrote into a block stored encrypted: the guest will decrypt garbage.
    case dmaIntoPrivate = "DMA_INTO_PRIVATE"
    /// The hypervisor wrote into a block stored encrypted.
    case hvWritePrivate = "HV_WRITE_PRIVATE"
    /// The hypervisor remapped a launched guest's page: onto a frame of another VM, or onto a frame
    /// the guest already has at another address (SEVered, CrossLine).
    case nptRemap = "NPT_REMAP"
    /// A register holding private-origin data (data the guest produced while private, not data the host
    /// already knows that only passed through private memory) at a #VMEXIT of a guest without SEV-ES: the
    /// hypervisor reads the whole register state in the VMCB. RAX at an OUT exit is the data the guest
    /// sends, not a leak.
    case registerExposure = "REGISTER_EXPOSURE"
    /// A launched guest executed code the launch did not measure (or that changed since it was measured).
    case unmeasuredExecution = "UNMEASURED_EXECUTION"
    /// The firmware enforced the guest owner's policy against the hypervisor (NODBG, NOSEND, NOKS, the
    /// DOMAIN/SEV checks of SEND_START). A refusal because the platform lacks what the policy requires
    /// (SEV-ES, a minimum API version) is not reported.
    case policyViolationAttempt = "POLICY_VIOLATION_ATTEMPT"
    /// Two guests share one memory-encryption key (and so one ASID).
    case keySharing = "KEY_SHARING"
    /// VMRUN of a VM with an ASID bound to another guest (CrossLine).
    case asidMisuse = "ASID_MISUSE"
    /// A guest read memory under another encryption state than it was written in: with its key, data
    /// stored in the clear (a host or device write into a page it maps private); or without, a block
    /// stored encrypted (a C-bit flip that did not convert the page). Either way it got garbage.
    case encryptionMismatch = "ENCRYPTION_MISMATCH"
    /// A launch whose measurement the guest owner accepted put the measured blocks at other guest
    /// physical addresses than she expects, or started the guest at another entry point: the measurement
    /// covers contents, not placement (undeSErVed trust).
    case placementMismatch = "PLACEMENT_MISMATCH"
    /// The host or a device wrote back into a private block the very ciphertext it had read from it
    /// before the guest changed it, and the guest then read the block: it got its old data back, decrypted
    /// correctly (a rollback of private state, which plain SEV cannot detect).
    case ciphertextReplay = "CIPHERTEXT_REPLAY"
    /// A guest changed a page's C-bit while dirty cache lines of the page remained under the old key:
    /// their write-back will later overwrite what is written under the new C-bit.
    case cbitAlias = "CBIT_ALIAS"
    /// The hypervisor tried to give a deactivated ASID to another guest before WBINVD and DF_FLUSH
    /// (the firmware answered DFFLUSH_REQUIRED or WBINVD_REQUIRED).
    case asidReuseWithoutFlush = "ASID_REUSE_WITHOUT_FLUSH"
    /// A guest was sent (SEND_START succeeded) under a policy that let the firmware skip checking the
    /// target: neither DOMAIN (same owner) nor SEV (an AMD-endorsed platform), or SEV alone.
    case migrationToUntrusted = "MIGRATION_TO_UNTRUSTED"
    /// A guest's access to its own RAM exited as MMIO (NPF with the reserved-bit error code KVM's MMIO
    /// entries give): the hypervisor removed the memory behind that address (a deleted memslot), so
    /// the guest's stores there reach it in a VMCB register and its loads take the hypervisor's values.
    case ramAsMMIO = "RAM_AS_MMIO"
    /// The hypervisor took pages of a launched SEV guest out of its nested page table and the guest
    /// faulted on them: each fault tells the hypervisor which page the guest touched, and when (the
    /// page-fault side channel of Hetzelt & Buhren; SEVered uses it to find its target page).
    case pageFaultTracking = "PAGE_FAULT_TRACKING"
    /// The hypervisor answered an SEV guest's CPUID 0x8000001F with another C-bit position than the
    /// processor's: a guest that believes it maps its memory with a bit that does not encrypt.
    case cbitPositionLie = "CBIT_POSITION_LIE"

    /// What the detector looks for, for `--help` and the docs.
    public var summary: String {
        switch self {
        case .privateToShared: "private-origin data written into a shared (C=0) page"
        case .privateToDMA: "a device reads private-origin plaintext by DMA"
        case .hvPlaintext: "the hypervisor reads private-origin plaintext"
        case .ciphertextObservation: "a device or the hypervisor reads a private block's ciphertext"
        case .dmaIntoPrivate: "a device writes into a private block"
        case .hvWritePrivate: "the hypervisor writes into a private block"
        case .unmeasuredExecution: "a launched guest executes code the launch measurement does not cover"
        case .policyViolationAttempt: "the firmware enforces the guest owner's policy against the hypervisor"
        case .keySharing: "two guests share a memory-encryption key"
        case .asidMisuse: "the hypervisor runs a VM with an ASID bound to another guest"
        case .migrationToUntrusted: "a guest is sent to a platform its policy did not require the firmware to trust"
        case .asidReuseWithoutFlush: "an ASID is reused before WBINVD and DF_FLUSH (refused by the firmware)"
        case .placementMismatch: "an accepted launch placed the measured image or the entry point elsewhere than the owner expects"
        case .ciphertextReplay: "a guest reads a private block the host rolled back to an older ciphertext it had read"
        case .cbitAlias: "a C-bit change leaves dirty cache lines of the page under the old key"
        case .encryptionMismatch: "a guest reads memory under another encryption state than it was written in (it gets garbage)"
        case .registerExposure: "a register holds private-origin data when the guest exits to the hypervisor"
        case .cbitPositionLie: "the hypervisor tells an SEV guest another C-bit position than the processor's"
        case .pageFaultTracking: "a launched SEV guest faults on pages the hypervisor took out of its nested page table"
        case .ramAsMMIO: "a guest's access to its own RAM is emulated as MMIO: the hypervisor removed the memory behind it"
        case .nptRemap: "the hypervisor remaps a launched guest's page onto another VM's frame or onto one the guest already maps"
        }
    }
}

extension Detector {
    /// Equal and hashed by case: the conformance a `String`-backed enum gets otherwise compares and hashes
    /// its name, and the finding collector looks detectors up for every repeated hit.
    public static func == (a: Detector, b: Detector) -> Bool { a.ordinal == b.ordinal }

    public func hash(into hasher: inout Hasher) { hasher.combine(ordinal) }

    /// The case's position in the declaration, which is its place in ``allCases`` (the enum's one-byte tag).
    var ordinal: Int { Int(withUnsafeBytes(of: self) { $0[0] }) }
}
