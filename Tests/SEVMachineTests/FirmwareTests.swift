import Crypto
import TraceFormat
import Testing
@testable import SEVMachine

struct FirmwareTests {
    @Test("a launch walks the guest through LUPDATE, LSECRET and RUNNING with SUCCESS at every step")
    func launchSequence() throws {
        let f = try MachineFixture([Instruction(.halt)])
        var cmds = f.pspCommands
        #expect(cmds.map { SEVCommand(rawValue: $0.command)! } == [
            .initialize, .dfFlush, .launchStart, .activate, .launchUpdateData, .launchMeasure, .launchMeasure,
            .launchFinish,
        ])
        #expect(cmds[5].status == SEVStatus.invalidLength.rawValue, "QEMU asks for the length first")
        cmds.remove(at: 5)
        #expect(cmds.allSatisfy { $0.status == SEVStatus.success.rawValue })
        #expect(cmds[0].platformBefore == PlatformState.uninit.rawValue && cmds[0].platformAfter == PlatformState.initialized.rawValue)
        #expect(cmds[2].platformAfter == PlatformState.working.rawValue)
        #expect(cmds[2].guestBefore == GuestState.none && cmds[2].guestAfter == GuestState.launchUpdate.rawValue)
        #expect(cmds[5].guestBefore == GuestState.launchUpdate.rawValue && cmds[5].guestAfter == GuestState.launchSecret.rawValue)
        #expect(cmds[6].guestAfter == GuestState.running.rawValue)
        #expect(cmds[3].asid == 1)
    }

    @Test("the measurement is HMAC-SHA256(TIK, 04 || api || build || policy || SHA-256(launch data) || mnonce)")
    func measurement() throws {
        let program = [Instruction(.movImmediate, a: 1, immediate: 7), Instruction(.halt)]
        let f = try MachineFixture(program, policy: 0x1)
        let (tik, policy) = try #require(f.platform.firmware.launchSecrets(handle: f.vm.handle))
        let out = f.launchOutput
        let digest = Array(SHA256.hash(data: program.flatMap(\.encoded)))
        var message: [UInt8] = [0x04, 0, 17, 48]
        message += withUnsafeBytes(of: policy.littleEndian) { Array($0) }
        message += digest + Array(out[32..<48])
        let expected = Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: tik)))
        #expect(Array(out[0..<32]) == expected)
        #expect(f.platform.firmware.measurement(handle: f.vm.handle) == expected)
    }

    /// Issues one command with a zero buffer of its size.
    func run(_ fw: SEVFirmware, _ c: SEVCommand) -> SEVStatus {
        var b = CommandBuffer(size: CommandBuffer.size(of: c))
        return fw.execute(c.rawValue, buffer: &b)
    }

    /// Issues one command with a typed buffer.
    func run<Data: BufferLayout>(_ fw: SEVFirmware, _ c: SEVCommand, _ data: Data) -> SEVStatus {
        var b = data.buffer
        return fw.execute(c.rawValue, buffer: &b)
    }

    func activate(_ handle: UInt32, asid: UInt32) -> SEVData.Activate {
        var d = SEVData.Activate()
        (d.handle, d.asid) = (handle, asid)
        return d
    }

    func launchStart(policy: UInt32) -> SEVData.LaunchStart {
        var d = SEVData.LaunchStart()
        d.policy = policy
        return d
    }

    @Test("commands in the wrong platform or guest state get the firmware's status codes")
    func stateErrors() throws {
        let f = try MachineFixture([Instruction(.halt)], launch: false)
        let fw = f.platform.firmware
        #expect(run(fw, .launchStart) == .invalidPlatformState, "no INIT yet")
        #expect(run(fw, .shutdown) == .invalidPlatformState, "UNINIT allows INIT, PLATFORM_RESET, PLATFORM_STATUS, DOWNLOAD_FIRMWARE, GET_ID")
        #expect(run(fw, .platformStatus) == .success && run(fw, .getID) != .invalidPlatformState)
        #expect(run(fw, .initialize) == .success)
        #expect(run(fw, .initialize) == .invalidPlatformState)
        #expect(run(fw, .launchFinish, SEVData.Handle(99)) == .invalidGuest)
        var start = SEVData.LaunchStart().buffer
        #expect(fw.execute(SEVCommand.launchStart.rawValue, buffer: &start) == .success)
        let handle = SEVData.LaunchStart(start).handle
        #expect(handle != 0)
        #expect(run(fw, .launchFinish, SEVData.Handle(handle)) == .invalidGuestState, "FINISH needs LSECRET")
        #expect(run(fw, .activate, activate(handle, asid: 0)) == .invalidASID)
        #expect(run(fw, .activate, activate(handle, asid: 16)) == .invalidASID)
        #expect(run(fw, .decommission, SEVData.Handle(handle)) == .success)
        #expect(fw.platformState == .initialized, "the last guest gone: back to INIT")
        #expect(fw.execute(0x99, buffer: &start) == .invalidCommand)
        #expect(run(fw, .launchMeasure, { var d = SEVData.LaunchUpdateData(); d.handle = 12345; return d }()) == .invalidGuest)
    }

    @Test("a short command buffer gets INVALID_LENGTH, never a crash")
    func shortBuffer() throws {
        let f = try MachineFixture([Instruction(.halt)], launch: false)
        var b = CommandBuffer(size: 3)
        #expect(f.platform.firmware.execute(SEVCommand.activate.rawValue, buffer: &b) == .invalidLength)
    }

    @Test("an ASID deactivated from one guest cannot be activated for another until WBINVD and DF_FLUSH")
    func asidReuse() throws {
        let f = try MachineFixture([Instruction(.halt)])
        let fw = f.platform.firmware
        let first = f.vm.handle
        var start = SEVData.LaunchStart().buffer
        #expect(fw.execute(SEVCommand.launchStart.rawValue, buffer: &start) == .success)
        let second = SEVData.LaunchStart(start).handle
        #expect(run(fw, .activate, activate(second, asid: 1)) == .asidOwned)
        #expect(run(fw, .deactivate, SEVData.Handle(first)) == .success)
        let deactivate = f.sink.events.compactMap { if case .pspCommand(let p) = $0.body, p.command == SEVCommand.deactivate.rawValue { p } else { nil } }
        #expect(deactivate.last?.asid == 1, "DEACTIVATE's record names the ASID it released")
        #expect(run(fw, .activate, activate(second, asid: 1)) == .dfflushRequired)
        #expect(run(fw, .dfFlush) == .wbinvdRequired)
        f.platform.wbinvdAllCores()
        #expect(run(fw, .dfFlush) == .success)
        #expect(run(fw, .activate, activate(second, asid: 1)) == .success)
        #expect(run(fw, .decommission, SEVData.Handle(second)) == .active, "still active")
    }

    @Test("LAUNCH_START refuses a policy that needs a newer firmware or SEV-ES")
    func policyChecks() throws {
        let f = try MachineFixture([Instruction(.halt)], launch: false)
        let fw = f.platform.firmware
        #expect(run(fw, .initialize) == .success)
        #expect(run(fw, .launchStart, launchStart(policy: 0x0100_0000 | 0x0001_0000)) == .policyFailure)
        #expect(run(fw, .launchStart, launchStart(policy: 0x4)) == .policyFailure)
        #expect(run(fw, .launchStart, launchStart(policy: 0x1100_0000)) == .success, "minimum 0.17 on a 0.17 platform")
    }
}
