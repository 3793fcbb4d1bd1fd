import TraceFormat

/// Sending a guest to another platform and receiving one.
extension SEVFirmware {
    /// SEND_START: check the policy and the target's certificates, then agree new transport keys with
    /// the target's PDH and return them wrapped in a SESSION buffer.
    func sendStart(_ guest: GuestContext, _ b: inout CommandBuffer) -> SEVStatus {
        guard !guest.has(GuestContext.Policy.noSend) else { return .policyFailure }
        var d = SEVData.SendStart(b)
        defer { d.store(into: &b) }
        d.policy = guest.policy
        guard d.sessionLength >= UInt32(LaunchSession.size) else {
            d.sessionLength = UInt32(LaunchSession.size)
            return .invalidLength
        }
        let size = SEVCertificate.size
        guard d.pdhLength == UInt32(size), d.platformCertsLength == UInt32(3 * size) else { return .invalidLength }
        guard let pdhBytes = try? pspRead(d.pdhAddress, count: size),
              let chain = try? pspRead(d.platformCertsAddress, count: 3 * size) else { return .invalidAddress }
        let pdh = SEVCertificate(bytes: pdhBytes)!
        let pek = SEVCertificate(bytes: Array(chain[0..<size]))!, oca = SEVCertificate(bytes: Array(chain[size..<2 * size]))!
        let cek = SEVCertificate(bytes: Array(chain[2 * size..<3 * size]))!
        let check = identity.checkTarget(pdh: pdh, pek: pek, oca: oca, cek: cek,
                                         sameDomain: guest.has(GuestContext.Policy.domain),
                                         amdOnly: guest.has(GuestContext.Policy.sev))
        guard check == .success else { return check }
        guard let session = LaunchSession.create(own: identity.pdh, pdh: pdh.publicKeyX963!, policy: guest.policy,
                                                 rng: &platform.machine.rng) else { return .invalidCertificate }
        let status = output(session.blob, to: d.sessionAddress, length: &d.sessionLength)
        guard status == .success else { return status }
        guest.tek = session.tek
        guest.tik = session.tik
        guest.state = .sendUpdate
        return .success
    }

    /// SEND_UPDATE_DATA: read guest memory under the VEK and hand it out encrypted with the TEK and
    /// authenticated with the TIK.
    func sendUpdateData(_ guest: GuestContext, _ b: inout CommandBuffer) -> SEVStatus {
        var d = SEVData.LaunchSecret(b)
        defer { d.store(into: &b) }
        let guestLength = d.guestLength
        guard d.headerLength >= UInt32(TransportPacket.headerSize) else {
            d.headerLength = UInt32(TransportPacket.headerSize)
            return .invalidLength
        }
        guard guestLength > 0, guestLength % 16 == 0, d.transLength >= guestLength else {
            d.transLength = guestLength
            return .invalidLength
        }
        guard physical(d.guestAddress) % 16 == 0 else { return .invalidAddress }
        do {
            let plain = try pspRead(d.guestAddress, count: Int(guestLength), key: guest.vek, asid: guest.asid, register: Instruction.pspData)
            let iv = platform.randomBytes(16)
            let trans = AESCTR.apply(key: guest.tek, iv: iv, plain)
            let mac = TransportPacket.mac(tik: guest.tik, kind: 0x02, flags: 0, iv: iv, guestLength: guestLength, trans: trans)
            try pspWrite(d.transAddress, trans, register: Instruction.pspTransport)
            try pspWrite(d.headerAddress, TransportPacket.header(flags: 0, iv: iv, mac: mac))
        } catch {
            return .invalidAddress
        }
        d.transLength = guestLength
        return .success
    }

    /// RECEIVE_START: a new guest whose transport keys come from the sender's SESSION buffer.
    func receiveStart(_ b: inout CommandBuffer) -> SEVStatus {
        var d = SEVData.LaunchStart(b)
        let policyStatus = checkPolicy(d.policy)
        guard policyStatus == .success else { return policyStatus }
        guard d.handle == 0 else { return guests[d.handle] == nil ? .invalidGuest : .unsupported }
        switch openSession(d) {
        case .success(let keys):
            d.handle = newGuest(policy: d.policy, state: .receiveUpdate, vek: nil, tek: keys.tek, tik: keys.tik)
            d.store(into: &b)
            return .success
        case .failure(let status):
            return status
        }
    }

    /// RECEIVE_UPDATE_DATA: check the packet's MAC, decrypt it with the TEK, write it under the VEK.
    func receiveUpdateData(_ guest: GuestContext, _ b: inout CommandBuffer) -> SEVStatus {
        let d = SEVData.LaunchSecret(b)
        let guestLength = d.guestLength, transLength = d.transLength
        guard d.headerLength == UInt32(TransportPacket.headerSize) else { return .invalidLength }
        guard guestLength > 0, guestLength == transLength, guestLength % 16 == 0 else { return .invalidLength }
        guard physical(d.guestAddress) % 16 == 0 else { return .invalidAddress }
        guard let header = try? pspRead(d.headerAddress, count: TransportPacket.headerSize),
              let trans = try? pspRead(d.transAddress, count: Int(transLength), register: Instruction.pspTransport) else { return .invalidAddress }
        let h = TransportPacket.Header(CommandBuffer(bytes: header))
        let iv = h.iv
        let mac = TransportPacket.mac(tik: guest.tik, kind: 0x02, flags: h.flags, iv: iv, guestLength: guestLength,
                                      trans: trans)
        guard mac == h.mac else { return .badMeasurement }
        do {
            try pspWrite(d.guestAddress, AESCTR.apply(key: guest.tek, iv: iv, trans), key: guest.vek, asid: guest.asid, register: Instruction.pspData)
        } catch {
            return .invalidAddress
        }
        return .success
    }
}
