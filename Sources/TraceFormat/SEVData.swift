/// The SEV API's command buffers, one structure per layout, at the offsets the specification gives
/// (Linux `include/linux/psp-sev.h`, `struct sev_data_*`, all `__packed`). Commands that share a layout in
/// the specification share a structure here (LAUNCH_UPDATE_DATA and LAUNCH_MEASURE; LAUNCH_SECRET, SEND_UPDATE_DATA
/// and RECEIVE_UPDATE_DATA; the two DBG commands; the commands that name only a handle).
public enum SEVData {
    /// The layout of `command`'s buffer, or nil for a command that takes none (SHUTDOWN, PEK_GEN…) or is
    /// not modelled.
    public static func layout(of command: SEVCommand) -> (any BufferLayout.Type)? {
        switch command {
        case .initialize: Init.self
        case .platformStatus: PlatformStatus.self
        case .pekCSR, .getID, .downloadFirmware: Blob.self
        case .pekCertImport: PEKCertImport.self
        case .pdhCertExport: PDHCertExport.self
        case .launchStart, .receiveStart: LaunchStart.self
        case .activate: Activate.self
        case .launchFinish, .deactivate, .decommission, .sendFinish, .sendCancel, .receiveFinish: Handle.self
        case .guestStatus: GuestStatus.self
        case .launchUpdateData, .launchMeasure: LaunchUpdateData.self
        case .launchSecret, .sendUpdateData, .receiveUpdateData: LaunchSecret.self
        case .sendStart: SendStart.self
        case .copy: Copy.self
        case .dbgDecrypt, .dbgEncrypt: Debug.self
        case .attestation: Attestation.self
        default: nil
        }
    }

    /// INIT (`sev_data_init`).
    public struct Init: BufferLayout {
        /// Bit 0: enable SEV-ES.
        public var flags: UInt32 = 0
        public var tmrAddress: UInt64 = 0
        public var tmrLength: UInt32 = 0
        public init() {}
        public static let size = 20
        public static var fields: [BufferField<Self>] { [.u32(0, \.flags), .u64(8, \.tmrAddress), .u32(16, \.tmrLength)] }
    }

    /// PLATFORM_STATUS (`sev_user_data_status`): everything is output.
    public struct PlatformStatus: BufferLayout {
        public var apiMajor: UInt8 = 0
        public var apiMinor: UInt8 = 0
        /// A ``PlatformState`` raw value.
        public var state: UInt8 = 0
        /// Bit 0: owner (0 self-owned, 1 externally owned); bit 8: SEV-ES initialised.
        public var flags: UInt32 = 0
        public var build: UInt8 = 0
        public var guestCount: UInt32 = 0
        public init() {}
        public static let size = 12
        public static var fields: [BufferField<Self>] {
            [.u8(0, \.apiMajor), .u8(1, \.apiMinor), .u8(2, \.state), .u32(3, \.flags), .u8(7, \.build), .u32(8, \.guestCount)]
        }
    }

    /// An address and a length: PEK_CSR's output, GET_ID's output and DOWNLOAD_FIRMWARE's image
    /// (`sev_data_pek_csr`, `sev_data_get_id`, `sev_data_download_firmware`). The firmware writes the length
    /// it needs back when the buffer is too small.
    public struct Blob: BufferLayout {
        public var address: UInt64 = 0
        public var length: UInt32 = 0
        public init() {}
        public static let size = 12
        public static var fields: [BufferField<Self>] { [.u64(0, \.address), .u32(8, \.length)] }
    }

    /// PEK_CERT_IMPORT (`sev_data_pek_cert_import`).
    public struct PEKCertImport: BufferLayout {
        public var pekAddress: UInt64 = 0
        public var pekLength: UInt32 = 0
        public var ocaAddress: UInt64 = 0
        public var ocaLength: UInt32 = 0
        public init() {}
        public static let size = 28
        public static var fields: [BufferField<Self>] {
            [.u64(0, \.pekAddress), .u32(8, \.pekLength), .u64(16, \.ocaAddress), .u32(24, \.ocaLength)]
        }
    }

    /// PDH_CERT_EXPORT (`sev_data_pdh_cert_export`): both lengths are in/out.
    public struct PDHCertExport: BufferLayout {
        public var pdhAddress: UInt64 = 0
        public var pdhLength: UInt32 = 0
        public var chainAddress: UInt64 = 0
        public var chainLength: UInt32 = 0
        public init() {}
        public static let size = 28
        public static var fields: [BufferField<Self>] {
            [.u64(0, \.pdhAddress), .u32(8, \.pdhLength), .u64(16, \.chainAddress), .u32(24, \.chainLength)]
        }
    }

    /// LAUNCH_START and RECEIVE_START (`sev_data_launch_start`, `sev_data_receive_start`): the handle is
    /// in/out (non-zero on LAUNCH_START: share that guest's key), the certificate is the owner's DH key (the
    /// sender's PDH on RECEIVE_START).
    public struct LaunchStart: BufferLayout {
        public var handle: UInt32 = 0
        public var policy: UInt32 = 0
        public var certAddress: UInt64 = 0
        public var certLength: UInt32 = 0
        public var sessionAddress: UInt64 = 0
        public var sessionLength: UInt32 = 0
        public init() {}
        public static let size = 36
        public static var fields: [BufferField<Self>] {
            [.u32(0, \.handle), .u32(4, \.policy), .u64(8, \.certAddress), .u32(16, \.certLength),
             .u64(24, \.sessionAddress), .u32(32, \.sessionLength)]
        }
    }

    /// ACTIVATE (`sev_data_activate`).
    public struct Activate: BufferLayout {
        public var handle: UInt32 = 0
        public var asid: UInt32 = 0
        public init() {}
        public static let size = 8
        public static var fields: [BufferField<Self>] { [.u32(0, \.handle), .u32(4, \.asid)] }
    }

    /// The commands that name only a guest: LAUNCH_FINISH, DEACTIVATE, DECOMMISSION, SEND_FINISH,
    /// SEND_CANCEL, RECEIVE_FINISH.
    public struct Handle: BufferLayout {
        public var handle: UInt32 = 0
        public init() {}
        public init(_ handle: UInt32) { self.handle = handle }
        public static let size = 4
        public static var fields: [BufferField<Self>] { [.u32(0, \.handle)] }
    }

    /// GUEST_STATUS (`sev_data_guest_status`): policy, ASID and state are output.
    public struct GuestStatus: BufferLayout {
        public var handle: UInt32 = 0
        public var policy: UInt32 = 0
        public var asid: UInt32 = 0
        /// A ``GuestState`` raw value.
        public var state: UInt8 = 0
        public init() {}
        public static let size = 13
        public static var fields: [BufferField<Self>] { [.u32(0, \.handle), .u32(4, \.policy), .u32(8, \.asid), .u8(12, \.state)] }
    }

    /// LAUNCH_UPDATE_DATA (the region to encrypt in place) and LAUNCH_MEASURE (where the measurement and
    /// its nonce go; the length is in/out) (`sev_data_launch_update_data`, `sev_data_launch_measure`).
    public struct LaunchUpdateData: BufferLayout {
        public var handle: UInt32 = 0
        public var address: UInt64 = 0
        public var length: UInt32 = 0
        public init() {}
        public static let size = 20
        public static var fields: [BufferField<Self>] { [.u32(0, \.handle), .u64(8, \.address), .u32(16, \.length)] }
    }

    /// A transport packet's three buffers: LAUNCH_SECRET, SEND_UPDATE_DATA (header length in/out) and
    /// RECEIVE_UPDATE_DATA (`sev_data_launch_secret`, `sev_data_send_update_data`, `sev_data_receive_update_data`).
    public struct LaunchSecret: BufferLayout {
        public var handle: UInt32 = 0
        public var headerAddress: UInt64 = 0
        public var headerLength: UInt32 = 0
        public var guestAddress: UInt64 = 0
        public var guestLength: UInt32 = 0
        public var transAddress: UInt64 = 0
        public var transLength: UInt32 = 0
        public init() {}
        public static let size = 52
        public static var fields: [BufferField<Self>] {
            [.u32(0, \.handle), .u64(8, \.headerAddress), .u32(16, \.headerLength), .u64(24, \.guestAddress),
             .u32(32, \.guestLength), .u64(40, \.transAddress), .u32(48, \.transLength)]
        }
    }

    /// SEND_START (`sev_data_send_start`): the policy is output, the session length in/out.
    public struct SendStart: BufferLayout {
        public var handle: UInt32 = 0
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
        public static let size = 68
        public static var fields: [BufferField<Self>] {
            [.u32(0, \.handle), .u32(4, \.policy), .u64(8, \.pdhAddress), .u32(16, \.pdhLength),
             .u64(24, \.platformCertsAddress), .u32(32, \.platformCertsLength), .u64(40, \.amdCertsAddress),
             .u32(48, \.amdCertsLength), .u64(56, \.sessionAddress), .u32(64, \.sessionLength)]
        }
    }

    /// COPY (SEV API: handle, length, source and destination system physical addresses).
    public struct Copy: BufferLayout {
        public var handle: UInt32 = 0
        public var length: UInt32 = 0
        public var source: UInt64 = 0
        public var destination: UInt64 = 0
        public init() {}
        public static let size = 24
        public static var fields: [BufferField<Self>] { [.u32(0, \.handle), .u32(4, \.length), .u64(8, \.source), .u64(16, \.destination)] }
    }

    /// DBG_DECRYPT and DBG_ENCRYPT (`sev_data_dbg`).
    public struct Debug: BufferLayout {
        public var handle: UInt32 = 0
        public var source: UInt64 = 0
        public var destination: UInt64 = 0
        public var length: UInt32 = 0
        public init() {}
        public static let size = 28
        public static var fields: [BufferField<Self>] { [.u32(0, \.handle), .u64(8, \.source), .u64(16, \.destination), .u32(24, \.length)] }
    }

    /// ATTESTATION (`sev_data_attestation_report`): the length is in/out.
    public struct Attestation: BufferLayout {
        public var handle: UInt32 = 0
        public var address: UInt64 = 0
        public var mnonce: [UInt8] = []
        public var length: UInt32 = 0
        public init() {}
        public static let size = 36
        public static var fields: [BufferField<Self>] {
            [.u32(0, \.handle), .u64(8, \.address), .bytes(16, count: 16, \.mnonce), .u32(32, \.length)]
        }
    }
}

extension PSPCommand {
    /// The command's buffer, as the firmware left it, read as `layout` (bytes past its end read as zero).
    public func data<Layout: BufferLayout>(as layout: Layout.Type) -> Layout { Layout(CommandBuffer(bytes: buffer)) }
}
