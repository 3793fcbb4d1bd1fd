import TraceFormat

/// Guest management, debugging, COPY and ATTESTATION.
extension SEVFirmware {
    func activate(_ guest: GuestContext, asid raw: UInt32) -> SEVStatus {
        let config = platform.config
        guard raw >= UInt32(config.minSEVASID), raw <= UInt32(config.maxSEVASID) else { return .invalidASID }
        let asid = UInt16(raw)
        let holders = asidGuests[Int(asid)]
        // An ASID serves one key: another guest may hold it only if it shares this guest's VEK.
        if let other = holders.first(where: { $0 != guest.handle }), guests[other]?.vek !== guest.vek { return .asidOwned }
        if asidNeedsFlush[Int(asid)] { return .dfflushRequired }
        if guest.asid != 0 && guest.asid != asid { return .active }
        if !holders.contains(guest.handle) { asidGuests[Int(asid)].append(guest.handle) }
        guest.asid = asid
        platform.controller.setKey(guest.vek, forASID: asid)
        return .success
    }

    func deactivate(_ guest: GuestContext) -> SEVStatus {
        guard guest.asid != 0 else { return .inactive }
        let asid = Int(guest.asid)
        asidGuests[asid].removeAll { $0 == guest.handle }
        if asidGuests[asid].isEmpty {
            asidNeedsFlush[asid] = true
            for core in wbinvdSinceDeactivate.indices { wbinvdSinceDeactivate[core] = false }
            platform.controller.setKey(nil, forASID: guest.asid)
        }
        guest.asid = 0
        return .success
    }

    func decommission(_ guest: GuestContext) -> SEVStatus {
        guard guest.asid == 0 else { return .active }
        guests[guest.handle] = nil
        if guests.isEmpty { platformState = .initialized }
        return .success
    }

    /// DBG_DECRYPT / DBG_ENCRYPT: move `len` bytes between guest memory (under the VEK) and host memory.
    /// Addresses and length must be 16-byte aligned; a NODBG policy refuses.
    func debug(_ guest: GuestContext, _ b: inout CommandBuffer, decrypt: Bool) -> SEVStatus {
        guard !guest.has(GuestContext.Policy.noDebug) else { return .policyFailure }
        let d = SEVData.Debug(b)
        let src = d.source, dst = d.destination, length = Int(d.length)
        guard physical(src) % 16 == 0, physical(dst) % 16 == 0 else { return .invalidAddress }
        guard length > 0, length % 16 == 0 else { return .invalidLength }
        do {
            if decrypt {
                let data = try pspRead(src, count: length, key: guest.vek, asid: guest.asid, register: Instruction.pspData)
                try pspWrite(dst, data, register: Instruction.pspData)
                result = data
            } else {
                let data = try pspRead(src, count: length, register: Instruction.pspData)
                try pspWrite(dst, data, key: guest.vek, asid: guest.asid, register: Instruction.pspData)
            }
        } catch {
            return .invalidAddress
        }
        return .success
    }

    /// COPY: move encrypted guest memory to another physical place (re-encrypted under the new
    /// address's tweak), as the hypervisor does to migrate pages within a host.
    func copy(_ guest: GuestContext, _ b: inout CommandBuffer) -> SEVStatus {
        let d = SEVData.Copy(b)
        let length = Int(d.length), src = d.source, dst = d.destination
        guard physical(src) % 16 == 0, physical(dst) % 16 == 0 else { return .invalidAddress }
        guard length > 0, length % 16 == 0 else { return .invalidLength }
        do {
            let data = try pspRead(src, count: length, key: guest.vek, asid: guest.asid, register: Instruction.pspData)
            try pspWrite(dst, data, key: guest.vek, asid: guest.asid, register: Instruction.pspData)
        } catch {
            return .invalidAddress
        }
        return .success
    }

    /// The size of an attestation report.
    static let attestationReportSize = 208

    /// ATTESTATION: a 208-byte report `mnonce[16] || launch_digest[32] || policy || sig_usage (PEK) ||
    /// sig_algo (ECDSA-SHA256) || rsvd || sig[144]`, signed by the PEK over its first 52 bytes.
    func attestation(_ guest: GuestContext, _ b: inout CommandBuffer) -> SEVStatus {
        var d = SEVData.Attestation(b)
        defer { d.store(into: &b) }
        var report = CommandBuffer(size: Self.attestationReportSize)
        report.set(0, d.mnonce)
        report.set(16, guest.launchDigest)
        report.setU32(48, guest.policy)
        report.setU32(52, SEVCertificate.Usage.pek.rawValue)
        report.setU32(56, SEVCertificate.Algorithm.ecdsaSHA256.rawValue)
        let digest = LaunchSession.sha256(Array(report.bytes[0..<52]))
        let (r, s) = DeterministicECDSA.sign(digest: digest, privateKey: identity.pek.privateKey)
        report.set(64, r.reversed())
        report.set(64 + 72, s.reversed())
        return output(report.bytes, to: d.address, length: &d.length)
    }
}
