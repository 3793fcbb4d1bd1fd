import TraceFormat

/// Sending a guest to another platform and receiving one.
extension SEVFirmware {
    /// SEND_START: check the policy and the target's certificates, then agree new transport keys with
    /// the target's PDH and return them wrapped in a SESSION buffer.
    func sendStart(_ guest: GuestContext, _ b: inout CommandBuffer) -> SEVStatus {
        guard !guest.has(GuestContext.Policy.noSend) else { return .policyFailure }
        b.setU32(4, guest.policy)
        guard b.u32(64) >= UInt32(LaunchSession.size) else {
            b.setU32(64, UInt32(LaunchSession.size))
            return .invalidLength
        }
        let size = SEVCertificate.size
        guard b.u32(16) == UInt32(size), b.u32(32) == UInt32(3 * size) else { return .invalidLength }
        guard let pdhBytes = try? pspRead(b.u64(8), count: size),
              let chain = try? pspRead(b.u64(24), count: 3 * size) else { return .invalidAddress }
        let pdh = SEVCertificate(bytes: pdhBytes)!
        let pek = SEVCertificate(bytes: Array(chain[0..<size]))!, oca = SEVCertificate(bytes: Array(chain[size..<2 * size]))!
        let cek = SEVCertificate(bytes: Array(chain[2 * size..<3 * size]))!
        let check = identity.checkTarget(pdh: pdh, pek: pek, oca: oca, cek: cek,
                                         sameDomain: guest.has(GuestContext.Policy.domain),
                                         amdOnly: guest.has(GuestContext.Policy.sev))
        guard check == .success else { return check }
        guard let session = LaunchSession.create(own: identity.pdh, pdh: pdh.publicKeyX963!, policy: guest.policy,
                                                 rng: &platform.machine.rng) else { return .invalidCertificate }
        let status = output(session.blob, to: &b, address: 56, length: 64)
        guard status == .success else { return status }
        guest.tek = session.tek
        guest.tik = session.tik
        guest.state = .sendUpdate
        return .success
    }

    /// SEND_UPDATE_DATA: read guest memory under the VEK and hand it out encrypted with the TEK and
    /// authenticated with the TIK.
    func sendUpdateData(_ guest: GuestContext, _ b: inout CommandBuffer) -> SEVStatus {
        let guestLength = b.u32(32)
        guard b.u32(16) >= UInt32(TransportPacket.headerSize) else {
            b.setU32(16, UInt32(TransportPacket.headerSize))
            return .invalidLength
        }
        guard guestLength > 0, guestLength % 16 == 0, b.u32(48) >= guestLength else {
            b.setU32(48, guestLength)
            return .invalidLength
        }
        guard physical(b.u64(24)) % 16 == 0 else { return .invalidAddress }
        do {
            let plain = try pspRead(b.u64(24), count: Int(guestLength), key: guest.vek, asid: guest.asid, register: Instruction.pspData)
            let iv = platform.randomBytes(16)
            let trans = AESCTR.apply(key: guest.tek, iv: iv, plain)
            let mac = TransportPacket.mac(tik: guest.tik, kind: 0x02, flags: 0, iv: iv, guestLength: guestLength, trans: trans)
            try pspWrite(b.u64(40), trans, register: Instruction.pspTransport)
            try pspWrite(b.u64(8), TransportPacket.header(flags: 0, iv: iv, mac: mac))
        } catch {
            return .invalidAddress
        }
        b.setU32(48, guestLength)
        return .success
    }

    /// RECEIVE_START: a new guest whose transport keys come from the sender's SESSION buffer.
    func receiveStart(_ b: inout CommandBuffer) -> SEVStatus {
        let policy = b.u32(4)
        let policyStatus = checkPolicy(policy)
        guard policyStatus == .success else { return policyStatus }
        guard b.u32(0) == 0 else { return guests[b.u32(0)] == nil ? .invalidGuest : .unsupported }
        switch openSession(certAddress: b.u64(8), certLength: b.u32(16), sessionAddress: b.u64(24),
                           sessionLength: b.u32(32), policy: policy) {
        case .success(let keys):
            b.setU32(0, newGuest(policy: policy, state: .receiveUpdate, vek: nil, tek: keys.tek, tik: keys.tik))
            return .success
        case .failure(let status):
            return status
        }
    }

    /// RECEIVE_UPDATE_DATA: check the packet's MAC, decrypt it with the TEK, write it under the VEK.
    func receiveUpdateData(_ guest: GuestContext, _ b: inout CommandBuffer) -> SEVStatus {
        let guestLength = b.u32(32), transLength = b.u32(48)
        guard b.u32(16) == UInt32(TransportPacket.headerSize) else { return .invalidLength }
        guard guestLength > 0, guestLength == transLength, guestLength % 16 == 0 else { return .invalidLength }
        guard physical(b.u64(24)) % 16 == 0 else { return .invalidAddress }
        guard let header = try? pspRead(b.u64(8), count: TransportPacket.headerSize),
              let trans = try? pspRead(b.u64(40), count: Int(transLength), register: Instruction.pspTransport) else { return .invalidAddress }
        let h = CommandBuffer(bytes: header)
        let iv = h.slice(4, 16)
        let mac = TransportPacket.mac(tik: guest.tik, kind: 0x02, flags: h.u32(0), iv: iv, guestLength: guestLength,
                                      trans: trans)
        guard mac == h.slice(20, 32) else { return .badMeasurement }
        do {
            try pspWrite(b.u64(24), AESCTR.apply(key: guest.tek, iv: iv, trans), key: guest.vek, asid: guest.asid, register: Instruction.pspData)
        } catch {
            return .invalidAddress
        }
        return .success
    }
}
