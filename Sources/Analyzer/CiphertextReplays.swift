/// What CIPHERTEXT_REPLAY needs to know: the ciphertext the host and devices read from private memory,
/// by 8-byte granule, and the blocks they later wrote back with it.
///
/// Memory encryption ties a block's ciphertext to its address, not to a time: written back at the same
/// address, an old ciphertext decrypts to the old plaintext, and plain SEV has no integrity or freshness
/// check to notice (SEV-SNP's RMP does). A 16-byte block counts as replayed when both of its halves are
/// written back, one right after the other, with ciphertext that was read from them at one version of
/// the block; it is a rollback when the guest had changed the block since. Only the first
/// ``maxGranules`` granules read are remembered, each with its last ``perGranule`` ciphertexts.
struct CiphertextReplays {
    /// The most 8-byte granules whose ciphertext is remembered.
    static let maxGranules = 1 << 18
    /// The most ciphertexts remembered per granule.
    static let perGranule = 4

    /// A ciphertext read from a private granule, with what the block then held.
    struct Observation {
        var value: UInt64
        var asid: UInt16
        /// The block's version when it was read.
        var version: UInt32
        var sets: SIMD8<UInt32>
        /// Where the first labelled byte's data came from.
        var origin: UInt64
        var seq: UInt64
        var state: ShadowMemory.BlockState
    }

    /// A block whose two halves got back ciphertext read from it earlier.
    struct Replay {
        /// The block's address (16-aligned).
        var spa: UInt64
        var state: ShadowMemory.BlockState
        var sets: [LabelTable.SetID]
        var origins: [UInt64]
        /// Whether the guest had changed the block since the ciphertext was read (a rollback), rather
        /// than the host writing back what the block held anyway.
        var rollback: Bool
        /// The read that captured the ciphertext and the write that completed the replay.
        var readSeq: UInt64
        var writeSeq: UInt64
    }

    private var observed: [UInt64: [Observation]] = [:]
    /// Halves written back with an observed ciphertext, waiting for the other half: the observation, the
    /// block's version before and after the write.
    private var halves: [UInt64: (observation: Observation, before: UInt32, after: UInt32)] = [:]
    /// Blocks (spa >> 4) that now hold an older version of their contents, until the guest writes them.
    private(set) var rolledBack: [UInt64: Replay] = [:]

    /// Remembers the ciphertext `value` read from the 8-byte granule at `spa`.
    mutating func observe(spa: UInt64, value: UInt64, asid: UInt16, version: UInt32, sets: SIMD8<UInt32>,
                          origin: UInt64, seq: UInt64, state: ShadowMemory.BlockState) {
        guard spa & 7 == 0 else { return }
        let o = Observation(value: value, asid: asid, version: version, sets: sets, origin: origin, seq: seq, state: state)
        if var list = observed[spa] {
            list.removeAll { $0.value == value && $0.asid == asid }
            list.append(o)
            if list.count > Self.perGranule { list.removeFirst(list.count - Self.perGranule) }
            observed[spa] = list
        } else if observed.count < Self.maxGranules {
            observed[spa] = [o]
        }
    }

    /// The earlier read of ciphertext `value` under `asid` at `spa`, if there was one.
    func match(spa: UInt64, value: UInt64, asid: UInt16) -> Observation? {
        guard spa & 7 == 0 else { return nil }
        return observed[spa]?.last { $0.value == value && $0.asid == asid }
    }

    /// Takes in a keyless 8-byte write at `spa` into a private block (`match` is its earlier read, if the
    /// value was one), with the block's version before and after it. Returns the replay it completes.
    mutating func wrote(spa: UInt64, match: Observation?, before: UInt32, after: UInt32, seq: UInt64) -> Replay? {
        let block = spa >> 4
        guard let match, spa & 7 == 0 else {
            halves.removeValue(forKey: spa & ~7)
            rolledBack.removeValue(forKey: block)
            return nil
        }
        let sibling = spa ^ 8
        guard let other = halves[sibling], other.after == before, other.observation.version == match.version,
              other.observation.asid == match.asid else {
            halves[spa] = (match, before, after)
            return nil
        }
        halves.removeValue(forKey: sibling)
        halves.removeValue(forKey: spa)
        let (low, high) = spa & 8 == 0 ? (match, other.observation) : (other.observation, match)
        var sets = [LabelTable.SetID](repeating: 0, count: 16), origins = [UInt64](repeating: 0, count: 16)
        for i in 0..<8 {
            (sets[i], origins[i]) = (low.sets[i], low.sets[i] != 0 ? low.origin : 0)
            (sets[8 + i], origins[8 + i]) = (high.sets[i], high.sets[i] != 0 ? high.origin : 0)
        }
        let replay = Replay(spa: block << 4, state: match.state, sets: sets, origins: origins,
                            rollback: other.before != match.version, readSeq: min(low.seq, high.seq), writeSeq: seq)
        if replay.rollback { rolledBack[block] = replay } else { rolledBack.removeValue(forKey: block) }
        return replay
    }

    /// The guest wrote the block containing `spa`: it no longer holds the replayed contents.
    mutating func guestWrote(_ spa: UInt64) {
        if !rolledBack.isEmpty { rolledBack.removeValue(forKey: spa >> 4) }
    }
}
