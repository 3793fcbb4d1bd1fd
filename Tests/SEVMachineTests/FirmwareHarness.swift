import TraceFormat
@testable import SEVMachine

/// Two platforms and a guest brought into a chosen firmware state with real commands.
struct FirmwareHarness {
    let sink = CollectingSink()
    let machine: Machine
    let source: Platform
    let target: Platform
    /// The guest's handle, and the platform whose firmware holds it.
    var handle: UInt32 = 0
    var holder: Platform

    init(platformState: PlatformState = .initialized) throws {
        machine = Machine(seed: 11, sink: sink)
        source = machine.addPlatform(name: "src", config: PlatformConfig())
        target = machine.addPlatform(name: "dst", config: PlatformConfig())
        holder = source
        if platformState != .uninit { source.kvm.sevInit() }
        if platformState == .working { _ = try start(source) }
    }

    /// LAUNCH_START without a session and ACTIVATE on ASID 1; returns the handle.
    func start(_ p: Platform, asid: UInt32 = 1) throws -> UInt32 {
        let (status, out) = try p.kvm.driver.issue(.launchStart, SEVData.LaunchStart())
        try Self.must(status)
        var activate = SEVData.Activate()
        (activate.handle, activate.asid) = (out.handle, asid)
        try Self.must(try p.kvm.driver.issue(.activate, activate).0)
        return out.handle
    }

    struct Failed: Error { let status: SEVStatus }

    /// Throws unless `status` is SUCCESS.
    static func must(_ status: SEVStatus) throws {
        if status != .success { throw Failed(status: status) }
    }

    func simple(_ p: Platform, _ c: SEVCommand, _ handle: UInt32) throws -> SEVStatus {
        try p.kvm.driver.issue(c, SEVData.Handle(handle)).0
    }

    /// A harness whose guest is in `state`.
    static func guest(in state: GuestState) throws -> FirmwareHarness {
        var h = try FirmwareHarness()
        let src = h.source
        h.handle = try h.start(src)
        if state == .launchUpdate { return h }
        var measure = SEVData.LaunchUpdateData()
        (measure.handle, measure.address, measure.length) = (h.handle, try src.kvm.driver.reserve(48), 48)
        try Self.must(try src.kvm.driver.issue(.launchMeasure, measure).0)
        if state == .launchSecret { return h }
        try Self.must(try h.simple(src, .launchFinish, h.handle))
        if state == .running { return h }
        // SEND_START towards the second platform.
        h.target.kvm.sevInit()
        let (pdh, chain) = try h.target.vmm.exportPDH()
        let (ownPDH, _) = try src.vmm.exportPDH()
        let d = src.kvm.driver
        var send = SEVData.SendStart()
        send.handle = h.handle
        (send.pdhAddress, send.pdhLength) = (try d.stage(pdh.bytes), UInt32(SEVCertificate.size))
        (send.platformCertsAddress, send.platformCertsLength) = (try d.stage(chain), UInt32(chain.count))
        (send.sessionAddress, send.sessionLength) = (try d.reserve(LaunchSession.size), UInt32(LaunchSession.size))
        let (status, out) = try d.issue(.sendStart, send)
        try Self.must(status)
        let session = try d.fetch(out.sessionAddress, count: LaunchSession.size)
        if state == .sendUpdate { return h }
        if state == .sent {
            try Self.must(try h.simple(src, .sendFinish, h.handle))
            return h
        }
        // RECEIVE_START on the second platform.
        let t = h.target.kvm.driver
        var receive = SEVData.LaunchStart()
        (receive.certAddress, receive.certLength) = (try t.stage(ownPDH.bytes), UInt32(SEVCertificate.size))
        (receive.sessionAddress, receive.sessionLength) = (try t.stage(session), UInt32(LaunchSession.size))
        let (rs, ro) = try t.issue(.receiveStart, receive)
        try Self.must(rs)
        h.handle = ro.handle
        h.holder = h.target
        return h
    }
}
