import TraceFormat

/// The SEV firmware running on the PSP: the platform and guest state machines and the commands of the
/// SEV API, each reported as one event with its buffer, status and state change.
///
/// Commands modelled: INIT, SHUTDOWN, PLATFORM_STATUS, DF_FLUSH, LAUNCH_START, LAUNCH_UPDATE_DATA,
/// LAUNCH_MEASURE, LAUNCH_FINISH, ACTIVATE, DEACTIVATE, DECOMMISSION, GUEST_STATUS. Every other id
/// answers INVALID_COMMAND.
public final class SEVFirmware {
    unowned let platform: Platform
    public private(set) var platformState: PlatformState = .uninit
    /// Whether INIT set CONFIG_ES.
    public private(set) var esEnabled = false
    private var guests: [UInt32: GuestContext] = [:]
    private var nextHandle: UInt32 = 1
    /// The guest handle each ASID is activated for (0: free).
    private var asidOwner: [UInt32]
    /// ASIDs deactivated since the last DF_FLUSH: their cache lines may still be dirty.
    private var asidNeedsFlush: [Bool]
    /// Whether WBINVD ran on every core since the last DEACTIVATE.
    private var wbinvdSinceDeactivate = true

    init(platform: Platform) {
        self.platform = platform
        asidOwner = Array(repeating: 0, count: Int(platform.config.maxSEVASID) + 1)
        asidNeedsFlush = Array(repeating: false, count: Int(platform.config.maxSEVASID) + 1)
    }

    /// The number of guests the firmware holds contexts for.
    public var guestCount: Int { guests.count }

    /// The state of the guest with `handle`, if it exists.
    public func guestState(handle: UInt32) -> GuestState? { guests[handle]?.state }

    /// The measurement LAUNCH_MEASURE produced for `handle`, if any.
    public func measurement(handle: UInt32) -> [UInt8]? { guests[handle]?.measurement }

    func noteWBINVD() { wbinvdSinceDeactivate = true }

    /// Runs one command, as the mailbox would: the buffer is read and updated in place, the status returned.
    @discardableResult
    public func execute(_ id: UInt8, buffer: inout CommandBuffer) -> SEVStatus {
        let command = SEVCommand(rawValue: id)
        let handle = command.map(Self.namesGuest) == true ? buffer.u32(0) : 0
        let platformBefore = platformState
        let guestBefore = guests[handle]?.state.rawValue ?? GuestState.none
        let status: SEVStatus
        if let command {
            status = run(command, &buffer)
        } else {
            status = .invalidCommand
        }
        let reportedHandle = command == .launchStart ? buffer.u32(0) : handle
        let asid: UInt16 = command == .activate ? UInt16(truncatingIfNeeded: buffer.u32(4)) : guests[reportedHandle]?.asid ?? 0
        platform.emit(.pspCommand(PSPCommand(
            platform: platform.id, command: id, handle: reportedHandle, asid: asid, status: status.rawValue,
            platformBefore: platformBefore.rawValue, platformAfter: platformState.rawValue,
            guestBefore: guestBefore, guestAfter: guests[reportedHandle]?.state.rawValue ?? GuestState.none,
            buffer: buffer.bytes)), cost: Platform.Cost.pspCommand)
        return status
    }

    /// Whether the command's buffer starts with a guest handle.
    static func namesGuest(_ c: SEVCommand) -> Bool {
        switch c {
        case .decommission, .activate, .deactivate, .guestStatus, .launchStart, .launchUpdateData, .launchMeasure,
             .launchFinish, .launchSecret, .launchUpdateVMSA, .sendStart, .sendUpdateData, .sendFinish, .sendCancel,
             .receiveStart, .receiveUpdateData, .receiveFinish, .dbgDecrypt, .dbgEncrypt, .copy, .attestation:
            true
        default:
            false
        }
    }

    /// Whether the SEV API allows `c` for a guest in `state` (SEV API, guest state table).
    static func allowed(_ c: SEVCommand, in state: GuestState) -> Bool {
        switch c {
        case .activate, .deactivate, .decommission, .guestStatus: state != .uninit && state != .sent
        case .launchUpdateData, .launchUpdateVMSA, .launchMeasure: state == .launchUpdate
        case .launchSecret, .launchFinish: state == .launchSecret
        case .sendStart: state == .running
        case .sendUpdateData, .sendUpdateVMSA, .sendFinish, .sendCancel: state == .sendUpdate
        case .receiveUpdateData, .receiveUpdateVMSA, .receiveFinish: state == .receiveUpdate
        default: false
        }
    }

    private func run(_ c: SEVCommand, _ b: inout CommandBuffer) -> SEVStatus {
        let size = CommandBuffer.size(of: c)
        guard size > 0 || c == .shutdown || c == .dfFlush else { return .invalidCommand }
        guard b.bytes.count >= size else { return .invalidLength }
        switch c {
        case .initialize: return initialize(&b)
        case .shutdown: return shutdown()
        case .platformStatus: return platformStatus(&b)
        case .dfFlush: return dfFlush()
        default: break
        }
        guard platformState != .uninit else { return .invalidPlatformState }
        if c == .launchStart { return launchStart(&b) }
        guard let guest = guests[b.u32(0)] else { return .invalidGuest }
        guard Self.allowed(c, in: guest.state) else { return .invalidGuestState }
        switch c {
        case .activate: return activate(guest, asid: b.u32(4))
        case .deactivate: return deactivate(guest)
        case .decommission: return decommission(guest)
        case .guestStatus:
            b.setU32(4, guest.policy)
            b.setU32(8, UInt32(guest.asid))
            b.setU8(12, guest.state.rawValue)
            return .success
        case .launchUpdateData: return launchUpdateData(guest, address: b.u64(8), length: b.u32(16))
        case .launchMeasure: return launchMeasure(guest, &b)
        case .launchFinish:
            guest.state = .running
            return .success
        default: return .invalidCommand
        }
    }

    // MARK: - Platform commands

    private func initialize(_ b: inout CommandBuffer) -> SEVStatus {
        guard platformState == .uninit else { return .invalidPlatformState }
        esEnabled = b.u32(0) & 1 != 0
        platformState = .initialized
        return .success
    }

    private func shutdown() -> SEVStatus {
        guard platformState != .uninit else { return .success }
        for asid in asidOwner.indices where asidOwner[asid] != 0 {
            platform.controller.setKey(nil, forASID: UInt16(asid))
            asidOwner[asid] = 0
        }
        guests.removeAll()
        platformState = .uninit
        return .success
    }

    private func platformStatus(_ b: inout CommandBuffer) -> SEVStatus {
        b.setU8(0, platform.config.apiMajor)
        b.setU8(1, platform.config.apiMinor)
        b.setU8(2, platformState.rawValue)
        b.setU32(3, esEnabled ? 0x100 : 0)
        b.setU8(7, platform.config.build)
        b.setU32(8, UInt32(guests.count))
        return .success
    }

    private func dfFlush() -> SEVStatus {
        guard platformState != .uninit else { return .invalidPlatformState }
        if asidNeedsFlush.contains(true) && !wbinvdSinceDeactivate { return .wbinvdRequired }
        for i in asidNeedsFlush.indices { asidNeedsFlush[i] = false }
        return .success
    }

    // MARK: - Guest management

    private func activate(_ guest: GuestContext, asid raw: UInt32) -> SEVStatus {
        let config = platform.config
        guard raw >= UInt32(config.minSEVASID), raw <= UInt32(config.maxSEVASID) else { return .invalidASID }
        let asid = UInt16(raw)
        let owner = asidOwner[Int(asid)]
        if owner != 0 && owner != guest.handle { return .asidOwned }
        if asidNeedsFlush[Int(asid)] { return .dfflushRequired }
        if guest.asid != 0 && guest.asid != asid { return .active }
        asidOwner[Int(asid)] = guest.handle
        guest.asid = asid
        platform.controller.setKey(guest.vek, forASID: asid)
        return .success
    }

    private func deactivate(_ guest: GuestContext) -> SEVStatus {
        guard guest.asid != 0 else { return .inactive }
        let asid = Int(guest.asid)
        asidOwner[asid] = 0
        asidNeedsFlush[asid] = true
        wbinvdSinceDeactivate = false
        platform.controller.setKey(nil, forASID: guest.asid)
        guest.asid = 0
        return .success
    }

    private func decommission(_ guest: GuestContext) -> SEVStatus {
        guard guest.asid == 0 else { return .active }
        guests[guest.handle] = nil
        if guests.isEmpty { platformState = .initialized }
        return .success
    }

    // MARK: - Launch

    private func launchStart(_ b: inout CommandBuffer) -> SEVStatus {
        let policy = b.u32(4)
        guard b.u32(0) == 0 else {
            // Key sharing with an existing guest arrives with the rest of the firmware.
            return guests[b.u32(0)] == nil ? .invalidGuest : .unsupported
        }
        let minMajor = UInt8(truncatingIfNeeded: policy >> 16), minMinor = UInt8(truncatingIfNeeded: policy >> 24)
        let config = platform.config
        if (minMajor, minMinor) > (config.apiMajor, config.apiMinor) { return .policyFailure }
        if policy & 0x4 != 0 && !esEnabled { return .policyFailure }
        let handle = nextHandle
        nextHandle += 1
        let vek = EncryptionKey(bytes: platform.randomBytes(16))
        let guest = GuestContext(handle: handle, policy: policy, vek: vek, tek: platform.randomBytes(16),
                                 tik: platform.randomBytes(16))
        guests[handle] = guest
        platformState = .working
        b.setU32(0, handle)
        return .success
    }

    private func launchUpdateData(_ guest: GuestContext, address: UInt64, length: UInt32) -> SEVStatus {
        guard address % 16 == 0 else { return .invalidAddress }
        guard length > 0, length % 16 == 0 else { return .invalidLength }
        do {
            let plaintext = try pspRead(address, count: Int(length))
            guest.launchDigest.update(data: plaintext)
            try pspWrite(address, plaintext, key: guest.vek, asid: guest.asid)
            return .success
        } catch {
            return .invalidAddress
        }
    }

    private func launchMeasure(_ guest: GuestContext, _ b: inout CommandBuffer) -> SEVStatus {
        let address = b.u64(8), length = b.u32(16)
        guard length >= 48 else {
            b.setU32(16, 48)
            return .invalidLength
        }
        let mnonce = platform.randomBytes(16)
        let config = platform.config
        let digest = Array(guest.launchDigest.finalize())
        let measure = LaunchMeasurement.compute(apiMajor: config.apiMajor, apiMinor: config.apiMinor, build: config.build,
                                                policy: guest.policy, digest: digest, mnonce: mnonce, tik: guest.tik)
        do {
            try pspWrite(address, measure + mnonce, key: nil, asid: 0)
        } catch {
            return .invalidAddress
        }
        guest.measurement = measure
        guest.state = .launchSecret
        b.setU32(16, 48)
        return .success
    }

    /// The launch digest so far and the TIK of a guest, for tests that check the measurement independently.
    public func launchSecrets(handle: UInt32) -> (tik: [UInt8], policy: UInt32)? {
        guests[handle].map { ($0.tik, $0.policy) }
    }

    // MARK: - The PSP's own memory accesses

    private func pspRead(_ spa: UInt64, count: Int) throws(MachineError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        for (offset, size) in Platform.granules(start: spa, count: count) {
            let v = try platform.read(actor: .psp, vm: MemoryAccess.noVM, asid: 0, kind: .read, gva: 0, gpa: 0,
                                     spa: spa + UInt64(offset), size: size, cbit: false, reason: .firmware, key: nil,
                                     cost: Platform.Cost.pspAccess)
            Platform.store(v, into: &out, at: offset, size: size)
        }
        return out
    }

    private func pspWrite(_ spa: UInt64, _ bytes: [UInt8], key: EncryptionKey?, asid: UInt16) throws(MachineError) {
        for (offset, size) in Platform.granules(start: spa, count: bytes.count) {
            try platform.write(actor: .psp, vm: MemoryAccess.noVM, asid: key == nil ? 0 : asid, kind: .write, gva: 0,
                              gpa: 0, spa: spa + UInt64(offset), size: size,
                              value: Platform.value(bytes, at: offset, size: size), cbit: key != nil, reason: .firmware,
                              key: key, cost: Platform.Cost.pspAccess)
        }
    }
}
