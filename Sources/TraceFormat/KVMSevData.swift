/// The user structures `KVM_MEMORY_ENCRYPT_OP`'s `data` points to (`include/uapi/linux/kvm.h`,
/// `struct kvm_sev_*`), with the x86-64 layout the compiler gives them (not packed: a `__u64` after a
/// `__u32` starts 8 bytes on). Pointers are the VMM's addresses. Sub-commands that share a layout share a
/// structure here.
public enum KVMSevData {
    /// The layout of `command`'s user structure, or nil for a sub-command that takes none.
    public static func layout(of command: KVMSevCommand) -> (any BufferLayout.Type)? {
        switch command {
        case .launchStart, .receiveStart: LaunchStart.self
        case .launchUpdateData, .launchMeasure: Region.self
        case .launchSecret, .sendUpdateData, .receiveUpdateData: Packet.self
        case .guestStatus: GuestStatus.self
        case .dbgDecrypt, .dbgEncrypt: Debug.self
        case .getAttestationReport: AttestationReport.self
        case .sendStart: SendStart.self
        default: nil
        }
    }

    /// `kvm_sev_launch_start` and `kvm_sev_receive_start`: the handle is in/out.
    public struct LaunchStart: BufferLayout {
        public var handle: UInt32 = 0
        public var policy: UInt32 = 0
        public var certAddress: UInt64 = 0
        public var certLength: UInt32 = 0
        public var sessionAddress: UInt64 = 0
        public var sessionLength: UInt32 = 0
        public init() {}
        public static let size = 40
        public static var fields: [BufferField<Self>] {
            [.u32(0, \.handle), .u32(4, \.policy), .u64(8, \.certAddress), .u32(16, \.certLength),
             .u64(24, \.sessionAddress), .u32(32, \.sessionLength)]
        }
    }

    /// `kvm_sev_launch_update_data` and `kvm_sev_launch_measure` (whose length is in/out).
    public struct Region: BufferLayout {
        public var address: UInt64 = 0
        public var length: UInt32 = 0
        public init() {}
        public static let size = 16
        public static var fields: [BufferField<Self>] { [.u64(0, \.address), .u32(8, \.length)] }
    }

    /// `kvm_sev_launch_secret`, `kvm_sev_send_update_data` and `kvm_sev_receive_update_data`.
    public struct Packet: BufferLayout {
        public var headerAddress: UInt64 = 0
        public var headerLength: UInt32 = 0
        public var guestAddress: UInt64 = 0
        public var guestLength: UInt32 = 0
        public var transAddress: UInt64 = 0
        public var transLength: UInt32 = 0
        public init() {}
        public static let size = 48
        public static var fields: [BufferField<Self>] {
            [.u64(0, \.headerAddress), .u32(8, \.headerLength), .u64(16, \.guestAddress), .u32(24, \.guestLength),
             .u64(32, \.transAddress), .u32(40, \.transLength)]
        }
    }

    /// `kvm_sev_guest_status`: everything is output.
    public struct GuestStatus: BufferLayout {
        public var handle: UInt32 = 0
        public var policy: UInt32 = 0
        public var state: UInt32 = 0
        public init() {}
        public static let size = 12
        public static var fields: [BufferField<Self>] { [.u32(0, \.handle), .u32(4, \.policy), .u32(8, \.state)] }
    }

    /// `kvm_sev_dbg`.
    public struct Debug: BufferLayout {
        public var source: UInt64 = 0
        public var destination: UInt64 = 0
        public var length: UInt32 = 0
        public init() {}
        public static let size = 24
        public static var fields: [BufferField<Self>] { [.u64(0, \.source), .u64(8, \.destination), .u32(16, \.length)] }
    }

    /// `kvm_sev_attestation_report`: the length is in/out.
    public struct AttestationReport: BufferLayout {
        public var mnonce: [UInt8] = []
        public var address: UInt64 = 0
        public var length: UInt32 = 0
        public init() {}
        public static let size = 32
        public static var fields: [BufferField<Self>] { [.bytes(0, count: 16, \.mnonce), .u64(16, \.address), .u32(24, \.length)] }
    }

    /// `kvm_sev_send_start`: the policy is output, the session length in/out.
    public struct SendStart: BufferLayout {
        public var policy: UInt32 = 0
        public var pdhAddress: UInt64 = 0
        public var pdhLength: UInt32 = 0
        public var platformCertsAddress: UInt64 = 0
        public var platformCertsLength: UInt32 = 0
        public var amdCertsAddress: UInt64 = 0
        public var amdCertsLength: UInt32 = 0
        public var sessionAddress: UInt64 = 0
        public var sessionLength: UInt32 = 0
        public init() {}
        public static let size = 72
        public static var fields: [BufferField<Self>] {
            [.u32(0, \.policy), .u64(8, \.pdhAddress), .u32(16, \.pdhLength), .u64(24, \.platformCertsAddress),
             .u32(32, \.platformCertsLength), .u64(40, \.amdCertsAddress), .u32(48, \.amdCertsLength),
             .u64(56, \.sessionAddress), .u32(64, \.sessionLength)]
        }
    }
}
