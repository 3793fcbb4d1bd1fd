/// KVM's `KVM_MEMORY_ENCRYPT_OP` sub-command ids (`enum sev_cmd_id`, Linux 4.16 and later).
public enum KVMSevCommand: UInt32, CaseIterable, Sendable, CustomStringConvertible {
    case initialize = 0, esInit = 1, launchStart = 2, launchUpdateData = 3, launchUpdateVMSA = 4, launchSecret = 5
    case launchMeasure = 6, launchFinish = 7, sendStart = 8, sendUpdateData = 9, sendUpdateVMSA = 10, sendFinish = 11
    case receiveStart = 12, receiveUpdateData = 13, receiveUpdateVMSA = 14, receiveFinish = 15, guestStatus = 16
    case dbgDecrypt = 17, dbgEncrypt = 18, certExport = 19, getAttestationReport = 20, sendCancel = 21, init2 = 22

    /// The size of the user structure `data` points to (`struct kvm_sev_*`, x86-64 layout; 0: none).
    public var userStructSize: Int { KVMSevData.layout(of: self)?.size ?? 0 }

    /// The uapi name without its `KVM_SEV_` prefix: `LAUNCH_START`, `DBG_DECRYPT`…
    public var description: String {
        switch self {
        case .initialize: "INIT"
        case .esInit: "ES_INIT"
        case .launchStart: "LAUNCH_START"
        case .launchUpdateData: "LAUNCH_UPDATE_DATA"
        case .launchUpdateVMSA: "LAUNCH_UPDATE_VMSA"
        case .launchSecret: "LAUNCH_SECRET"
        case .launchMeasure: "LAUNCH_MEASURE"
        case .launchFinish: "LAUNCH_FINISH"
        case .sendStart: "SEND_START"
        case .sendUpdateData: "SEND_UPDATE_DATA"
        case .sendUpdateVMSA: "SEND_UPDATE_VMSA"
        case .sendFinish: "SEND_FINISH"
        case .receiveStart: "RECEIVE_START"
        case .receiveUpdateData: "RECEIVE_UPDATE_DATA"
        case .receiveUpdateVMSA: "RECEIVE_UPDATE_VMSA"
        case .receiveFinish: "RECEIVE_FINISH"
        case .guestStatus: "GUEST_STATUS"
        case .dbgDecrypt: "DBG_DECRYPT"
        case .dbgEncrypt: "DBG_ENCRYPT"
        case .certExport: "CERT_EXPORT"
        case .getAttestationReport: "GET_ATTESTATION_REPORT"
        case .sendCancel: "SEND_CANCEL"
        case .init2: "INIT2"
        }
    }

    /// The name of a sub-command id, or `?N` for an id KVM does not know.
    public static func name(of id: UInt32) -> String { KVMSevCommand(rawValue: id)?.description ?? "?\(id)" }

    /// The sub-command of a name, as `description` spells it (any case).
    public init?(name: String) {
        guard let c = Self.allCases.first(where: { $0.description == name.uppercased() }) else { return nil }
        self = c
    }
}
