/// One KVM memory slot (`struct kvm_userspace_memory_region`): a guest physical range backed by memory
/// the VMM mapped at `userspaceAddress`. KVM finds a guest page's host page through its slot; an
/// address no slot covers has no memory, and KVM treats an access to it as MMIO.
public struct Memslot: Equatable, Sendable {
    /// The slot number the VMM chose.
    public var slot: UInt16
    /// The first guest physical address.
    public var gpa: UInt64
    /// The size in bytes (a multiple of 4 KiB).
    public var bytes: UInt64
    /// Where the VMM has this memory in its address space (QEMU maps a RAM block contiguously).
    public var userspaceAddress: UInt64

    public init(slot: UInt16, gpa: UInt64, bytes: UInt64, userspaceAddress: UInt64) {
        self.slot = slot
        self.gpa = gpa
        self.bytes = bytes
        self.userspaceAddress = userspaceAddress
    }

    /// Whether the slot covers guest physical address `gpa`.
    public func contains(gpa address: UInt64) -> Bool { address >= gpa && address - gpa < bytes }

    /// The guest physical address behind VMM address `hva`, nil when it is outside the slot.
    public func gpa(ofUserAddress hva: UInt64) -> UInt64? {
        hva >= userspaceAddress && hva - userspaceAddress < bytes ? gpa + (hva - userspaceAddress) : nil
    }
}
