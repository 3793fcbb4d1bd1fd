import TraceFormat

/// The platform commands.
extension SEVFirmware {
    func initialize(_ b: inout CommandBuffer) -> SEVStatus {
        esEnabled = b.u32(0) & 1 != 0
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
        b.setU8(0, apiMajor)
        b.setU8(1, apiMinor)
        b.setU8(2, platformState.rawValue)
        b.setU32(3, (identity.selfOwned ? 0 : 1) | (esEnabled ? 0x100 : 0))
        b.setU8(7, build)
        b.setU32(8, UInt32(guests.count))
        return .success
    }

    func pekGen() -> SEVStatus {
        identity.regenerateSelfOwned(rng: &platform.machine.rng)
        return .success
    }

    func pekCSR(_ b: inout CommandBuffer) -> SEVStatus {
        if b.u32(8) < UInt32(SEVCertificate.size) {
            b.setU32(8, UInt32(SEVCertificate.size))
            return .invalidLength
        }
        let csr = identity.pekSigningRequest(rng: &platform.machine.rng)
        return output(csr.bytes, to: &b, address: 0, length: 8)
    }

    func pekCertImport(_ b: inout CommandBuffer) -> SEVStatus {
        guard b.u32(8) == UInt32(SEVCertificate.size), b.u32(24) == UInt32(SEVCertificate.size) else { return .invalidLength }
        guard let pek = try? pspRead(b.u64(0), count: SEVCertificate.size),
              let oca = try? pspRead(b.u64(16), count: SEVCertificate.size) else { return .invalidAddress }
        return identity.importPEK(SEVCertificate(bytes: pek)!, oca: SEVCertificate(bytes: oca)!, rng: &platform.machine.rng)
    }

    func pdhGen() -> SEVStatus {
        identity.regeneratePDH(rng: &platform.machine.rng)
        return .success
    }

    func pdhCertExport(_ b: inout CommandBuffer) -> SEVStatus {
        let pdhLength = b.u32(8), chainLength = b.u32(24)
        b.setU32(8, UInt32(SEVCertificate.size))
        b.setU32(24, UInt32(3 * SEVCertificate.size))
        guard pdhLength >= UInt32(SEVCertificate.size), chainLength >= UInt32(3 * SEVCertificate.size) else {
            return .invalidLength
        }
        do {
            try pspWrite(b.u64(0), identity.pdhCert.bytes)
            try pspWrite(b.u64(16), identity.chain)
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
        let address = b.u64(0), length = Int(b.u32(8))
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
        output(identity.chipID, to: &b, address: 0, length: 8)
    }
}
