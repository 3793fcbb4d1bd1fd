import ArgumentParser
import SEVMachine
import Scenario

/// The limits on what a scenario may ask for, as options shared by every command that parses or runs one.
struct LimitOptions: ParsableArguments {
    @Option(help: "Steps of work the whole simulation may do: one per guest instruction or access by the hypervisor, a device or the PSP, 20 per world switch.")
    var maxSteps: UInt64 = MachineLimits().maxSteps

    @Option(help: "Simulated memory of all platforms together, in bytes.")
    var maxMemory: UInt64 = MachineLimits().maxMemoryBytes

    @Option(help: "The largest `times=` a statement may have.")
    var maxTimes: UInt64 = ScenarioLimits().maxTimes

    @Option(help: "The most bytes one statement may move (dma, debug, hv read/write, secret, fill len=).")
    var maxStatementBytes: UInt64 = ScenarioLimits().maxStatementBytes

    @Option(help: "The largest scenario file, in bytes.")
    var maxScenarioBytes: Int = ScenarioLimits().maxScenarioBytes

    var limits: ScenarioLimits {
        ScenarioLimits(maxScenarioBytes: maxScenarioBytes, maxStatementBytes: maxStatementBytes, maxTimes: maxTimes,
                       machine: MachineLimits(maxSteps: maxSteps, maxMemoryBytes: maxMemory))
    }
}
