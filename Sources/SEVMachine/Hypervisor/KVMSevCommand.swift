/// KVM's `KVM_MEMORY_ENCRYPT_OP` sub-command ids (`enum sev_cmd_id`, Linux 4.16 and later).
public enum KVMSevCommand: UInt32, CaseIterable, Sendable {
    case initialize = 0, esInit = 1, launchStart = 2, launchUpdateData = 3, launchUpdateVMSA = 4, launchSecret = 5
    case launchMeasure = 6, launchFinish = 7, sendStart = 8, sendUpdateData = 9, sendUpdateVMSA = 10, sendFinish = 11
    case receiveStart = 12, receiveUpdateData = 13, receiveUpdateVMSA = 14, receiveFinish = 15, guestStatus = 16
    case dbgDecrypt = 17, dbgEncrypt = 18, certExport = 19, getAttestationReport = 20, sendCancel = 21, init2 = 22

    /// The size of the user structure `data` points to (`struct kvm_sev_*`, x86-64 layout).
    public var userStructSize: Int {
        switch self {
        case .launchStart, .receiveStart: 40
        case .launchUpdateData, .launchMeasure: 16
        case .launchSecret, .sendUpdateData, .receiveUpdateData: 48
        case .guestStatus: 12
        case .dbgDecrypt, .dbgEncrypt: 24
        case .getAttestationReport: 32
        case .sendStart: 72
        default: 0
        }
    }
}

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

/// The errno values KVM answers with (returned negated, as the kernel does).
public enum Errno: Int32, Sendable {
    case eio = 5, ebadf = 9, enomem = 12, efault = 14, ebusy = 16, einval = 22, enotty = 25, eperm = 1
}
