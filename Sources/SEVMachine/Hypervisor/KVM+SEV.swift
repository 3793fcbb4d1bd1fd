import TraceFormat

/// KVM's SEV ioctl, `KVM_MEMORY_ENCRYPT_OP`, modelled on `arch/x86/kvm/svm/sev.c`: it checks the caller
/// and the arguments as KVM does, copies what user space points to into kernel buffers, issues the
/// firmware commands through the PSP driver, and copies results back. A firmware failure returns -EIO
/// with the firmware's status in `error`.
extension KVM {
    /// The descriptor `open("/dev/sev")` returns in the simulation.
    public static let sevDeviceFD: Int32 = 3

    /// Runs one sub-command for `vm`; returns 0 or a negated errno. The ioctl is recorded with its answer.
    public func memoryEncryptOp(_ vm: VirtualMachine, _ cmd: inout KVMSevCmd) -> Int32 {
        let ret: Int32
        do {
            ret = try sevOp(vm, &cmd)
        } catch let e as KVMFailure {
            ret = -e.errno.rawValue
        } catch {
            ret = -Errno.efault.rawValue
        }
        platform.emit(.kvmIoctl(KVMIoctl(vm: vm.id, command: cmd.id, fd: cmd.sevFD, errno: -ret,
                                         firmwareError: ret == 0 ? 0 : cmd.error)), cost: Platform.Cost.control)
        return ret
    }

    /// A refusal with an errno.
    struct KVMFailure: Error { let errno: Errno }

    private func fail(_ e: Errno) -> KVMFailure { KVMFailure(errno: e) }

    /// `__sev_issue_cmd`: a firmware command goes through a `/dev/sev` descriptor, `fd` (the caller's for
    /// LAUNCH_START and RECEIVE_START, the one they stored for later sub-commands); anything else is EBADF.
    private func issue(_ c: SEVCommand, _ b: CommandBuffer, fd: Int32) throws -> (SEVStatus, CommandBuffer) {
        guard fd == Self.sevDeviceFD else { throw fail(.ebadf) }
        return try driver.issue(c, b)
    }

    /// Issues a firmware command through `vm`'s stored descriptor; a failure becomes -EIO with `error` set.
    private func firmware(_ c: SEVCommand, _ b: CommandBuffer, _ cmd: inout KVMSevCmd, vm: VirtualMachine) throws -> CommandBuffer {
        let (status, out) = try issue(c, b, fd: vm.sevFD)
        guard status == .success else {
            cmd.error = UInt32(status.rawValue)
            throw fail(.eio)
        }
        return out
    }

    /// `copy_from_user` into a fresh spot of the driver's data area, where the firmware will read it;
    /// returns the spot (0 when there is nothing to copy).
    func copyFromUser(_ address: UInt64, _ length: Int) throws -> UInt64 {
        guard length > 0 else { return 0 }
        let spot = try driver.allocate(length)
        try copyFromUser(address, length, into: spot)
        return spot
    }

    /// `copy_from_user` of `length` bytes into kernel memory at `kernel`.
    func copyFromUser(_ address: UInt64, _ length: Int, into kernel: UInt64) throws {
        guard address != 0, address + UInt64(length) <= platform.memory.size else { throw fail(.efault) }
        try platform.hostCopy(from: platform, address, to: kernel, count: length)
    }

    /// `copy_to_user` of `length` bytes of kernel memory at `kernel`.
    func copyToUser(_ address: UInt64, from kernel: UInt64, _ length: Int) throws {
        guard address != 0, address + UInt64(length) <= platform.memory.size else { throw fail(.efault) }
        try platform.hostCopy(from: platform, kernel, to: address, count: length)
    }

    /// The guest physical address behind VMM address `hva`, through the VM's memslots (nil: not guest RAM).
    func guestAddress(_ vm: VirtualMachine, userAddress hva: UInt64) -> UInt64? {
        for slot in vm.memslots { if let gpa = slot.gpa(ofUserAddress: hva) { return gpa } }
        return nil
    }

    /// `sev_pin_memory` of `[hva, hva + length)` and `get_num_contig_pages`: the host physical runs behind
    /// the range, each as long as its pages are consecutive in host memory. Not guest RAM: EFAULT.
    func contiguousRuns(_ vm: VirtualMachine, userAddress hva: UInt64, length: Int) throws -> [(spa: UInt64, length: Int)] {
        var runs: [(spa: UInt64, length: Int)] = []
        var done = 0
        while done < length {
            let address = hva + UInt64(done)
            guard let gpa = guestAddress(vm, userAddress: address), let spa = try? vm.translate(gpa) else { throw fail(.efault) }
            let n = min(length - done, Int(4096 - (address & 0xFFF)))
            if let last = runs.last, last.spa + UInt64(last.length) == spa {
                runs[runs.count - 1].length += n
            } else {
                runs.append((spa, n))
            }
            done += n
        }
        return runs
    }

    private func sevOp(_ vm: VirtualMachine, _ cmd: inout KVMSevCmd) throws -> Int32 {
        guard let id = KVMSevCommand(rawValue: cmd.id) else { throw fail(.einval) }
        if id != .initialize && id != .esInit && !vm.sevActive { throw fail(.enotty) }
        guard cmd.data.count >= id.userStructSize else { throw fail(.efault) }
        var u = CommandBuffer(bytes: cmd.data)
        switch id {
        case .initialize:
            guard vm.isSEV, !vm.sevActive else { throw fail(.einval) }
            sevInit()
            guard platform.firmware.platformState != .uninit else { throw fail(.eio) }
            vm.sevActive = true
        case .esInit, .init2, .launchUpdateVMSA, .sendUpdateVMSA, .receiveUpdateVMSA, .certExport:
            throw fail(.enotty)  // SEV-ES and SNP are not modelled
        case .launchStart, .receiveStart:
            var b = CommandBuffer(for: id == .launchStart ? .launchStart : .receiveStart)
            b.setU32(0, u.u32(0))
            b.setU32(4, u.u32(4))
            let dhLength = Int(u.u32(16)), sessionLength = Int(u.u32(32))
            let dh = try copyFromUser(u.u64(8), dhLength), session = try copyFromUser(u.u64(24), sessionLength)
            if dhLength > 0 {
                b.setU64(8, dh)
                b.setU32(16, UInt32(dhLength))
            }
            if sessionLength > 0 {
                b.setU64(24, session)
                b.setU32(32, UInt32(sessionLength))
            }
            let (startStatus, out) = try issue(id == .launchStart ? .launchStart : .receiveStart, b, fd: cmd.sevFD)
            guard startStatus == .success else {
                cmd.error = UInt32(startStatus.rawValue)
                throw fail(.eio)
            }
            let handle = out.u32(0)
            // sev_bind_asid: ACTIVATE right away; on failure, DECOMMISSION.
            var activate = CommandBuffer(for: .activate)
            activate.setU32(0, handle)
            activate.setU32(4, UInt32(vm.asid))
            let (status, _) = try driver.issue(.activate, activate)
            if status != .success {
                var decommission = CommandBuffer(for: .decommission)
                decommission.setU32(0, handle)
                try driver.issue(.decommission, decommission)
                cmd.error = UInt32(status.rawValue)
                throw fail(.eio)
            }
            vm.handle = handle
            vm.sevFD = cmd.sevFD
            u.setU32(0, handle)
        case .launchUpdateData:
            // sev_pin_memory refuses an empty or wrapping range; alignment is the firmware's to check
            // (INVALID_ADDRESS / INVALID_LENGTH, so -EIO with the status in `error`).
            let address = u.u64(0), length = u.u32(8)
            guard length > 0, !address.addingReportingOverflow(UInt64(length)).overflow else { throw fail(.einval) }
            // Pin, flush, then one firmware command per physically contiguous run of the pinned pages.
            let runs = try contiguousRuns(vm, userAddress: address, length: Int(length))
            for run in runs { platform.clflush(run.spa, count: run.length, keyID: 0) }  // sev_clflush_pages
            for run in runs {
                var b = CommandBuffer(for: .launchUpdateData)
                b.setU32(0, vm.handle)
                b.setU64(8, run.spa)
                b.setU32(16, UInt32(run.length))
                _ = try firmware(.launchUpdateData, b, &cmd, vm: vm)
            }
        case .launchMeasure, .getAttestationReport:
            let isMeasure = id == .launchMeasure
            let (uaddr, lengthOffset): (UInt64, Int) = isMeasure ? (u.u64(0), 8) : (u.u64(16), 24)
            let length = u.u32(lengthOffset)
            guard length <= 0x4000 else { throw fail(.einval) }
            var b = CommandBuffer(for: isMeasure ? .launchMeasure : .attestation)
            b.setU32(0, vm.handle)
            if !isMeasure { b.set(16, u.slice(0, 16)) }
            let dataLengthOffset = isMeasure ? 16 : 32
            var buffer: UInt64 = 0
            if length > 0 {
                buffer = try driver.reserve(Int(length))
                b.setU64(8, buffer)
                b.setU32(dataLengthOffset, length)
            }
            let (status, out) = try issue(isMeasure ? .launchMeasure : .attestation, b, fd: vm.sevFD)
            u.setU32(lengthOffset, out.u32(dataLengthOffset))
            cmd.data = u.bytes
            guard status == .success else {
                cmd.error = UInt32(status.rawValue)
                throw fail(.eio)
            }
            try copyToUser(uaddr, from: buffer, Int(out.u32(dataLengthOffset)))
        case .launchSecret, .receiveUpdateData:
            let guestHVA = u.u64(16), guestLength = u.u32(24)
            let runs = try contiguousRuns(vm, userAddress: guestHVA, length: max(1, Int(guestLength)))
            if id == .receiveUpdateData && (guestHVA & 0xFFF) + UInt64(guestLength) > 4096 { throw fail(.einval) }
            // LAUNCH_SECRET: "The secret must be copied into contiguous memory region".
            guard runs.count == 1 else { throw fail(.einval) }
            let guestSPA = runs[0].spa
            let headerLength = Int(u.u32(8)), transLength = Int(u.u32(40))
            let header = try copyFromUser(u.u64(0), headerLength), trans = try copyFromUser(u.u64(32), transLength)
            platform.clflush(guestSPA, count: Int(guestLength), keyID: 0)  // sev_clflush_pages
            var b = CommandBuffer(for: id == .launchSecret ? .launchSecret : .receiveUpdateData)
            b.setU32(0, vm.handle)
            b.setU64(8, header)
            b.setU32(16, UInt32(headerLength))
            b.setU64(24, guestSPA | platform.config.cbitMask)  // "requires C-bit to be always set"
            b.setU32(32, guestLength)
            b.setU64(40, trans)
            b.setU32(48, UInt32(transLength))
            _ = try firmware(id == .launchSecret ? .launchSecret : .receiveUpdateData, b, &cmd, vm: vm)
        case .launchFinish, .sendFinish, .sendCancel, .receiveFinish:
            let c: SEVCommand = switch id {
            case .launchFinish: .launchFinish
            case .sendFinish: .sendFinish
            case .sendCancel: .sendCancel
            default: .receiveFinish
            }
            var b = CommandBuffer(for: c)
            b.setU32(0, vm.handle)
            _ = try firmware(c, b, &cmd, vm: vm)
        case .guestStatus:
            var b = CommandBuffer(for: .guestStatus)
            b.setU32(0, vm.handle)
            let out = try firmware(.guestStatus, b, &cmd, vm: vm)
            u.setU32(0, vm.handle)
            u.setU32(4, out.u32(4))
            u.setU32(8, UInt32(out.u8(12)))
        case .dbgDecrypt, .dbgEncrypt:
            try debug(vm, u, encrypt: id == .dbgEncrypt, &cmd)
        case .sendStart:
            var b = CommandBuffer(for: .sendStart)
            b.setU32(0, vm.handle)
            for (offset, lengthOffset) in [(8, 16), (24, 32), (40, 48)] {
                let length = Int(u.u32(lengthOffset))
                if length > 0 {
                    b.setU64(offset, try copyFromUser(u.u64(offset), length))
                    b.setU32(lengthOffset, UInt32(length))
                }
            }
            let sessionLength = u.u32(64)
            if sessionLength > 0 {
                b.setU64(56, try driver.reserve(Int(sessionLength)))
                b.setU32(64, sessionLength)
            }
            let (status, out) = try issue(.sendStart, b, fd: vm.sevFD)
            u.setU32(0, out.u32(4))
            u.setU32(64, out.u32(64))
            cmd.data = u.bytes
            guard status == .success else {
                cmd.error = UInt32(status.rawValue)
                throw fail(.eio)
            }
            try copyToUser(u.u64(56), from: out.u64(56), Int(out.u32(64)))
        case .sendUpdateData:
            let guestHVA = u.u64(16), guestLength = u.u32(24)
            let guestSPA = try contiguousRuns(vm, userAddress: guestHVA, length: 1)[0].spa
            guard (guestHVA & 0xFFF) + UInt64(guestLength) <= 4096 else { throw fail(.einval) }
            var b = CommandBuffer(for: .sendUpdateData)
            b.setU32(0, vm.handle)
            b.setU64(8, try driver.reserve(TransportPacket.headerSize))
            b.setU32(16, UInt32(TransportPacket.headerSize))
            b.setU64(24, guestSPA | platform.config.cbitMask)
            b.setU32(32, guestLength)
            b.setU64(40, try driver.reserve(Int(guestLength)))
            b.setU32(48, guestLength)
            let out = try firmware(.sendUpdateData, b, &cmd, vm: vm)
            try copyToUser(u.u64(0), from: out.u64(8), TransportPacket.headerSize)
            try copyToUser(u.u64(32), from: out.u64(40), Int(guestLength))
        }
        cmd.data = u.bytes
        return 0
    }

    /// KVM's debug path (`sev_dbg_crypt`): page by page of the source, since each page is pinned on its
    /// own; the guest side of each piece must be guest RAM.
    private func debug(_ vm: VirtualMachine, _ u: CommandBuffer, encrypt: Bool, _ cmd: inout KVMSevCmd) throws {
        let src = u.u64(0), dst = u.u64(8), length = Int(u.u32(16))
        guard length > 0, dst != 0, src.addingReportingOverflow(UInt64(length)).overflow == false else { throw fail(.einval) }
        let guestHVA = encrypt ? dst : src
        _ = try contiguousRuns(vm, userAddress: guestHVA, length: length)
        var done = 0
        while done < length {
            let n = min(length - done, Int(4096 - ((src + UInt64(done)) & 0xFFF)))
            let guestSPA = try contiguousRuns(vm, userAddress: guestHVA + UInt64(done), length: 1)[0].spa
            let user = (encrypt ? src : dst) + UInt64(done)
            // sev_clflush_pages on both pinned pages before the firmware reads or changes them.
            platform.clflush(guestSPA & ~0xFFF, count: 4096, keyID: 0)
            platform.clflush(user & ~0xFFF, count: 4096, keyID: 0)
            try debugPiece(vm, guestSPA: guestSPA, user: user, length: n, encrypt: encrypt, &cmd)
            done += n
        }
    }

    /// One piece of a debug request (`__sev_dbg_decrypt_user` / `__sev_dbg_encrypt_user`). Addresses go to
    /// the firmware as `__sme_page_pa` makes them: with the C-bit only when the host runs with SME. When
    /// the guest address, the user buffer and the length are all 16-byte aligned the firmware works on the
    /// pinned user page itself; otherwise KVM widens the piece to whole blocks and bounces it through a
    /// kernel page, and to encrypt first decrypts the blocks it only partly writes (read-modify-write).
    private func debugPiece(_ vm: VirtualMachine, guestSPA: UInt64, user: UInt64, length: Int, encrypt: Bool,
                            _ cmd: inout KVMSevCmd) throws {
        let sme = platform.config.sme ? platform.config.cbitMask : 0
        let offset = Int(guestSPA & 15)
        let aligned = guestSPA - UInt64(offset)
        let size = (offset + length + 15) & ~15
        func command(_ c: SEVCommand, from src: UInt64, to dst: UInt64, _ length: Int) -> CommandBuffer {
            var b = CommandBuffer(for: c)
            b.setU32(0, vm.handle)
            b.setU64(8, src | sme)
            b.setU64(16, dst | sme)
            b.setU32(24, UInt32(length))
            return b
        }
        if !encrypt {
            if offset == 0 && user % 16 == 0 && length % 16 == 0 {
                _ = try firmware(.dbgDecrypt, command(.dbgDecrypt, from: guestSPA, to: user, length), &cmd, vm: vm)
                return
            }
            let bounce = try driver.reserve(size)
            _ = try firmware(.dbgDecrypt, command(.dbgDecrypt, from: aligned, to: bounce, size), &cmd, vm: vm)
            try copyToUser(user, from: bounce + UInt64(offset), length)
            return
        }
        if offset == 0 && length % 16 == 0 {
            // The source is used in place when aligned, else copied into a kernel page first.
            var source = user
            if user % 16 != 0 {
                source = try driver.reserve(length)
                try copyFromUser(user, length, into: source)
            }
            _ = try firmware(.dbgEncrypt, command(.dbgEncrypt, from: source, to: guestSPA, length), &cmd, vm: vm)
            return
        }
        let bounce = try driver.reserve(size)
        _ = try firmware(.dbgDecrypt, command(.dbgDecrypt, from: aligned, to: bounce, size), &cmd, vm: vm)  // the blocks' other bytes
        try copyFromUser(user, length, into: bounce + UInt64(offset))
        _ = try firmware(.dbgEncrypt, command(.dbgEncrypt, from: bounce, to: aligned, size), &cmd, vm: vm)
    }
}
