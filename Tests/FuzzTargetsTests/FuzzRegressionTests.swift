import Foundation
import FuzzTargets
import Testing

/// Every seed and every input the fuzzers ever crashed on (kept under `Fuzz/crashers/TARGET/`) runs through
/// its target again: each must end in a result or a clean error.
struct FuzzRegressionTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func crashers(_ target: FuzzTarget) -> [URL] {
        let dir = root.appendingPathComponent("Fuzz/crashers/\(target.rawValue)")
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
            .map { dir.appendingPathComponent($0) }
    }

    @Test("every crasher found so far runs cleanly", arguments: FuzzTarget.allCases)
    func crashers(_ target: FuzzTarget) throws {
        for url in Self.crashers(target) {
            target.run(Array(try Data(contentsOf: url)))
        }
    }

    @Test("the seed corpus comes from Traces/ and runs cleanly", arguments: FuzzTarget.allCases)
    func seeds(_ target: FuzzTarget) {
        let seeds = target.seeds(root: Self.root)
        #expect(seeds.count >= 20, "\(target): \(seeds.count) seeds")
        for seed in seeds { target.run(seed.bytes) }
    }
}
