import SEVMachine

/// Bounds on what a scenario may ask for, checked while it is parsed (so a mistake names its line)
/// and while it runs. Every one has a command-line option that raises it.
public struct ScenarioLimits: Sendable, Equatable {
    /// The largest scenario file (`--max-scenario-bytes`).
    public var maxScenarioBytes: Int
    /// The most bytes one statement may move (`dma`, `debug`, `hv read`/`write`, `secret`, `fill … len=`)
    /// (`--max-statement-bytes`).
    public var maxStatementBytes: UInt64
    /// The largest `times=` (`--max-times`).
    public var maxTimes: UInt64
    /// The simulated machine's own limits: steps of work in the whole simulation (`--max-steps`) and the memory of
    /// all platforms together (`--max-memory`).
    public var machine: MachineLimits

    public init(maxScenarioBytes: Int = 1 << 20, maxStatementBytes: UInt64 = 16 << 20, maxTimes: UInt64 = 1_000_000,
                machine: MachineLimits = MachineLimits()) {
        self.maxScenarioBytes = maxScenarioBytes
        self.maxStatementBytes = maxStatementBytes
        self.maxTimes = maxTimes
        self.machine = machine
    }
}
