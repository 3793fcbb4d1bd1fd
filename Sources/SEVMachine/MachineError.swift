/// Why the simulation could not go on. These are errors in what a scenario asked for, reported to people.
public enum MachineError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A physical access outside the platform's memory.
    case physicalAddressOutOfRange(spa: UInt64, size: Int)
    /// A guest physical address with no nested-page-table mapping.
    case unmappedGPA(vm: String, gpa: UInt64)
    /// The guest touched a virtual address its page tables do not map.
    case guestPageFault(vm: String, vcpu: Int, gva: UInt64, rip: UInt64)
    /// The guest fetched bytes that are not an instruction.
    case invalidInstruction(vm: String, vcpu: Int, rip: UInt64, opcode: UInt8)
    /// The simulation did all the work its step budget allows.
    case stepLimit(limit: UInt64)
    /// The host ran out of memory for guests.
    case outOfHostMemory(requested: UInt64, free: UInt64)
    /// No ASID is free for another SEV guest.
    case noFreeASID
    /// An operation needed a VM that is not running under SEV with an active key.
    case noKey(vm: String, asid: UInt16)
    /// Something else a scenario asked for that the machine cannot do.
    case invalid(String)
    /// A limit of the simulation or its recording was reached (the reason names it and its option).
    case limit(String)
    /// The guest kernel stopped itself (it parks the CPU in a HLT loop), for the reason given.
    case guestStopped(vm: String, reason: String)

    public var description: String {
        switch self {
        case .physicalAddressOutOfRange(let spa, let size): "physical access of \(size) bytes at \(hex(spa)) is outside memory"
        case .unmappedGPA(let vm, let gpa): "\(vm): guest physical address \(hex(gpa)) is not mapped"
        case .guestPageFault(let vm, let vcpu, let gva, let rip): "\(vm) vcpu \(vcpu): page fault at \(hex(gva)) (rip \(hex(rip)))"
        case .invalidInstruction(let vm, let vcpu, let rip, let op): "\(vm) vcpu \(vcpu): invalid opcode \(hex(UInt64(op))) at \(hex(rip))"
        case .stepLimit(let limit): "the simulation reached its limit of \(limit) steps (guest instructions, accesses by the hypervisor, devices and PSP, world switches; raise it with --max-steps)"
        case .limit(let reason): reason
        case .outOfHostMemory(let req, let free): "host memory exhausted: \(req) bytes requested, \(free) free"
        case .noFreeASID: "no free SEV ASID"
        case .noKey(let vm, let asid): "\(vm): ASID \(asid) has no key loaded (the guest was not launched and activated)"
        case .invalid(let s): s
        case .guestStopped(let vm, let reason): "\(vm): the guest kernel stopped: \(reason)"
        }
    }
}

/// `0x`-prefixed lowercase hex.
func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
