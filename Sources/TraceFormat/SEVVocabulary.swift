/// SEV firmware command ids, as the SEV API specification numbers them (AMD pub. 55766; Linux `psp-sev.h`).
public enum SEVCommand: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    case initialize = 0x01, shutdown = 0x02, factoryReset = 0x03, platformStatus = 0x04
    case pekGen = 0x05, pekCSR = 0x06, pekCertImport = 0x07, pdhCertExport = 0x08, pdhGen = 0x09
    case dfFlush = 0x0A, downloadFirmware = 0x0B, getID = 0x0C, initEx = 0x0D, nop = 0x0E, ringBuffer = 0x0F
    case decommission = 0x20, activate = 0x21, deactivate = 0x22, guestStatus = 0x23, copy = 0x24, activateEx = 0x25
    case launchStart = 0x30, launchUpdateData = 0x31, launchUpdateVMSA = 0x32, launchMeasure = 0x33
    case launchSecret = 0x34, launchFinish = 0x35, attestation = 0x36
    case sendStart = 0x40, sendUpdateData = 0x41, sendUpdateVMSA = 0x42, sendFinish = 0x43, sendCancel = 0x44
    case receiveStart = 0x50, receiveUpdateData = 0x51, receiveUpdateVMSA = 0x52, receiveFinish = 0x53
    case dbgDecrypt = 0x60, dbgEncrypt = 0x61
    case swapOut = 0x70, swapIn = 0x71

    /// The specification's name, for example `LAUNCH_START`.
    public var description: String {
        switch self {
        case .initialize: "INIT"
        case .shutdown: "SHUTDOWN"
        case .factoryReset: "FACTORY_RESET"
        case .platformStatus: "PLATFORM_STATUS"
        case .pekGen: "PEK_GEN"
        case .pekCSR: "PEK_CSR"
        case .pekCertImport: "PEK_CERT_IMPORT"
        case .pdhCertExport: "PDH_CERT_EXPORT"
        case .pdhGen: "PDH_GEN"
        case .dfFlush: "DF_FLUSH"
        case .downloadFirmware: "DOWNLOAD_FIRMWARE"
        case .getID: "GET_ID"
        case .initEx: "INIT_EX"
        case .nop: "NOP"
        case .ringBuffer: "RING_BUFFER"
        case .decommission: "DECOMMISSION"
        case .activate: "ACTIVATE"
        case .deactivate: "DEACTIVATE"
        case .guestStatus: "GUEST_STATUS"
        case .copy: "COPY"
        case .activateEx: "ACTIVATE_EX"
        case .launchStart: "LAUNCH_START"
        case .launchUpdateData: "LAUNCH_UPDATE_DATA"
        case .launchUpdateVMSA: "LAUNCH_UPDATE_VMSA"
        case .launchMeasure: "LAUNCH_MEASURE"
        case .launchSecret: "LAUNCH_SECRET"
        case .launchFinish: "LAUNCH_FINISH"
        case .attestation: "ATTESTATION"
        case .sendStart: "SEND_START"
        case .sendUpdateData: "SEND_UPDATE_DATA"
        case .sendUpdateVMSA: "SEND_UPDATE_VMSA"
        case .sendFinish: "SEND_FINISH"
        case .sendCancel: "SEND_CANCEL"
        case .receiveStart: "RECEIVE_START"
        case .receiveUpdateData: "RECEIVE_UPDATE_DATA"
        case .receiveUpdateVMSA: "RECEIVE_UPDATE_VMSA"
        case .receiveFinish: "RECEIVE_FINISH"
        case .dbgDecrypt: "DBG_DECRYPT"
        case .dbgEncrypt: "DBG_ENCRYPT"
        case .swapOut: "SWAP_OUT"
        case .swapIn: "SWAP_IN"
        }
    }

    /// The name of any command id, known or not.
    public static func name(of id: UInt8) -> String {
        SEVCommand(rawValue: id)?.description ?? "CMD_0x" + String(id, radix: 16, uppercase: true)
    }
}

/// SEV firmware status codes (SEV API; Linux `enum sev_ret_code`).
public enum SEVStatus: UInt16, CaseIterable, Sendable, Error, CustomStringConvertible {
    case success = 0x00, invalidPlatformState = 0x01, invalidGuestState = 0x02, invalidConfig = 0x03
    case invalidLength = 0x04, alreadyOwned = 0x05, invalidCertificate = 0x06, policyFailure = 0x07
    case inactive = 0x08, invalidAddress = 0x09, badSignature = 0x0A, badMeasurement = 0x0B
    case asidOwned = 0x0C, invalidASID = 0x0D, wbinvdRequired = 0x0E, dfflushRequired = 0x0F
    case invalidGuest = 0x10, invalidCommand = 0x11, active = 0x12, hwErrorPlatform = 0x13
    case hwErrorUnsafe = 0x14, unsupported = 0x15, invalidParam = 0x16, resourceLimit = 0x17
    case secureDataInvalid = 0x18

    public var description: String {
        switch self {
        case .success: "SUCCESS"
        case .invalidPlatformState: "INVALID_PLATFORM_STATE"
        case .invalidGuestState: "INVALID_GUEST_STATE"
        case .invalidConfig: "INVALID_CONFIG"
        case .invalidLength: "INVALID_LENGTH"
        case .alreadyOwned: "ALREADY_OWNED"
        case .invalidCertificate: "INVALID_CERTIFICATE"
        case .policyFailure: "POLICY_FAILURE"
        case .inactive: "INACTIVE"
        case .invalidAddress: "INVALID_ADDRESS"
        case .badSignature: "BAD_SIGNATURE"
        case .badMeasurement: "BAD_MEASUREMENT"
        case .asidOwned: "ASID_OWNED"
        case .invalidASID: "INVALID_ASID"
        case .wbinvdRequired: "WBINVD_REQUIRED"
        case .dfflushRequired: "DFFLUSH_REQUIRED"
        case .invalidGuest: "INVALID_GUEST"
        case .invalidCommand: "INVALID_COMMAND"
        case .active: "ACTIVE"
        case .hwErrorPlatform: "HWSEV_RET_PLATFORM"
        case .hwErrorUnsafe: "HWSEV_RET_UNSAFE"
        case .unsupported: "UNSUPPORTED"
        case .invalidParam: "INVALID_PARAM"
        case .resourceLimit: "RESOURCE_LIMIT"
        case .secureDataInvalid: "SECURE_DATA_INVALID"
        }
    }

    /// The name of any status code, known or not.
    public static func name(of code: UInt16) -> String {
        SEVStatus(rawValue: code)?.description ?? "STATUS_0x" + String(code, radix: 16, uppercase: true)
    }
}

/// The platform state PLATFORM_STATUS reports.
public enum PlatformState: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    case uninit = 0, initialized = 1, working = 2

    public var description: String {
        switch self {
        case .uninit: "UNINIT"
        case .initialized: "INIT"
        case .working: "WORKING"
        }
    }

    public static func name(of raw: UInt8) -> String { PlatformState(rawValue: raw)?.description ?? "?\(raw)" }
}

/// The guest state GUEST_STATUS reports.
public enum GuestState: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    case uninit = 0, launchUpdate = 1, launchSecret = 2, running = 3, sendUpdate = 4, receiveUpdate = 5, sent = 6

    /// Written in events where a command named no existing guest.
    public static let none: UInt8 = 0xFF

    public var description: String {
        switch self {
        case .uninit: "UNINIT"
        case .launchUpdate: "LUPDATE"
        case .launchSecret: "LSECRET"
        case .running: "RUNNING"
        case .sendUpdate: "SUPDATE"
        case .receiveUpdate: "RUPDATE"
        case .sent: "SENT"
        }
    }

    public static func name(of raw: UInt8) -> String {
        raw == none ? "-" : GuestState(rawValue: raw)?.description ?? "?\(raw)"
    }
}
