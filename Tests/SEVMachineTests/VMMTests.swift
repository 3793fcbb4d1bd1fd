import Crypto
import TraceFormat
import Testing
@testable import SEVMachine

/// The guest-owner flows through KVM's ioctl: launch with a session, secrets, debug, attestation,
/// migration.
struct VMMTests {
    static let program = [
        Instruction(.movImmediate, a: 1, immediate: 0x180000),
        Instruction(.load, a: 2, b: 1, width: 8),
        Instruction(.halt),
        Instruction(.load, a: 3, b: 1, width: 8, immediate: 8),
        Instruction(.halt),
    ]

    /// A two-platform machine with a 2 MiB guest on the first.
    struct Setup {
        let sink = CollectingSink()
        let machine: Machine
        let vm: VirtualMachine

        init(policy: UInt32 = 0) throws {
            machine = Machine(seed: 21, sink: sink)
            machine.addPlatform(name: "a", config: PlatformConfig())
            machine.addPlatform(name: "b", config: PlatformConfig())
            vm = try machine.platforms[0].kvm.createVM(name: "g", memoryBytes: 2 << 20, policy: policy, sev: true)
            vm.entry = 0x101000
            vm.addImage(gpa: 0x100000, bytes: Array("launch data......".utf8).prefix(16) + [])
            vm.addImage(gpa: 0x101000, bytes: VMMTests.program.flatMap(\.encoded))
        }

        var vmm: VMM { vm.platform.vmm }
    }

    @Test("a launch with a guest owner's session: the owner checks the measurement and injects a secret")
    func ownerLaunch() throws {
        let s = try Setup()
        var owner: GuestOwner? = s.machine.makeGuestOwner(name: "alice", policy: 0)
        let out = try s.vmm.launch(s.vm, owner: &owner, finish: false)
        // The measurement, computed independently from what the owner knows (as `sev-trace measure` does).
        let digest = Array(SHA256.hash(data: VMM.image(of: s.vm)))
        let expected = LaunchMeasurement.compute(apiMajor: 0, apiMinor: 17, build: 48, policy: 0, digest: digest,
                                                 mnonce: Array(out[32..<48]), tik: owner!.session!.tik)
        #expect(Array(out[0..<32]) == expected)
        #expect(owner!.verifiedMeasurement == expected)
        let secret: [UInt8] = Array(0x30..<0x40)
        try s.vmm.injectSecret(s.vm, owner: owner!, gpa: 0x180000, secret: secret)
        try s.vm.platform.kvm.run(s.vm)
        #expect(s.vm.vcpus[0].registers[2] == 0x3736_3534_3332_3130, "the guest reads the secret the owner sent")
        #expect(try s.vmm.guestStatus(s.vm).state == UInt32(GuestState.running.rawValue))
    }

    @Test("a session bound to another policy fails LAUNCH_START with BAD_MEASUREMENT")
    func policyMAC() throws {
        let s = try Setup(policy: 0)
        var owner: GuestOwner? = s.machine.makeGuestOwner(name: "alice", policy: 0x1)
        #expect(throws: VMM.Failure(command: .launchStart, errno: -5, firmwareError: UInt32(SEVStatus.badMeasurement.rawValue))) {
            try s.vmm.launch(s.vm, owner: &owner)
        }
    }

    @Test("a hypervisor that changes the image gets a measurement the owner refuses")
    func tamperedImage() throws {
        let s = try Setup()
        var owner: GuestOwner? = s.machine.makeGuestOwner(name: "alice", policy: 0)
        // The hypervisor loads the image, then patches one byte before LAUNCH_UPDATE_DATA measures it.
        try s.vm.platform.kvm.loadImage(s.vm)
        try s.vm.platform.kvm.write(s.vm, gpa: 0x101000, bytes: [0x02])
        #expect(throws: GuestOwner.Refusal.self) { try s.vmm.launch(s.vm, owner: &owner) }
    }

    static let debugCases: [(size: Int, offset: UInt64)] = [
        (1, 0x180001), (8, 0x180008), (15, 0x180011), (16, 0x180000), (17, 0x18000f), (32, 0x180020),
        (33, 0x180007), (4095, 0x180001), (4097, 0x180ff8), (24, 0x180ff0),
    ]

    @Test("DBG_ENCRYPT then DBG_DECRYPT round trip at any size and offset, leaving neighbours alone",
          arguments: debugCases)
    func debugRoundTrip(size: Int, offset: UInt64) throws {
        let s = try Setup()
        var none: GuestOwner?
        try s.vmm.launch(s.vm, owner: &none)
        let before = try s.vmm.debugDecrypt(s.vm, gpa: 0x17ff00, length: 0x2200)
        var g = SeededGenerator(seed: UInt64(size))
        let data = g.bytes(size)
        try s.vmm.debugEncrypt(s.vm, gpa: offset, bytes: data)
        #expect(try s.vmm.debugDecrypt(s.vm, gpa: offset, length: size) == data)
        var expected = before
        let at = Int(offset - 0x17ff00)
        expected.replaceSubrange(at..<at + size, with: data)
        #expect(try s.vmm.debugDecrypt(s.vm, gpa: 0x17ff00, length: 0x2200) == expected)
    }

    @Test("DBG_* under a NODBG policy fail with POLICY_FAILURE")
    func noDebug() throws {
        let s = try Setup(policy: 0x1)
        var none: GuestOwner?
        try s.vmm.launch(s.vm, owner: &none)
        let refused = VMM.Failure(command: .dbgDecrypt, errno: -5, firmwareError: UInt32(SEVStatus.policyFailure.rawValue))
        #expect(throws: refused) { _ = try s.vmm.debugDecrypt(s.vm, gpa: 0x180000, length: 16) }
    }

    @Test("ATTESTATION: a report signed by the PEK over the nonce, the launch digest and the policy")
    func attestation() throws {
        let s = try Setup()
        var none: GuestOwner?
        try s.vmm.launch(s.vm, owner: &none)
        let nonce = Array(0..<16) as [UInt8]
        let report = try s.vmm.attestationReport(s.vm, mnonce: nonce)
        #expect(report.count == 208)
        #expect(Array(report[0..<16]) == nonce)
        #expect(Array(report[16..<48]) == Array(SHA256.hash(data: VMM.image(of: s.vm))))
        let r = Array(report[64..<112].reversed()), sig = Array(report[136..<184].reversed())
        let pek = s.vm.platform.firmware.identity.pek.publicKey
        #expect(DeterministicECDSA.verify(digest: Array(SHA256.hash(data: report[0..<52])), r: r, s: sig, publicKey: pek))
        // As QEMU does, the VMM asked for the lengths first: each command once with length 0.
        let statuses = { (c: SEVCommand) in
            s.sink.events.compactMap { if case .pspCommand(let p) = $0.body, p.command == c.rawValue { p.status } else { nil } }
        }
        let (invalidLength, success) = (SEVStatus.invalidLength.rawValue, SEVStatus.success.rawValue)
        #expect(statuses(.launchMeasure) == [invalidLength, success] && statuses(.attestation) == [invalidLength, success])
    }

    @Test("migration: the guest arrives on the other platform with its memory and registers and runs on")
    func migration() throws {
        let s = try Setup()
        var owner: GuestOwner? = s.machine.makeGuestOwner(name: "alice", policy: 0)
        try s.vmm.launch(s.vm, owner: &owner, finish: false)
        try s.vmm.injectSecret(s.vm, owner: owner!, gpa: 0x180000, secret: Array(0x40..<0x50))
        try s.vm.platform.kvm.run(s.vm)
        let moved = try s.vmm.migrate(s.vm, to: s.machine.platforms[1], as: "g2")
        #expect(moved.platform === s.machine.platforms[1])
        #expect(s.vm.platform.firmware.guestState(handle: s.vm.handle) == .sent)
        #expect(moved.platform.firmware.guestState(handle: moved.handle) == .running)
        try moved.platform.kvm.run(moved)
        #expect(moved.vcpus[0].registers[2] == s.vm.vcpus[0].registers[2])
        #expect(moved.vcpus[0].registers[3] == 0x4f4e_4d4c_4b4a_4948, "the second half of the secret, read after arrival")
        // On the wire and in the target's DRAM the data was never in the clear.
        let targetDRAM = try moved.platform.memory.rawBytes(at: try moved.translate(0x180000), count: 16)
        #expect(targetDRAM != Array(0x40..<0x50))
    }

    @Test("SEND_START fails with POLICY_FAILURE under NOSEND (0x8), and under DOMAIN (0x10) towards a platform of another OCA",
          arguments: [UInt32(0x8), 0x10])
    func sendRefusedByPolicy(policy: UInt32) throws {
        let s = try Setup(policy: policy)
        var none: GuestOwner?
        try s.vmm.launch(s.vm, owner: &none)
        #expect(throws: VMM.Failure(command: .sendStart, errno: -5, firmwareError: UInt32(SEVStatus.policyFailure.rawValue))) {
            _ = try s.vmm.migrate(s.vm, to: s.machine.platforms[1], as: "g2")
        }
    }
}

/// KVM_MEMORY_ENCRYPT_OP's own checks.
struct KVMSevTests {
    func op(_ kvm: KVM, _ vm: VirtualMachine, _ id: UInt32, data: [UInt8] = [], fd: Int32 = KVM.sevDeviceFD) -> (Int32, KVMSevCmd) {
        var cmd = KVMSevCmd(id: id, data: data, sevFD: fd)
        return (kvm.memoryEncryptOp(vm, &cmd), cmd)
    }

    @Test("caller and argument checks answer as KVM does")
    func checks() throws {
        let f = try MachineFixture([Instruction(.halt)], policy: 0, launch: false)
        let kvm = f.platform.kvm
        #expect(op(kvm, f.vm, 2, data: [UInt8](repeating: 0, count: 40)).0 == -Errno.enotty.rawValue, "before KVM_SEV_INIT")
        #expect(op(kvm, f.vm, 0, fd: 7).0 == 0, "KVM_SEV_INIT takes no /dev/sev descriptor")
        #expect(op(kvm, f.vm, 0).0 == -Errno.einval.rawValue, "INIT twice")
        #expect(op(kvm, f.vm, 99).0 == -Errno.einval.rawValue, "unknown id")
        #expect(op(kvm, f.vm, 1).0 == -Errno.enotty.rawValue, "SEV-ES is not available")
        #expect(op(kvm, f.vm, 2, data: [1, 2]).0 == -Errno.efault.rawValue, "short user struct")
        #expect(op(kvm, f.vm, 7).0 == -Errno.ebadf.rawValue, "before LAUNCH_START no descriptor is stored (sev->fd is 0)")
        #expect(op(kvm, f.vm, 2, data: [UInt8](repeating: 0, count: 40), fd: 7).0 == -Errno.ebadf.rawValue,
                "LAUNCH_START goes through the caller's descriptor")
        #expect(op(kvm, f.vm, 2, data: [UInt8](repeating: 0, count: 40)).0 == 0)
        let (status, statusCmd) = op(kvm, f.vm, 16, data: [UInt8](repeating: 0, count: 12), fd: 7)
        #expect(status == 0 && KVMSevData.GuestStatus(CommandBuffer(bytes: statusCmd.data)).state == 1,
                "later sub-commands use the stored descriptor")
        var measure = KVMSevData.Region()
        measure.length = 0x4001
        #expect(op(kvm, f.vm, 6, data: measure.buffer.bytes).0 == -Errno.einval.rawValue, "measurement length over 16 KiB")
        let (qret, qcmd) = op(kvm, f.vm, 6, data: KVMSevData.Region().buffer.bytes)
        let query = KVMSevData.Region(CommandBuffer(bytes: qcmd.data))
        #expect(qret == -Errno.eio.rawValue && qcmd.error == UInt32(SEVStatus.invalidLength.rawValue) && query.length == 48,
                "length 0 asks for the length")
        var dbg = KVMSevData.Debug()
        (dbg.source, dbg.destination) = (f.vm.userAddress(of: 0x100000), 0x400000)
        #expect(op(kvm, f.vm, 17, data: dbg.buffer.bytes).0 == -Errno.einval.rawValue, "DBG of length 0")
        var update = KVMSevData.Region()
        update.address = f.vm.userAddress(of: 0x100000)
        #expect(op(kvm, f.vm, 3, data: update.buffer.bytes).0 == -Errno.einval.rawValue, "sev_pin_memory refuses length 0")
        (update.address, update.length) = (f.vm.userAddress(of: 0x100000) + 8, 16)
        let (unaligned, unalignedCmd) = op(kvm, f.vm, 3, data: update.buffer.bytes)
        #expect(unaligned == -Errno.eio.rawValue && unalignedCmd.error == UInt32(SEVStatus.invalidAddress.rawValue),
                "alignment is the firmware's check: -EIO with its status")
        (update.address, update.length) = (f.vm.userAddress(of: 0x100000), 8)
        let (short, shortCmd) = op(kvm, f.vm, 3, data: update.buffer.bytes)
        #expect(short == -Errno.eio.rawValue && shortCmd.error == UInt32(SEVStatus.invalidLength.rawValue), "firmware errors are -EIO")
        (update.address, update.length) = (try f.vm.translate(0x100000), 16)
        #expect(op(kvm, f.vm, 3, data: update.buffer.bytes).0 == -Errno.efault.rawValue,
                "KVM takes the VMM's addresses: a host physical address is no guest RAM")
    }

    @Test("DBG: aligned requests go to the firmware on the user's page, unaligned ones through a bounce; the C-bit only under host SME",
          arguments: [false, true])
    func debugAddresses(sme: Bool) throws {
        var config = PlatformConfig()
        config.sme = sme
        let f = try MachineFixture([Instruction(.halt)], policy: 0, config: config)
        let mask = sme ? config.cbitMask : 0
        func dbgCommands() -> [SEVData.Debug] {
            f.sink.events.compactMap {
                if case .pspCommand(let p) = $0.body, p.command == SEVCommand.dbgDecrypt.rawValue { p.data(as: SEVData.Debug.self) } else { nil }
            }
        }
        let user: UInt64 = 0x3F0_0000
        for (offset, length) in [(UInt64(0), 32), (8, 16)] {
            var dbg = KVMSevData.Debug()
            (dbg.source, dbg.destination, dbg.length) = (f.vm.userAddress(of: 0x100000 + offset), user, UInt32(length))
            #expect(op(f.platform.kvm, f.vm, 17, data: dbg.buffer.bytes).0 == 0)
        }
        let commands = dbgCommands()
        #expect(commands.count == 2)
        let guestSPA = try f.vm.translate(0x100000)
        #expect(commands[0].source == guestSPA | mask && commands[0].destination == user | mask && commands[0].length == 32,
                "aligned: straight into the user's page")
        #expect(commands[1].source == guestSPA | mask && commands[1].destination != user | mask
                && commands[1].destination & mask == mask && commands[1].length == 32,
                "unaligned: the blocks it touches, into a kernel bounce page")
    }

    @Test("key sharing: LAUNCH_START naming an existing guest shares its key, unless either policy says NOKS",
          arguments: [(0 as UInt32, 0 as UInt32, true), (0x2, 0, false), (0, 0x2, false)])
    func keySharing(first: UInt32, second: UInt32, shares: Bool) throws {
        let h = try FirmwareHarness()
        var a = SEVData.LaunchStart()
        a.policy = first
        let (s1, o1) = try h.source.kvm.driver.issue(.launchStart, a)
        #expect(s1 == .success)
        var b = SEVData.LaunchStart()
        (b.handle, b.policy) = (o1.handle, second)
        let (s2, o2) = try h.source.kvm.driver.issue(.launchStart, b)
        #expect(s2 == (shares ? .success : .policyFailure))
        guard shares else { return }
        for handle in [o1.handle, o2.handle] {
            var act = SEVData.Activate()
            (act.handle, act.asid) = (handle, 3)
            #expect(try h.source.kvm.driver.issue(.activate, act).0 == .success, "guests sharing a key share the ASID")
        }
    }
}

/// Files written by the owner tools open with the firmware.
struct OwnerFileTests {
    @Test("a session built from an exported PDH certificate is accepted by that platform's LAUNCH_START")
    func sessionFromExport() throws {
        let h = try FirmwareHarness()
        let pdh = h.source.firmware.identity.pdhCert
        var g = SeededGenerator(seed: 99)
        let godh = KeyPair(rng: &g)
        let pdhKey = try #require(pdh.publicKeyX963)
        let session = try #require(LaunchSession.create(own: godh, pdh: pdhKey, policy: 0x1, rng: &g))
        let cert = SEVCertificate(apiMajor: 0, apiMinor: 0, usage: .pdh, algorithm: .ecdhSHA256, publicKey: godh.publicKey)
        let d = h.source.kvm.driver
        func start(_ blob: [UInt8]) throws -> SEVData.LaunchStart {
            var b = SEVData.LaunchStart()
            b.policy = 0x1
            (b.certAddress, b.certLength) = (try d.stage(cert.bytes), UInt32(SEVCertificate.size))
            (b.sessionAddress, b.sessionLength) = (try d.stage(blob), UInt32(LaunchSession.size))
            return b
        }
        #expect(try d.issue(.launchStart, start(session.blob)).0 == .success)
        var tampered = session.blob
        tampered[100] ^= 1
        #expect(try d.issue(.launchStart, start(tampered)).0 == .badMeasurement)
    }
}

/// Host page migration and the REG_REGION pin that forbids it for SEV guests.
struct PageMigrationTests {
    static let program = [
        Instruction(.movImmediate, a: 6, immediate: 0x180000),
        Instruction(.load, a: 3, b: 6, width: 8),
        Instruction(.halt),
    ]
    static let config = Array("config: 16 bytes".utf8)
    /// The first eight bytes of `config` as a little-endian load sees them.
    static let configWord = config.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }

    func fixture(pin: Bool) throws -> MachineFixture {
        let f = try MachineFixture(Self.program, launch: false)
        f.vm.addImage(gpa: 0x180000, bytes: Self.config)
        var none: GuestOwner?
        _ = try f.platform.vmm.launch(f.vm, owner: &none, pin: pin)
        return f
    }

    @Test("the launch registers guest memory: KVM pins it and a migration of one of its pages is refused")
    func pinned() throws {
        let f = try fixture(pin: true)
        #expect(f.vm.pinned)
        let frame = try f.vm.translate(0x180000)
        #expect(throws: MachineError.self) { try f.platform.kvm.migratePage(f.vm, gpa: 0x180000) }
        #expect(try f.vm.translate(0x180000) == frame)
    }

    @Test("a migrated page of an unpinned SEV guest keeps its ciphertext but not its tweak: the guest reads garbage")
    func unpinned() throws {
        let f = try fixture(pin: false)
        #expect(!f.vm.pinned)
        let frame = try f.vm.translate(0x180000)
        try f.platform.kvm.migratePage(f.vm, gpa: 0x180000)
        #expect(try f.vm.translate(0x180000) != frame)
        try f.platform.kvm.run(f.vm)
        #expect(f.vm.vcpus[0].registers[3] != Self.configWord)
        let walks = f.accesses.filter { $0.kind == .nestedWalk && $0.gpa == 0x180000 }
        #expect(walks.last?.value == (try f.vm.translate(0x180000)) | 0x7, "the nested walk finds the new frame")
    }

    @Test("a migrated page of a plain VM reads the same after the move")
    func plain() throws {
        let f = try MachineFixture(Self.program, launch: false)
        let plain = try f.platform.kvm.createVM(name: "plain", memoryBytes: 2 << 20, policy: 0, sev: false)
        plain.entry = 0x100000
        plain.addImage(gpa: 0x100000, bytes: Self.program.flatMap(\.encoded))
        plain.addImage(gpa: 0x180000, bytes: Self.config)
        try f.platform.kvm.loadImage(plain)
        try f.platform.kvm.migratePage(plain, gpa: 0x180000)
        try f.platform.kvm.run(plain)
        #expect(plain.vcpus[0].registers[3] == Self.configWord)
    }
}
