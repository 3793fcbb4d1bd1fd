import Crypto
import TraceFormat

/// The VMM's side of SEV, as QEMU implements it (`target/i386/sev.c`): it keeps its buffers in host
/// memory, opens `/dev/sev`, and drives KVM's `KVM_MEMORY_ENCRYPT_OP` to launch, measure, inject
/// secrets into, debug, attest and migrate guests.
public final class VMM {
    unowned let platform: Platform
    /// The VMM's buffers live here in host memory (its user space, identity-mapped for simplicity).
    static let userBase: UInt64 = 4 << 20
    static let userSize: UInt64 = 8 << 20
    private var userNext: UInt64 = 0

    init(platform: Platform) { self.platform = platform }

    var kvm: KVM { platform.kvm }

    /// A failed ioctl, as QEMU reports it.
    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public var command: KVMSevCommand
        public var errno: Int32
        public var firmwareError: UInt32

        public var description: String {
            let fw = firmwareError == 0 ? "" : " (firmware: \(SEVStatus.name(of: UInt16(truncatingIfNeeded: firmwareError))))"
            return "KVM_SEV \(command) failed: errno \(-errno)\(fw)"
        }
    }

    // MARK: - User buffers

    /// Places `bytes` in a fresh user buffer (VMM writes); returns its address.
    func user(_ bytes: [UInt8]) throws(MachineError) -> UInt64 {
        let size = UInt64(max(bytes.count, 1) + 31) & ~31
        guard userNext + size <= Self.userSize else { throw .invalid("VMM buffers exhausted") }
        let address = Self.userBase + userNext
        userNext += size
        try kvm.driver.hostWrite(address, bytes)
        return address
    }

    /// Frees every user buffer.
    func releaseBuffers() { userNext = 0 }

    func readUser(_ address: UInt64, _ count: Int) throws(MachineError) -> [UInt8] {
        try kvm.driver.fetch(address, count: count)
    }

    /// Issues one ioctl; throws ``Failure`` when KVM refuses.
    @discardableResult
    func ioctl(_ vm: VirtualMachine, _ id: KVMSevCommand, _ data: CommandBuffer = CommandBuffer(size: 0)) throws -> KVMSevCmd {
        var cmd = KVMSevCmd(id: id.rawValue, data: data.bytes, sevFD: KVM.sevDeviceFD)
        let ret = kvm.memoryEncryptOp(vm, &cmd)
        guard ret == 0 else { throw Failure(command: id, errno: ret, firmwareError: cmd.error) }
        return cmd
    }

    /// Issues one sub-command with its user structure; returns the structure as KVM left it.
    @discardableResult
    func ioctl<U: BufferLayout>(_ vm: VirtualMachine, _ id: KVMSevCommand, _ data: U) throws -> U {
        U(CommandBuffer(bytes: try ioctl(vm, id, data.buffer).data))
    }

    /// The length query QEMU makes before LAUNCH_MEASURE and GET_ATTESTATION_REPORT: the sub-command with
    /// length 0, which the firmware refuses with INVALID_LENGTH after writing the length it needs into the
    /// structure's `length` (KVM copies the structure back even then).
    func queryLength<U: BufferLayout>(_ vm: VirtualMachine, _ id: KVMSevCommand, _ data: U,
                                      length: KeyPath<U, UInt32>) throws -> Int {
        var cmd = KVMSevCmd(id: id.rawValue, data: data.buffer.bytes, sevFD: KVM.sevDeviceFD)
        let ret = kvm.memoryEncryptOp(vm, &cmd)
        let needed = U(CommandBuffer(bytes: cmd.data))[keyPath: length]
        guard ret == 0 || cmd.error == UInt32(SEVStatus.invalidLength.rawValue), needed > 0 else {
            throw Failure(command: id, errno: ret, firmwareError: cmd.error)
        }
        return Int(needed)
    }

    /// Issues one `KVM_MEMORY_ENCRYPT_OP` the way a test harness does: sub-command `id` (any number) through
    /// descriptor `fd`, its user struct zero-filled except for what `gpa` (a guest address, passed as the
    /// VMM's address of it), `length` and `policy` give the sub-commands that take them; output buffers
    /// are the VMM's. The image is in guest memory before LAUNCH_UPDATE_DATA, as QEMU puts it there.
    /// Returns KVM's answer (0 or a negated errno), the firmware status it reported, and what the
    /// sub-command gave back in the VMM's buffer (LAUNCH_MEASURE, GET_ATTESTATION_REPORT, DBG_DECRYPT).
    public func rawIoctl(_ vm: VirtualMachine, id: UInt32, fd: Int32 = KVM.sevDeviceFD, gpa: UInt64? = nil,
                         length: UInt32? = nil, policy: UInt32? = nil)
        throws(MachineError) -> (result: Int32, firmwareError: UInt32, output: [UInt8]) {
        defer { releaseBuffers() }
        let command = KVMSevCommand(rawValue: id)
        var b = CommandBuffer(size: command?.userStructSize ?? 0)
        /// A zeroed VMM buffer of `n` bytes (none past KVM's own 16 KiB cap: KVM refuses those first).
        func buffer(_ n: UInt32) throws(MachineError) -> UInt64 { n == 0 || n > 0x4000 ? 0 : try user([UInt8](repeating: 0, count: Int(n))) }
        /// Where the output lands, from the structure KVM copied back: the buffer and the length KVM left.
        var output: (CommandBuffer) -> (address: UInt64, length: UInt32) = { _ in (0, 0) }
        switch command {
        case .launchStart:
            var u = KVMSevData.LaunchStart()
            u.policy = policy ?? vm.policy
            u.store(into: &b)
        case .launchUpdateData, .launchMeasure:
            var u = KVMSevData.Region()
            if command == .launchUpdateData {
                try kvm.loadImage(vm)
                u.address = vm.userAddress(of: gpa ?? 0)
            } else {
                u.address = try buffer(length ?? 0)
                output = { let r = KVMSevData.Region($0); return (r.address, r.length) }
            }
            u.length = length ?? 0
            u.store(into: &b)
        case .getAttestationReport:
            var u = KVMSevData.AttestationReport()
            u.address = try buffer(length ?? 0)
            u.length = length ?? 0
            u.store(into: &b)
            output = { let r = KVMSevData.AttestationReport($0); return (r.address, r.length) }
        case .dbgDecrypt, .dbgEncrypt:
            let guest = vm.userAddress(of: gpa ?? 0), own = try buffer(length ?? 0)
            var u = KVMSevData.Debug()
            (u.source, u.destination) = command == .dbgDecrypt ? (guest, own) : (own, guest)
            u.length = length ?? 0
            u.store(into: &b)
            if command == .dbgDecrypt { output = { let r = KVMSevData.Debug($0); return (r.destination, r.length) } }
        default:
            break
        }
        var cmd = KVMSevCmd(id: id, data: b.bytes, sevFD: fd)
        let ret = kvm.memoryEncryptOp(vm, &cmd)
        var bytes: [UInt8] = []
        if ret == 0 {
            let out = output(CommandBuffer(bytes: cmd.data))
            let count = min(Int(out.length), Int(length ?? 0))
            if out.address != 0 && count > 0 { bytes = try readUser(out.address, count) }
        }
        return (ret, ret == 0 ? 0 : cmd.error, bytes)
    }

    // MARK: - Platform certificates

    /// PDH_CERT_EXPORT through `/dev/sev`: the platform's PDH and its chain (PEK, OCA, CEK).
    public func exportPDH() throws -> (pdh: SEVCertificate, chain: [UInt8]) {
        defer { releaseBuffers() }
        kvm.sevInit()
        let driver = kvm.driver
        var b = SEVData.PDHCertExport()
        (b.pdhAddress, b.pdhLength) = (try driver.reserve(SEVCertificate.size), UInt32(SEVCertificate.size))
        (b.chainAddress, b.chainLength) = (try driver.reserve(3 * SEVCertificate.size), UInt32(3 * SEVCertificate.size))
        let (status, out) = try driver.issue(.pdhCertExport, b)
        guard status == .success else { throw Failure(command: .certExport, errno: -Errno.eio.rawValue, firmwareError: UInt32(status.rawValue)) }
        let pdh = try driver.fetch(out.pdhAddress, count: SEVCertificate.size)
        let chain = try driver.fetch(out.chainAddress, count: 3 * SEVCertificate.size)
        return (SEVCertificate(bytes: pdh)!, chain)
    }

    // MARK: - Launch

    /// The image a VM is launched with, in LAUNCH_UPDATE_DATA order: what the guest owner expects.
    public static func image(of vm: VirtualMachine) -> [UInt8] { vm.image.flatMap(\.bytes) }

    /// Launches `vm` as QEMU does: KVM_SEV_INIT, KVM_MEMORY_ENCRYPT_REG_REGION over its memory (unless
    /// `pin` is false: a VMM that forgets to), LAUNCH_START (with the owner's DH certificate and session
    /// when there is an owner), LAUNCH_UPDATE_DATA for each image region, LAUNCH_MEASURE (a length query,
    /// then the measurement, which the owner checks), LAUNCH_FINISH.
    ///
    /// A malicious hypervisor may load the image's blocks elsewhere (`placement`: a guest physical
    /// address per block, in declaration order) and start the guest at another `entry`: the blocks are
    /// measured in the same order, so the measurement the owner checks is the same.
    ///
    /// - Returns: the 48 bytes LAUNCH_MEASURE returned.
    @discardableResult
    public func launch(_ vm: VirtualMachine, owner: inout GuestOwner?, finish: Bool = true,
                       sharingKeyOf other: VirtualMachine? = nil, pin: Bool = true,
                       placement: [UInt64]? = nil, entry: UInt64? = nil) throws -> [UInt8] {
        guard vm.isSEV else { throw MachineError.invalid("\(vm.name) is not an SEV guest") }
        defer { releaseBuffers() }
        // What the owner expects: the image as declared, and its entry point.
        let expected = vm.image.map { OwnerCheck.Region(gpa: $0.gpa, length: UInt64($0.bytes.count)) }
        let expectedEntry = vm.entry
        if let placement {
            guard placement.count == vm.image.count else {
                throw MachineError.invalid("\(vm.name) has \(vm.image.count) image blocks; place= gives \(placement.count) addresses")
            }
            for (i, gpa) in placement.enumerated() {
                let length = UInt64(vm.image[i].bytes.count)
                guard gpa % 16 == 0, gpa <= vm.memoryBytes, length <= vm.memoryBytes - gpa else {
                    throw MachineError.invalid("\(vm.name): block \(i + 1) cannot be placed at \(hex(gpa)) (16-aligned, inside its memory)")
                }
            }
            vm.image = zip(placement, vm.image).map { ($0, $1.bytes) }
        }
        if let entry { vm.entry = entry }
        try ioctl(vm, .initialize)
        if pin { try kvm.registerRegion(vm) }  // QEMU registers guest RAM right after KVM_SEV_INIT
        try kvm.loadImage(vm)
        var start = KVMSevData.LaunchStart()
        start.policy = vm.policy
        if let other {
            // LAUNCH_START naming an existing guest's handle: the new guest gets that guest's key.
            try kvm.shareASID(vm, with: other)
            start.handle = other.handle
        }
        if owner != nil {
            let (pdh, chain) = try exportPDH()
            try owner!.startSession(pdh: pdh, chain: chain, rng: &platform.machine.rng)
            let cert = owner!.dhCertificate.bytes, session = owner!.session!.blob
            (start.certAddress, start.certLength) = (try user(cert), UInt32(cert.count))
            (start.sessionAddress, start.sessionLength) = (try user(session), UInt32(session.count))
        }
        try ioctl(vm, .launchStart, start)
        for region in vm.image {
            var update = KVMSevData.Region()
            (update.address, update.length) = (vm.userAddress(of: region.gpa), UInt32(region.bytes.count))
            try ioctl(vm, .launchUpdateData, update)
        }
        var measure = KVMSevData.Region()
        let length = try queryLength(vm, .launchMeasure, measure, length: \.length)
        let buffer = try user([UInt8](repeating: 0, count: length))
        (measure.address, measure.length) = (buffer, UInt32(length))
        try ioctl(vm, .launchMeasure, measure)
        let measurement = try readUser(buffer, length)
        if owner != nil {
            let fw = platform.firmware
            var accepted = false
            defer {
                platform.emit(.ownerCheck(OwnerCheck(vm: vm.id, accepted: accepted, entry: expectedEntry, regions: expected)),
                              cost: Platform.Cost.control)
            }
            try owner!.verify(measurement: measurement, image: Self.image(of: vm), apiMajor: fw.apiMajor,
                              apiMinor: fw.apiMinor, build: fw.build)
            accepted = true
        }
        if finish { try ioctl(vm, .launchFinish) }
        return measurement
    }

    /// LAUNCH_SECRET with the owner's packet, then LAUNCH_FINISH: the secret lands at `gpa` under the VEK.
    public func injectSecret(_ vm: VirtualMachine, owner: GuestOwner, gpa: UInt64, secret: [UInt8]) throws {
        defer { releaseBuffers() }
        guard let packet = owner.secretPacket(secret, rng: &platform.machine.rng) else {
            throw MachineError.invalid("\(owner.name) has no verified launch of \(vm.name) to send a secret to")
        }
        var b = KVMSevData.Packet()
        (b.headerAddress, b.headerLength) = (try user(packet.header), UInt32(packet.header.count))
        (b.guestAddress, b.guestLength) = (vm.userAddress(of: gpa), UInt32(secret.count))
        (b.transAddress, b.transLength) = (try user(packet.trans), UInt32(packet.trans.count))
        try ioctl(vm, .launchSecret, b)
        try ioctl(vm, .launchFinish)
    }

    // MARK: - Debug and attestation

    /// KVM_SEV_DBG_DECRYPT of `length` bytes at `gpa` into a VMM buffer; returns them.
    public func debugDecrypt(_ vm: VirtualMachine, gpa: UInt64, length: Int) throws -> [UInt8] {
        defer { releaseBuffers() }
        let dst = try user([UInt8](repeating: 0, count: length))
        var b = KVMSevData.Debug()
        (b.source, b.destination, b.length) = (vm.userAddress(of: gpa), dst, UInt32(length))
        try ioctl(vm, .dbgDecrypt, b)
        return try readUser(dst, length)
    }

    /// KVM_SEV_DBG_ENCRYPT of `bytes` into the guest at `gpa`.
    public func debugEncrypt(_ vm: VirtualMachine, gpa: UInt64, bytes: [UInt8]) throws {
        defer { releaseBuffers() }
        var b = KVMSevData.Debug()
        (b.source, b.destination, b.length) = (try user(bytes), vm.userAddress(of: gpa), UInt32(bytes.count))
        try ioctl(vm, .dbgEncrypt, b)
    }

    /// KVM_SEV_GET_ATTESTATION_REPORT with the owner's nonce, after QEMU's length query; returns the report.
    public func attestationReport(_ vm: VirtualMachine, mnonce: [UInt8]) throws -> [UInt8] {
        defer { releaseBuffers() }
        var b = KVMSevData.AttestationReport()
        b.mnonce = mnonce
        let length = try queryLength(vm, .getAttestationReport, b, length: \.length)
        let buffer = try user([UInt8](repeating: 0, count: length))
        (b.address, b.length) = (buffer, UInt32(length))
        try ioctl(vm, .getAttestationReport, b)
        return try readUser(buffer, length)
    }

    /// KVM_SEV_GUEST_STATUS: (policy, state).
    public func guestStatus(_ vm: VirtualMachine) throws -> (policy: UInt32, state: UInt32) {
        let out = try ioctl(vm, .guestStatus, KVMSevData.GuestStatus())
        return (out.policy, out.state)
    }

    // MARK: - Migration

    /// Sends `vm` to `target` (another platform of the same machine) as QEMU's SEV migration does, and
    /// returns the VM created there, ready to run: SEND_START against the target's PDH; every populated
    /// private page through SEND_UPDATE_DATA and RECEIVE_UPDATE_DATA; shared pages copied as they are;
    /// SEND_FINISH and RECEIVE_FINISH (left to the caller when `finish` is false: the source stays in
    /// SUPDATE, the target in RUPDATE); the vCPU state (in the clear for SEV without ES) copied over.
    public func migrate(_ vm: VirtualMachine, to target: Platform, as name: String, finish: Bool = true) throws -> VirtualMachine {
        defer { releaseBuffers() }
        let (targetPDH, targetChain) = try target.vmm.exportPDH()
        let (ownPDH, _) = try exportPDH()
        var start = KVMSevData.SendStart()
        (start.pdhAddress, start.pdhLength) = (try user(targetPDH.bytes), UInt32(SEVCertificate.size))
        (start.platformCertsAddress, start.platformCertsLength) = (try user(targetChain), UInt32(targetChain.count))
        let sessionBuffer = try user([UInt8](repeating: 0, count: LaunchSession.size))
        (start.sessionAddress, start.sessionLength) = (sessionBuffer, UInt32(LaunchSession.size))
        let sent = try ioctl(vm, .sendStart, start)
        let session = try readUser(sessionBuffer, LaunchSession.size)

        let dst = try target.kvm.createVM(name: name, memoryBytes: vm.memoryBytes, policy: sent.policy, sev: true,
                                          vcpus: vm.vcpus.count)
        let remote = target.vmm
        defer { remote.releaseBuffers() }
        try remote.ioctl(dst, .initialize)
        var receive = KVMSevData.LaunchStart()
        receive.policy = vm.policy
        (receive.certAddress, receive.certLength) = (try remote.user(ownPDH.bytes), UInt32(SEVCertificate.size))
        (receive.sessionAddress, receive.sessionLength) = (try remote.user(session), UInt32(session.count))
        try remote.ioctl(dst, .receiveStart, receive)

        let header = try user([UInt8](repeating: 0, count: TransportPacket.headerSize))
        let trans = try user([UInt8](repeating: 0, count: 4096))
        let remoteHeader = try remote.user([UInt8](repeating: 0, count: TransportPacket.headerSize))
        let remoteTrans = try remote.user([UInt8](repeating: 0, count: 4096))
        for page in 0..<(vm.memoryBytes >> 12) {
            let gpa = page << 12
            let spa = try vm.translate(gpa)
            guard platform.memory.isPopulated(page: spa >> 12) else { continue }
            if vm.isShared(gpa: gpa) {
                try target.hostCopy(from: platform, spa, to: try dst.translate(gpa), count: 4096,
                                    srcVM: vm.id, srcGPA: gpa, dstVM: dst.id, dstGPA: gpa)
                dst.markShared(gpa: gpa, true)
                continue
            }
            try ioctl(vm, .sendUpdateData, Self.pageUpdate(header: header, guest: vm.userAddress(of: gpa),
                                                           transport: trans))
            // The packet crosses the network: VMM to VMM.
            try target.hostCopy(from: platform, header, to: remoteHeader, count: TransportPacket.headerSize)
            try target.hostCopy(from: platform, trans, to: remoteTrans, count: 4096)
            try remote.ioctl(dst, .receiveUpdateData, Self.pageUpdate(header: remoteHeader,
                                                                      guest: dst.userAddress(of: gpa), transport: remoteTrans))
        }
        if finish {
            try ioctl(vm, .sendFinish)
            try remote.ioctl(dst, .receiveFinish)
        }
        dst.imageLoaded = true
        dst.entry = vm.entry
        dst.smeMeMask = vm.smeMeMask
        for (from, to) in zip(vm.vcpus, dst.vcpus) { to.copyState(from: from) }
        return dst
    }

    /// `struct kvm_sev_send_update_data` or `kvm_sev_receive_update_data` (one layout) for one whole page:
    /// the packet header, the guest page and the transport buffer.
    static func pageUpdate(header: UInt64, guest: UInt64, transport: UInt64) -> KVMSevData.Packet {
        var b = KVMSevData.Packet()
        (b.headerAddress, b.headerLength) = (header, UInt32(TransportPacket.headerSize))
        (b.guestAddress, b.guestLength) = (guest, 4096)
        (b.transAddress, b.transLength) = (transport, 4096)
        return b
    }
}
