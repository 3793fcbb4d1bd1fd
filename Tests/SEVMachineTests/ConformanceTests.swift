import TraceFormat
import Testing
@testable import SEVMachine

/// Every (platform state × command) and (guest state × command) pair against the SEV API's state tables.
/// The tables below are written from the specification, independently of the firmware's own.
struct ConformanceTests {
    static let platformCommands: [SEVCommand] = [
        .initialize, .shutdown, .factoryReset, .platformStatus, .pekGen, .pekCSR, .pekCertImport, .pdhCertExport,
        .pdhGen, .dfFlush, .downloadFirmware, .getID,
    ]

    /// SEV API, platform state table: UNINIT allows INIT, PLATFORM_RESET, PLATFORM_STATUS, DOWNLOAD_FIRMWARE
    /// and GET_ID only (Linux's sev-dev skips SHUTDOWN on an uninitialised platform for that reason).
    static let platformAllowed: [PlatformState: Set<SEVCommand>] = [
        .uninit: [.initialize, .factoryReset, .platformStatus, .downloadFirmware, .getID],
        .initialized: [.shutdown, .platformStatus, .pekGen, .pekCSR, .pekCertImport, .pdhGen, .pdhCertExport, .dfFlush, .getID],
        .working: [.shutdown, .platformStatus, .pdhGen, .pdhCertExport, .dfFlush, .getID],
    ]

    struct PlatformCase: Sendable, CustomTestStringConvertible {
        var state: PlatformState
        var command: SEVCommand
        var testDescription: String { "\(state) × \(command)" }
    }

    static let platformCases: [PlatformCase] = [PlatformState.uninit, .initialized, .working].flatMap { s in
        (platformCommands + [.launchUpdateData, .activate, .guestStatus]).map { PlatformCase(state: s, command: $0) }
    }

    @Test("platform state × command", arguments: platformCases)
    func platformTable(_ c: PlatformCase) throws {
        let h = try FirmwareHarness(platformState: c.state)
        #expect(h.source.firmware.platformState == c.state)
        let status = try h.simple(h.source, c.command, 0)
        let allowed = Self.platformAllowed[c.state]!.contains(c.command)
        if Self.platformCommands.contains(c.command) {
            #expect((status == .invalidPlatformState) == !allowed, "\(status)")
        } else {
            // Guest commands need INIT or WORKING; past the platform check, handle 0 names no guest.
            #expect(status == (c.state == .uninit ? .invalidPlatformState : .invalidGuest), "\(status)")
        }
    }

    static let guestCommands: [SEVCommand] = [
        .activate, .deactivate, .decommission, .guestStatus, .launchUpdateData, .launchMeasure, .launchSecret,
        .launchFinish, .attestation, .sendStart, .sendUpdateData, .sendFinish, .sendCancel, .receiveUpdateData,
        .receiveFinish, .dbgDecrypt, .dbgEncrypt, .copy,
    ]

    /// SEV API, guest state table; DBG_*, COPY and ATTESTATION as the simulator documents them.
    static let guestAllowed: [GuestState: Set<SEVCommand>] = [
        .launchUpdate: [.launchUpdateData, .launchMeasure, .activate, .deactivate, .decommission, .guestStatus,
                        .dbgDecrypt, .dbgEncrypt, .copy],
        .launchSecret: [.launchSecret, .launchFinish, .activate, .deactivate, .decommission, .guestStatus, .attestation,
                        .dbgDecrypt, .dbgEncrypt, .copy],
        .running: [.activate, .deactivate, .decommission, .sendStart, .guestStatus, .attestation, .dbgDecrypt,
                   .dbgEncrypt, .copy],
        .sendUpdate: [.sendUpdateData, .sendFinish, .sendCancel, .activate, .deactivate, .decommission, .guestStatus,
                      .dbgDecrypt, .dbgEncrypt, .copy],
        .receiveUpdate: [.receiveUpdateData, .receiveFinish, .activate, .deactivate, .decommission, .guestStatus,
                         .dbgDecrypt, .dbgEncrypt, .copy],
        .sent: [.deactivate, .decommission, .guestStatus],
    ]

    struct GuestCase: Sendable, CustomTestStringConvertible {
        var state: GuestState
        var commands: [SEVCommand]
        var testDescription: String { "\(state)" }
    }

    @Test("guest state × command", arguments: [GuestState.launchUpdate, .launchSecret, .running, .sendUpdate, .receiveUpdate, .sent])
    func guestTable(_ state: GuestState) throws {
        for command in Self.guestCommands {
            let h = try FirmwareHarness.guest(in: state)
            #expect(h.holder.firmware.guestState(handle: h.handle) == state)
            let status = try h.simple(h.holder, command, h.handle)
            let allowed = Self.guestAllowed[state]!.contains(command)
            #expect((status == .invalidGuestState) == !allowed, "\(state) × \(command): \(status)")
        }
    }

    @Test("unknown and unmodelled commands answer INVALID_COMMAND; random buffers never crash")
    func robustness() throws {
        let h = try FirmwareHarness(platformState: .working)
        var g = SeededGenerator(seed: 1)
        for id in 0...255 as ClosedRange<Int> {
            var b = CommandBuffer(bytes: g.bytes(Int(g.next() % 80)))
            let status = h.source.firmware.execute(UInt8(id), buffer: &b)
            if SEVCommand(rawValue: UInt8(id)) == nil { #expect(status == .invalidCommand) }
        }
        for c in [SEVCommand.launchUpdateVMSA, .initEx, .nop, .ringBuffer, .activateEx, .swapOut, .swapIn] {
            var b = CommandBuffer(size: 64)
            #expect(h.source.firmware.execute(c.rawValue, buffer: &b) == .invalidCommand)
        }
    }
}
