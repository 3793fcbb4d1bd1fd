import TraceFormat

/// The platform commands.
extension SEVFirmware {
    func initialize(_ b: inout CommandBuffer) -> SEVStatus {
        esEnabled = SEVData.Init(b).flags & 1 != 0
        _ = identity
        platformState = .initialized
        return .success
    }

    func shutdown() -> SEVStatus {
        for asid in asidGuests.indices where !asidGuests[asid].isEmpty {
            platform.controller.setKey(nil, forASID: UInt16(asid))
            asidGuests[asid] = []
        }
        guests.removeAll()
        platformState = .uninit
        return .success
    }

    func factoryReset() -> SEVStatus {
        identity.regenerateSelfOwned(rng: &platform.machine.rng)
        return .success
    }

    func platformStatus(_ b: inout CommandBuffer) -> SEVStatus {
        var status = SEVData.PlatformStatus()
        status.apiMajor = apiMajor
        status.apiMinor = apiMinor
        status.state = platformState.rawValue
        status.flags = (identity.selfOwned ? 0 : 1) | (esEnabled ? 0x100 : 0)
        status.build = build
        status.guestCount = UInt32(guests.count)
        status.store(into: &b)
        return .success
    }

    func pekGen() -> SEVStatus {
        identity.regenerateSelfOwned(rng: &platform.machine.rng)
        return .success
    }

    func pekCSR(_ b: inout CommandBuffer) -> SEVStatus {
        var d = SEVData.Blob(b)
        defer { d.store(into: &b) }
        if d.length < UInt32(SEVCertificate.size) {
            d.length = UInt32(SEVCertificate.size)
            return .invalidLength
        }
        let csr = identity.pekSigningRequest(rng: &platform.machine.rng)
        return output(csr.bytes, to: d.address, length: &d.length)
    }

    func pekCertImport(_ b: inout CommandBuffer) -> SEVStatus {
        let d = SEVData.PEKCertImport(b)
        guard d.pekLength == UInt32(SEVCertificate.size), d.ocaLength == UInt32(SEVCertificate.size) else { return .invalidLength }
        guard let pek = try? pspRead(d.pekAddress, count: SEVCertificate.size),
              let oca = try? pspRead(d.ocaAddress, count: SEVCertificate.size) else { return .invalidAddress }
        return identity.importPEK(SEVCertificate(bytes: pek)!, oca: SEVCertificate(bytes: oca)!, rng: &platform.machine.rng)
    }

    func pdhGen() -> SEVStatus {
        identity.regeneratePDH(rng: &platform.machine.rng)
        return .success
    }

    func pdhCertExport(_ b: inout CommandBuffer) -> SEVStatus {
        var d = SEVData.PDHCertExport(b)
        let pdhLength = d.pdhLength, chainLength = d.chainLength
        d.pdhLength = UInt32(SEVCertificate.size)
        d.chainLength = UInt32(3 * SEVCertificate.size)
        d.store(into: &b)
        guard pdhLength >= d.pdhLength, chainLength >= d.chainLength else { return .invalidLength }
        do {
            try pspWrite(d.pdhAddress, identity.pdhCert.bytes)
            try pspWrite(d.chainAddress, identity.chain)
        } catch {
            return .invalidAddress
        }
        return .success
    }

    func dfFlush() -> SEVStatus {
        if asidNeedsFlush.contains(true) && wbinvdSinceDeactivate.contains(false) { return .wbinvdRequired }
        for i in asidNeedsFlush.indices { asidNeedsFlush[i] = false }
        return .success
    }

    /// DOWNLOAD_FIRMWARE. A simulated firmware image is `SEVF`, then the API major, minor and build
    /// bytes; it must be 32-byte aligned. The version it carries becomes the firmware's.
    func downloadFirmware(_ b: inout CommandBuffer) -> SEVStatus {
        let d = SEVData.Blob(b)
        let address = d.address, length = Int(d.length)
        guard address % 32 == 0 else { return .invalidAddress }
        guard length >= 7, length <= 0x4000 else { return .invalidLength }
        guard let image = try? pspRead(address, count: length) else { return .invalidAddress }
        guard image[0..<4] == [0x53, 0x45, 0x56, 0x46] else { return .badSignature }
        apiMajor = image[4]
        apiMinor = image[5]
        build = image[6]
        return .success
    }

    func getID(_ b: inout CommandBuffer) -> SEVStatus {
        var d = SEVData.Blob(b)
        defer { d.store(into: &b) }
        return output(identity.chipID, to: d.address, length: &d.length)
    }
}
