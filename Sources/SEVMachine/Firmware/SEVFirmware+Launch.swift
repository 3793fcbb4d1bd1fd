import TraceFormat

/// Launching a guest.
extension SEVFirmware {
    /// The policy checks LAUNCH_START and RECEIVE_START make: the minimum firmware version, and SEV-ES
    /// only where INIT enabled it.
    func checkPolicy(_ policy: UInt32) -> SEVStatus {
        let minMajor = UInt8(truncatingIfNeeded: policy >> 16), minMinor = UInt8(truncatingIfNeeded: policy >> 24)
        if !apiAtLeast(minMajor, minMinor) { return .policyFailure }
        if policy & GuestContext.Policy.es != 0 && !esEnabled { return .policyFailure }
        return .success
    }

    /// Reads a DH certificate and SESSION buffer and opens the session against this platform's PDH.
    func openSession(_ d: SEVData.LaunchStart) -> Result<(tek: [UInt8], tik: [UInt8]), SEVStatus> {
        guard d.certLength == UInt32(SEVCertificate.size), d.sessionLength == UInt32(LaunchSession.size) else {
            return .failure(.invalidLength)
        }
        guard let certBytes = try? pspRead(d.certAddress, count: SEVCertificate.size),
              let blob = try? pspRead(d.sessionAddress, count: LaunchSession.size) else { return .failure(.invalidAddress) }
        guard let cert = SEVCertificate(bytes: certBytes), cert.isECDHP384, let peer = cert.publicKeyX963,
              let z = identity.pdh.sharedSecret(with: peer) else { return .failure(.invalidCertificate) }
        switch LaunchSession.open(blob: blob, z: z, policy: d.policy) {
        case .success(let keys): return .success(keys)
        case .failure: return .failure(.badMeasurement)
        }
    }

    func newGuest(policy: UInt32, state: GuestState, vek: EncryptionKey?, tek: [UInt8], tik: [UInt8]) -> UInt32 {
        let handle = nextHandle
        nextHandle += 1
        let key = vek ?? EncryptionKey(bytes: platform.randomBytes(16))
        guests[handle] = GuestContext(handle: handle, policy: policy, state: state, vek: key, tek: tek, tik: tik)
        platformState = .working
        return handle
    }

    /// LAUNCH_START: a new guest context (or one sharing the key of an existing guest), with transport
    /// keys from the guest owner's session, or generated when no session is given.
    func launchStart(_ b: inout CommandBuffer) -> SEVStatus {
        var d = SEVData.LaunchStart(b)
        let policy = d.policy
        let policyStatus = checkPolicy(policy)
        guard policyStatus == .success else { return policyStatus }
        var shared: EncryptionKey?
        if d.handle != 0 {
            guard let other = guests[d.handle] else { return .invalidGuest }
            guard !other.has(GuestContext.Policy.noKeySharing), policy & GuestContext.Policy.noKeySharing == 0 else {
                return .policyFailure
            }
            shared = other.vek
        }
        var tek: [UInt8], tik: [UInt8]
        if d.certLength == 0 && d.sessionLength == 0 {
            tek = platform.randomBytes(16)
            tik = platform.randomBytes(16)
        } else {
            switch openSession(d) {
            case .success(let keys): (tek, tik) = keys
            case .failure(let status): return status
            }
        }
        d.handle = newGuest(policy: policy, state: .launchUpdate, vek: shared, tek: tek, tik: tik)
        d.store(into: &b)
        return .success
    }

    func launchUpdateData(_ guest: GuestContext, address: UInt64, length: UInt32) -> SEVStatus {
        guard physical(address) % 16 == 0 else { return .invalidAddress }
        guard length > 0, length % 16 == 0 else { return .invalidLength }
        do {
            let plaintext = try pspRead(address, count: Int(length), register: Instruction.pspData)
            guest.digest.update(plaintext)
            try pspWrite(address, plaintext, key: guest.vek, asid: guest.asid, register: Instruction.pspData)
            return .success
        } catch {
            return .invalidAddress
        }
    }

    func launchMeasure(_ guest: GuestContext, _ b: inout CommandBuffer) -> SEVStatus {
        var d = SEVData.LaunchUpdateData(b)
        defer { d.store(into: &b) }
        guard d.length >= 48 else {
            d.length = 48
            return .invalidLength
        }
        let mnonce = platform.randomBytes(16)
        let digest = guest.digest.finalize()
        let measure = LaunchMeasurement.compute(apiMajor: apiMajor, apiMinor: apiMinor, build: build,
                                                policy: guest.policy, digest: digest, mnonce: mnonce, tik: guest.tik)
        let status = output(measure + mnonce, to: d.address, length: &d.length)
        guard status == .success else { return status }
        guest.launchDigest = digest
        guest.measurement = measure
        guest.state = .launchSecret
        return .success
    }

    /// LAUNCH_SECRET: check the packet's MAC (which covers the measurement), decrypt the secret with the
    /// TEK and write it into guest memory under the VEK.
    func launchSecret(_ guest: GuestContext, _ b: inout CommandBuffer) -> SEVStatus {
        let d = SEVData.LaunchSecret(b)
        let guestAddress = d.guestAddress, guestLength = d.guestLength, transLength = d.transLength
        guard d.headerLength == UInt32(TransportPacket.headerSize) else { return .invalidLength }
        guard guestLength > 0, guestLength == transLength, guestLength % 16 == 0, guestLength <= 0x4000 else {
            return .invalidLength
        }
        guard physical(guestAddress) % 16 == 0 else { return .invalidAddress }
        guard let header = try? pspRead(d.headerAddress, count: TransportPacket.headerSize),
              let trans = try? pspRead(d.transAddress, count: Int(transLength), register: Instruction.pspTransport) else { return .invalidAddress }
        let h = TransportPacket.Header(CommandBuffer(bytes: header))
        guard h.flags & 1 == 0 else { return .invalidParam }  // compressed packets are not modelled
        let iv = h.iv
        let mac = TransportPacket.mac(tik: guest.tik, kind: 0x01, flags: h.flags, iv: iv, guestLength: guestLength,
                                      trans: trans, measurement: apiAtLeast(0, 17) ? guest.measurement : [])
        guard mac == h.mac else { return .badMeasurement }
        let secret = AESCTR.apply(key: guest.tek, iv: iv, trans)
        do { try pspWrite(guestAddress, secret, key: guest.vek, asid: guest.asid, register: Instruction.pspData) } catch { return .invalidAddress }
        return .success
    }
}
