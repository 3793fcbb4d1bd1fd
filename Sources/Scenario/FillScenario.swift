/// A guest copying a declared secret, word by word (`rep movsq`), into fresh private memory, pass after
/// pass: what the analyzer's shadow memory holds when guests write a lot. `bench --workload fill` and the
/// analyzer's memory-bound test both record it.
public enum FillScenario {
    /// The scenario text: a secret of `quadwords` × 8 bytes copied `passes` times into consecutive fresh
    /// memory, with `platform` options added to the platform line.
    public static func text(quadwords: UInt64, passes: UInt64, platform: String = "") -> String {
        let written = passes * quadwords * 8
        // The source, the writes, and room for the page tables, in the 2 MiB steps memory sizes take.
        let guestMiB = (48 + (written + (2 << 20) - 1) >> 20) & ~1
        return """
        # fill: copy a \(quadwords * 8)-byte secret \(passes) times into fresh private memory (\(written) bytes written)
        platform memory=\(guestMiB + 64)M \(platform)
        vm guest memory=\(guestMiB)M policy=0x1
        program guest at=0x100000
            mov r5, \(passes)
            mov r1, 0x2000000
        again:
            mov r2, 0x1000000
            mov r3, \(quadwords)
            copy r1, r2, r3
            sub r5, 1
            jnz r5, again
            hlt
        end
        launch guest
        secret guest 0x1000000 data fill=0x5a len=\(quadwords * 8)
        run guest
        """
    }
}
