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
        let (status, out) = try p.kvm.driver.issue(.launchStart, CommandBuffer(for: .launchStart))
        try Self.must(status)
        var activate = CommandBuffer(for: .activate)
        activate.setU32(0, out.u32(0))
        activate.setU32(4, asid)
        try Self.must(try p.kvm.driver.issue(.activate, activate).0)
        return out.u32(0)
    }

    struct Failed: Error { let status: SEVStatus }

    /// Throws unless `status` is SUCCESS.
    static func must(_ status: SEVStatus) throws {
        if status != .success { throw Failed(status: status) }
    }

    func simple(_ p: Platform, _ c: SEVCommand, _ handle: UInt32) throws -> SEVStatus {
        var b = CommandBuffer(for: c)
        b.setU32(0, handle)
        return try p.kvm.driver.issue(c, b).0
    }

    /// A harness whose guest is in `state`.
    static func guest(in state: GuestState) throws -> FirmwareHarness {
        var h = try FirmwareHarness()
        let src = h.source
        h.handle = try h.start(src)
        if state == .launchUpdate { return h }
        var measure = CommandBuffer(for: .launchMeasure)
        measure.setU32(0, h.handle)
        measure.setU64(8, try src.kvm.driver.reserve(48))
        measure.setU32(16, 48)
        try Self.must(try src.kvm.driver.issue(.launchMeasure, measure).0)
        if state == .launchSecret { return h }
        try Self.must(try h.simple(src, .launchFinish, h.handle))
        if state == .running { return h }
        // SEND_START towards the second platform.
        h.target.kvm.sevInit()
        let (pdh, chain) = try h.target.vmm.exportPDH()
        let (ownPDH, _) = try src.vmm.exportPDH()
        let d = src.kvm.driver
        var send = CommandBuffer(for: .sendStart)
        send.setU32(0, h.handle)
        send.setU64(8, try d.stage(pdh.bytes))
        send.setU32(16, UInt32(SEVCertificate.size))
        send.setU64(24, try d.stage(chain))
        send.setU32(32, UInt32(chain.count))
        send.setU64(56, try d.reserve(LaunchSession.size))
        send.setU32(64, UInt32(LaunchSession.size))
        let (status, out) = try d.issue(.sendStart, send)
        try Self.must(status)
        let session = try d.fetch(out.u64(56), count: LaunchSession.size)
        if state == .sendUpdate { return h }
        if state == .sent {
            try Self.must(try h.simple(src, .sendFinish, h.handle))
            return h
        }
        // RECEIVE_START on the second platform.
        let t = h.target.kvm.driver
        var receive = CommandBuffer(for: .receiveStart)
        receive.setU64(8, try t.stage(ownPDH.bytes))
        receive.setU32(16, UInt32(SEVCertificate.size))
        receive.setU64(24, try t.stage(session))
        receive.setU32(32, UInt32(LaunchSession.size))
        let (rs, ro) = try t.issue(.receiveStart, receive)
        try Self.must(rs)
        h.handle = ro.u32(0)
        h.holder = h.target
        return h
    }
}
