/// The values a hypervisor chose to answer a VM's exits with, in place of KVM's and QEMU's defaults: the
/// data of an IN from a port, of a load from an MMIO address, the four registers of a CPUID leaf, and
/// an MSR's value for RDMSR. A device model or hypervisor that lies to the guest is one of these.
public struct HypervisorAnswers: Sendable {
    public var ports: [UInt16: UInt64] = [:]
    public var mmio: [UInt64: UInt64] = [:]
    public var cpuid: [UInt32: CPUIDAnswer] = [:]
    public var msrs: [UInt32: UInt64] = [:]

    public init() {}
}

/// A CPUID answer: EAX, EBX, ECX, EDX.
public struct CPUIDAnswer: Equatable, Sendable {
    public var eax: UInt64, ebx: UInt64, ecx: UInt64, edx: UInt64

    public init(eax: UInt64, ebx: UInt64, ecx: UInt64, edx: UInt64) {
        (self.eax, self.ebx, self.ecx, self.edx) = (eax, ebx, ecx, edx)
    }
}
