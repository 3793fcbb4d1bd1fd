/// `struct kvm_sev_cmd`: the argument of `KVM_MEMORY_ENCRYPT_OP`.
public struct KVMSevCmd: Equatable, Sendable {
    /// A ``KVMSevCommand`` raw value (any number may be passed; unknown ones are refused).
    public var id: UInt32
    /// The user structure (`data` points to it in the real ioctl), little-endian as the uapi lays it out;
    /// its pointers are host physical addresses of the VMM's buffers.
    public var data: [UInt8]
    /// The firmware status when the firmware refused (set by KVM).
    public var error: UInt32 = 0
    /// The VMM's open `/dev/sev` descriptor.
    public var sevFD: Int32

    public init(id: UInt32, data: [UInt8] = [], sevFD: Int32) {
        self.id = id
        self.data = data
        self.sevFD = sevFD
    }
}
