import TraceFormat

/// The SEV firmware running on the PSP: the platform and guest state machines and the commands of the
/// SEV API, each reported as one event with its buffer, status and state change.
///
/// Modelled: every command of the SEV API for SEV without ES: INIT, SHUTDOWN, FACTORY_RESET,
/// PLATFORM_STATUS, PEK_GEN, PEK_CSR, PEK_CERT_IMPORT, PDH_CERT_EXPORT, PDH_GEN, DF_FLUSH,
/// DOWNLOAD_FIRMWARE, GET_ID, DECOMMISSION, ACTIVATE, DEACTIVATE, GUEST_STATUS, COPY, LAUNCH_START,
/// LAUNCH_UPDATE_DATA, LAUNCH_MEASURE, LAUNCH_SECRET, LAUNCH_FINISH, ATTESTATION, SEND_START,
/// SEND_UPDATE_DATA, SEND_FINISH, SEND_CANCEL, RECEIVE_START, RECEIVE_UPDATE_DATA, RECEIVE_FINISH,
/// DBG_DECRYPT, DBG_ENCRYPT. Every other id (SEV-ES's VMSA commands, INIT_EX, NOP, RING_BUFFER,
/// ACTIVATE_EX, SWAP_OUT/IN) answers INVALID_COMMAND.
public final class SEVFirmware {
    unowned let platform: Platform
    public internal(set) var platformState: PlatformState = .uninit
    /// Whether INIT set CONFIG_ES.
    public internal(set) var esEnabled = false
    /// The firmware version (DOWNLOAD_FIRMWARE can change it).
    public internal(set) var apiMajor: UInt8
    public internal(set) var apiMinor: UInt8
    public internal(set) var build: UInt8
    /// The platform's keys and certificates.
    public internal(set) lazy var identity = PlatformIdentity(apiMajor: apiMajor, apiMinor: apiMinor,
                                                               rng: &platform.machine.rng)
    var guests: [UInt32: GuestContext] = [:]
    var nextHandle: UInt32 = 1
    /// What the command being run gave back in the caller's memory (recorded with it).
    var result: [UInt8] = []
    /// The guests activated on each ASID (more than one only when they share a key).
    var asidGuests: [[UInt32]]
    /// ASIDs deactivated since the last DF_FLUSH: their cache lines may still be dirty.
    var asidNeedsFlush: [Bool]
    /// The cores that ran WBINVD since the last DEACTIVATE.
    var wbinvdSinceDeactivate: [Bool]
    /// The mailbox registers' values.
    var registers: [Register: UInt32] = [:]

    init(platform: Platform) {
        self.platform = platform
        apiMajor = platform.config.apiMajor
        apiMinor = platform.config.apiMinor
        build = platform.config.build
        asidGuests = Array(repeating: [], count: Int(platform.config.maxSEVASID) + 1)
        asidNeedsFlush = Array(repeating: false, count: Int(platform.config.maxSEVASID) + 1)
        wbinvdSinceDeactivate = Array(repeating: true, count: platform.config.cores)
    }

    /// The number of guests the firmware holds contexts for.
    public var guestCount: Int { guests.count }

    /// The state of the guest with `handle`, if it exists.
    public func guestState(handle: UInt32) -> GuestState? { guests[handle]?.state }

    /// The measurement LAUNCH_MEASURE produced for `handle`, if any.
    public func measurement(handle: UInt32) -> [UInt8]? { guests[handle]?.measurement }

    /// The key the PSP encrypts guest memory with for the guests that hold `asid` (those sharing it share
    /// the key): nil when no guest holds it, or when guests with different keys claim it.
    public func guestKey(forASID asid: UInt16) -> EncryptionKey? {
        guard asid != 0 else { return nil }
        var key: EncryptionKey?
        for guest in guests.values where guest.asid == asid {
            if let k = key, k !== guest.vek { return nil }
            key = guest.vek
        }
        return key
    }

    /// The transport integrity key and policy of a guest, for tests that check the measurement.
    public func launchSecrets(handle: UInt32) -> (tik: [UInt8], policy: UInt32)? {
        guests[handle].map { ($0.tik, $0.policy) }
    }

    func noteWBINVD(core: Int) { wbinvdSinceDeactivate[core] = true }

    /// Whether the firmware's API version is at least `major.minor`.
    func apiAtLeast(_ major: UInt8, _ minor: UInt8) -> Bool { (apiMajor, apiMinor) >= (major, minor) }

    // MARK: - Running commands

    /// Runs one command, as the mailbox would: the buffer is read and updated in place, the status returned.
    @discardableResult
    public func execute(_ id: UInt8, buffer: inout CommandBuffer) -> SEVStatus {
        let command = SEVCommand(rawValue: id)
        let handle = command.map(Self.namesGuest) == true ? SEVData.Handle(buffer).handle : 0  // every guest command starts with it
        let platformBefore = platformState
        let guestBefore = guests[handle]?.state.rawValue ?? GuestState.none
        let asidBefore = guests[handle]?.asid ?? 0
        result = []
        let status = command.map { run($0, &buffer) } ?? .invalidCommand
        let reportedHandle = command == .launchStart || command == .receiveStart ? SEVData.Handle(buffer).handle : handle
        // ACTIVATE names the ASID it binds; DEACTIVATE the one it releases (the guest has none after it).
        let asid: UInt16 = command == .activate ? UInt16(truncatingIfNeeded: SEVData.Activate(buffer).asid)
            : command == .deactivate ? asidBefore : guests[reportedHandle]?.asid ?? 0
        platform.emit(.pspCommand(PSPCommand(
            platform: platform.id, command: id, handle: reportedHandle, asid: asid, status: status.rawValue,
            platformBefore: platformBefore.rawValue, platformAfter: platformState.rawValue,
            guestBefore: guestBefore, guestAfter: guests[reportedHandle]?.state.rawValue ?? GuestState.none,
            buffer: buffer.bytes, result: status == .success ? result : [])), cost: Platform.Cost.pspCommand)
        return status
    }

    /// Whether the command's buffer names a guest handle.
    static func namesGuest(_ c: SEVCommand) -> Bool {
        switch c {
        case .decommission, .activate, .deactivate, .guestStatus, .launchStart, .launchUpdateData, .launchMeasure,
             .launchFinish, .launchSecret, .sendStart, .sendUpdateData, .sendFinish, .sendCancel,
             .receiveStart, .receiveUpdateData, .receiveFinish, .dbgDecrypt, .dbgEncrypt, .copy, .attestation:
            true
        default:
            false
        }
    }

    /// Which platform commands each platform state allows (SEV API, platform state table). Guest
    /// commands need INIT or WORKING.
    static func allowed(_ c: SEVCommand, in state: PlatformState) -> Bool {
        switch c {
        case .initialize, .factoryReset, .downloadFirmware: state == .uninit
        case .platformStatus, .getID: true
        case .shutdown: state != .uninit  // UNINIT allows INIT, PLATFORM_RESET, PLATFORM_STATUS, DOWNLOAD_FIRMWARE, GET_ID
        case .pekGen, .pekCSR, .pekCertImport: state == .initialized
        case .pdhGen, .pdhCertExport, .dfFlush: state != .uninit
        default: state != .uninit
        }
    }

    /// Whether the SEV API allows `c` for a guest in `state` (SEV API, guest state table).
    static func allowed(_ c: SEVCommand, in state: GuestState) -> Bool {
        switch c {
        case .activate: state != .uninit && state != .sent
        case .deactivate, .decommission, .guestStatus: state != .uninit
        case .launchUpdateData, .launchMeasure: state == .launchUpdate
        case .launchSecret, .launchFinish: state == .launchSecret
        case .attestation: state == .launchSecret || state == .running
        case .sendStart: state == .running
        case .sendUpdateData, .sendFinish, .sendCancel: state == .sendUpdate
        case .receiveUpdateData, .receiveFinish: state == .receiveUpdate
        case .dbgDecrypt, .dbgEncrypt, .copy: state != .uninit && state != .sent
        default: false
        }
    }

    /// Whether the command is modelled (the rest answer INVALID_COMMAND).
    static func modelled(_ c: SEVCommand) -> Bool {
        switch c {
        case .initEx, .nop, .ringBuffer, .activateEx, .launchUpdateVMSA, .sendUpdateVMSA, .receiveUpdateVMSA, .swapOut,
             .swapIn:
            false
        default:
            true
        }
    }

    private func run(_ c: SEVCommand, _ b: inout CommandBuffer) -> SEVStatus {
        guard Self.modelled(c) else { return .invalidCommand }
        guard b.bytes.count >= CommandBuffer.size(of: c) else { return .invalidLength }
        guard Self.allowed(c, in: platformState) else { return .invalidPlatformState }
        switch c {
        case .initialize: return initialize(&b)
        case .shutdown: return shutdown()
        case .factoryReset: return factoryReset()
        case .platformStatus: return platformStatus(&b)
        case .pekGen: return pekGen()
        case .pekCSR: return pekCSR(&b)
        case .pekCertImport: return pekCertImport(&b)
        case .pdhGen: return pdhGen()
        case .pdhCertExport: return pdhCertExport(&b)
        case .dfFlush: return dfFlush()
        case .downloadFirmware: return downloadFirmware(&b)
        case .getID: return getID(&b)
        case .launchStart: return launchStart(&b)
        case .receiveStart: return receiveStart(&b)
        default: break
        }
        guard let guest = guests[SEVData.Handle(b).handle] else { return .invalidGuest }
        guard Self.allowed(c, in: guest.state) else { return .invalidGuestState }
        switch c {
        case .activate: return activate(guest, asid: SEVData.Activate(b).asid)
        case .deactivate: return deactivate(guest)
        case .decommission: return decommission(guest)
        case .guestStatus:
            var d = SEVData.GuestStatus(b)
            d.policy = guest.policy
            d.asid = UInt32(guest.asid)
            d.state = guest.state.rawValue
            d.store(into: &b)
            return .success
        case .copy: return copy(guest, &b)
        case .launchUpdateData:
            let d = SEVData.LaunchUpdateData(b)
            return launchUpdateData(guest, address: d.address, length: d.length)
        case .launchMeasure: return launchMeasure(guest, &b)
        case .launchSecret: return launchSecret(guest, &b)
        case .launchFinish:
            guest.state = .running
            return .success
        case .attestation: return attestation(guest, &b)
        case .sendStart: return sendStart(guest, &b)
        case .sendUpdateData: return sendUpdateData(guest, &b)
        case .sendFinish:
            guest.state = .sent
            return .success
        case .sendCancel:
            guest.state = .running
            return .success
        case .receiveUpdateData: return receiveUpdateData(guest, &b)
        case .receiveFinish:
            guest.state = .running
            return .success
        case .dbgDecrypt, .dbgEncrypt: return debug(guest, &b, decrypt: c == .dbgDecrypt)
        default: return .invalidCommand
        }
    }

    // MARK: - The PSP's own memory accesses

    /// A system physical address from a command buffer: the C-bit KVM sets on guest addresses is not
    /// part of the address.
    func physical(_ address: UInt64) -> UInt64 { address & ~platform.config.cbitMask }

    /// Reads host memory, or guest memory with a guest's key.
    func pspRead(_ address: UInt64, count: Int, key: EncryptionKey? = nil, asid: UInt16 = 0,
                 register: UInt8 = MemoryAccess.noRegister) throws(MachineError) -> [UInt8] {
        let spa = physical(address)
        try platform.memory.check(spa, count)
        var out = [UInt8](repeating: 0, count: count)
        for (offset, size) in try Platform.granules(start: spa, count: count) {
            let v = try platform.read(actor: .psp, vm: MemoryAccess.noVM, asid: key == nil ? 0 : asid, kind: .read,
                                      gva: 0, gpa: 0, spa: spa + UInt64(offset), size: size, cbit: key != nil,
                                      reason: .firmware, register: register, key: key?.schedule, cost: Platform.Cost.pspAccess)
            Platform.store(v, into: &out, at: offset, size: size)
        }
        return out
    }

    /// Writes host memory, or guest memory with a guest's key.
    func pspWrite(_ address: UInt64, _ bytes: [UInt8], key: EncryptionKey? = nil, asid: UInt16 = 0,
                  register: UInt8 = MemoryAccess.noRegister) throws(MachineError) {
        let spa = physical(address)
        try platform.memory.check(spa, bytes.count)
        for (offset, size) in try Platform.granules(start: spa, count: bytes.count) {
            try platform.write(actor: .psp, vm: MemoryAccess.noVM, asid: key == nil ? 0 : asid, kind: .write, gva: 0,
                               gpa: 0, spa: spa + UInt64(offset), size: size,
                               value: Platform.value(bytes, at: offset, size: size), cbit: key != nil,
                               reason: .firmware, register: register, key: key?.schedule, cost: Platform.Cost.pspAccess)
        }
    }

    /// Writes `data` to the caller's buffer at `address`, whose size `length` gives; `length` becomes
    /// `data`'s, and a buffer too small gets INVALID_LENGTH.
    func output(_ data: [UInt8], to address: UInt64, length: inout UInt32) -> SEVStatus {
        let room = Int(length)
        length = UInt32(data.count)
        guard room >= data.count else { return .invalidLength }
        do { try pspWrite(address, data) } catch { return .invalidAddress }
        result = data
        return .success
    }
}
