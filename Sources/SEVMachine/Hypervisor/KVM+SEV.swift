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
    private func issue<Data: BufferLayout>(_ c: SEVCommand, _ b: Data, fd: Int32) throws -> (SEVStatus, Data) {
        guard fd == Self.sevDeviceFD else { throw fail(.ebadf) }
        return try driver.issue(c, b)
    }

    /// Issues a firmware command through `vm`'s stored descriptor; a failure becomes -EIO with `error` set.
    @discardableResult
    private func firmware<Data: BufferLayout>(_ c: SEVCommand, _ b: Data, _ cmd: inout KVMSevCmd, vm: VirtualMachine) throws -> Data {
        let (status, out) = try issue(c, b, fd: vm.sevFD)
        try succeeded(status, &cmd)
        return out
    }

    /// A firmware refusal is -EIO with the firmware's status in `error`.
    private func succeeded(_ status: SEVStatus, _ cmd: inout KVMSevCmd) throws {
        guard status == .success else {
            cmd.error = UInt32(status.rawValue)
            throw fail(.eio)
        }
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
        let user = CommandBuffer(bytes: cmd.data)
        /// Copies a changed user structure back (`copy_to_user` of `params`).
        func copyBack<U: BufferLayout>(_ u: U) {
            var b = CommandBuffer(bytes: cmd.data)
            u.store(into: &b)
            cmd.data = b.bytes
        }
        switch id {
        case .initialize:
            guard vm.isSEV, !vm.sevActive else { throw fail(.einval) }
            sevInit()
            guard platform.firmware.platformState != .uninit else { throw fail(.eio) }
            vm.sevActive = true
        case .esInit, .init2, .launchUpdateVMSA, .sendUpdateVMSA, .receiveUpdateVMSA, .certExport:
            throw fail(.enotty)  // SEV-ES and SNP are not modelled
        case .launchStart, .receiveStart:
            var u = KVMSevData.LaunchStart(user)
            var b = SEVData.LaunchStart()
            b.handle = u.handle
            b.policy = u.policy
            let dh = try copyFromUser(u.certAddress, Int(u.certLength))
            let session = try copyFromUser(u.sessionAddress, Int(u.sessionLength))
            if u.certLength > 0 { (b.certAddress, b.certLength) = (dh, u.certLength) }
            if u.sessionLength > 0 { (b.sessionAddress, b.sessionLength) = (session, u.sessionLength) }
            let (startStatus, out) = try issue(id == .launchStart ? .launchStart : .receiveStart, b, fd: cmd.sevFD)
            try succeeded(startStatus, &cmd)
            // sev_bind_asid: ACTIVATE right away; on failure, DECOMMISSION.
            var activate = SEVData.Activate()
            activate.handle = out.handle
            activate.asid = UInt32(vm.asid)
            let (status, _) = try driver.issue(.activate, activate)
            if status != .success { try driver.issue(.decommission, SEVData.Handle(out.handle)) }
            try succeeded(status, &cmd)
            vm.handle = out.handle
            vm.sevFD = cmd.sevFD
            u.handle = out.handle
            copyBack(u)
        case .launchUpdateData:
            // sev_pin_memory refuses an empty or wrapping range; alignment is the firmware's to check
            // (INVALID_ADDRESS / INVALID_LENGTH, so -EIO with the status in `error`).
            let u = KVMSevData.Region(user)
            guard u.length > 0, !u.address.addingReportingOverflow(UInt64(u.length)).overflow else { throw fail(.einval) }
            // Pin, flush, then one firmware command per physically contiguous run of the pinned pages.
            let runs = try contiguousRuns(vm, userAddress: u.address, length: Int(u.length))
            for run in runs { platform.clflush(run.spa, count: run.length, keyID: 0) }  // sev_clflush_pages
            for run in runs {
                var b = SEVData.LaunchUpdateData()
                b.handle = vm.handle
                b.address = run.spa
                b.length = UInt32(run.length)
                try firmware(.launchUpdateData, b, &cmd, vm: vm)
            }
        case .launchMeasure:
            var u = KVMSevData.Region(user)
            guard u.length <= 0x4000 else { throw fail(.einval) }
            var b = SEVData.LaunchUpdateData()
            b.handle = vm.handle
            if u.length > 0 { (b.address, b.length) = (try driver.reserve(Int(u.length)), u.length) }
            let (status, out) = try issue(.launchMeasure, b, fd: vm.sevFD)
            u.length = out.length
            copyBack(u)  // also when the firmware refused: the length it needs goes back to the caller
            try succeeded(status, &cmd)
            try copyToUser(u.address, from: b.address, Int(out.length))
        case .getAttestationReport:
            var u = KVMSevData.AttestationReport(user)
            guard u.length <= 0x4000 else { throw fail(.einval) }
            var b = SEVData.Attestation()
            b.handle = vm.handle
            b.mnonce = u.mnonce
            if u.length > 0 { (b.address, b.length) = (try driver.reserve(Int(u.length)), u.length) }
            let (status, out) = try issue(.attestation, b, fd: vm.sevFD)
            u.length = out.length
            copyBack(u)
            try succeeded(status, &cmd)
            try copyToUser(u.address, from: b.address, Int(out.length))
        case .launchSecret, .receiveUpdateData:
            let u = KVMSevData.Packet(user)
            let runs = try contiguousRuns(vm, userAddress: u.guestAddress, length: max(1, Int(u.guestLength)))
            if id == .receiveUpdateData && (u.guestAddress & 0xFFF) + UInt64(u.guestLength) > 4096 { throw fail(.einval) }
            // LAUNCH_SECRET: "The secret must be copied into contiguous memory region".
            guard runs.count == 1 else { throw fail(.einval) }
            let guestSPA = runs[0].spa
            var b = SEVData.LaunchSecret()
            b.handle = vm.handle
            b.headerAddress = try copyFromUser(u.headerAddress, Int(u.headerLength))
            b.headerLength = u.headerLength
            b.transAddress = try copyFromUser(u.transAddress, Int(u.transLength))
            b.transLength = u.transLength
            platform.clflush(guestSPA, count: Int(u.guestLength), keyID: 0)  // sev_clflush_pages
            b.guestAddress = guestSPA | platform.config.cbitMask  // "requires C-bit to be always set"
            b.guestLength = u.guestLength
            try firmware(id == .launchSecret ? .launchSecret : .receiveUpdateData, b, &cmd, vm: vm)
        case .launchFinish, .sendFinish, .sendCancel, .receiveFinish:
            let c: SEVCommand = switch id {
            case .launchFinish: .launchFinish
            case .sendFinish: .sendFinish
            case .sendCancel: .sendCancel
            default: .receiveFinish
            }
            try firmware(c, SEVData.Handle(vm.handle), &cmd, vm: vm)
        case .guestStatus:
            var b = SEVData.GuestStatus()
            b.handle = vm.handle
            let out = try firmware(.guestStatus, b, &cmd, vm: vm)
            var u = KVMSevData.GuestStatus()
            u.handle = vm.handle
            u.policy = out.policy
            u.state = UInt32(out.state)
            copyBack(u)
        case .dbgDecrypt, .dbgEncrypt:
            try debug(vm, KVMSevData.Debug(user), encrypt: id == .dbgEncrypt, &cmd)
        case .sendStart:
            var u = KVMSevData.SendStart(user)
            var b = SEVData.SendStart()
            b.handle = vm.handle
            if u.pdhLength > 0 { (b.pdhAddress, b.pdhLength) = (try copyFromUser(u.pdhAddress, Int(u.pdhLength)), u.pdhLength) }
            if u.platformCertsLength > 0 {
                b.platformCertsAddress = try copyFromUser(u.platformCertsAddress, Int(u.platformCertsLength))
                b.platformCertsLength = u.platformCertsLength
            }
            if u.amdCertsLength > 0 {
                b.amdCertsAddress = try copyFromUser(u.amdCertsAddress, Int(u.amdCertsLength))
                b.amdCertsLength = u.amdCertsLength
            }
            if u.sessionLength > 0 {
                (b.sessionAddress, b.sessionLength) = (try driver.reserve(Int(u.sessionLength)), u.sessionLength)
            }
            let (status, out) = try issue(.sendStart, b, fd: vm.sevFD)
            u.policy = out.policy
            u.sessionLength = out.sessionLength
            copyBack(u)
            try succeeded(status, &cmd)
            try copyToUser(u.sessionAddress, from: out.sessionAddress, Int(out.sessionLength))
        case .sendUpdateData:
            let u = KVMSevData.Packet(user)
            let guestSPA = try contiguousRuns(vm, userAddress: u.guestAddress, length: 1)[0].spa
            guard (u.guestAddress & 0xFFF) + UInt64(u.guestLength) <= 4096 else { throw fail(.einval) }
            var b = SEVData.LaunchSecret()
            b.handle = vm.handle
            b.headerAddress = try driver.reserve(TransportPacket.headerSize)
            b.headerLength = UInt32(TransportPacket.headerSize)
            b.guestAddress = guestSPA | platform.config.cbitMask
            b.guestLength = u.guestLength
            b.transAddress = try driver.reserve(Int(u.guestLength))
            b.transLength = u.guestLength
            let out = try firmware(.sendUpdateData, b, &cmd, vm: vm)
            try copyToUser(u.headerAddress, from: out.headerAddress, TransportPacket.headerSize)
            try copyToUser(u.transAddress, from: out.transAddress, Int(u.guestLength))
        }
        return 0
    }

    /// KVM's debug path (`sev_dbg_crypt`): page by page of the source, since each page is pinned on its
    /// own; the guest side of each piece must be guest RAM.
    private func debug(_ vm: VirtualMachine, _ u: KVMSevData.Debug, encrypt: Bool, _ cmd: inout KVMSevCmd) throws {
        let src = u.source, dst = u.destination, length = Int(u.length)
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
        func command(_ c: SEVCommand, from src: UInt64, to dst: UInt64, _ length: Int) -> SEVData.Debug {
            var b = SEVData.Debug()
            b.handle = vm.handle
            b.source = src | sme
            b.destination = dst | sme
            b.length = UInt32(length)
            return b
        }
        if !encrypt {
            if offset == 0 && user % 16 == 0 && length % 16 == 0 {
                try firmware(.dbgDecrypt, command(.dbgDecrypt, from: guestSPA, to: user, length), &cmd, vm: vm)
                return
            }
            let bounce = try driver.reserve(size)
            try firmware(.dbgDecrypt, command(.dbgDecrypt, from: aligned, to: bounce, size), &cmd, vm: vm)
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
            try firmware(.dbgEncrypt, command(.dbgEncrypt, from: source, to: guestSPA, length), &cmd, vm: vm)
            return
        }
        let bounce = try driver.reserve(size)
        try firmware(.dbgDecrypt, command(.dbgDecrypt, from: aligned, to: bounce, size), &cmd, vm: vm)  // the blocks' other bytes
        try copyFromUser(user, length, into: bounce + UInt64(offset))
        try firmware(.dbgEncrypt, command(.dbgEncrypt, from: bounce, to: aligned, size), &cmd, vm: vm)
    }
}
