/// A dirty cache line as the analyzer follows it: the labels its 64 bytes carry in the line, what memory
/// held for its four 16-byte blocks when the line was filled, and which bytes the CPU wrote since.
///
/// A write-back puts the line into memory under the key it was filled with (its key id; 0 for a C=0
/// line), and that decides what each block becomes:
/// - a block the CPU did not write goes back as the very bytes it was filled with, so memory holds
///   exactly what it held at the fill: the same labels and the same encryption state. (A line filled
///   without a key from a block encrypted under a guest key holds that guest's ciphertext, and writing it
///   back unchanged leaves the ciphertext in place: it does not become plaintext.)
/// - a written block of a keyless line replaces only the bytes written (no cipher runs); the rest stay
///   what they were, ciphertext included;
/// - a written block of a keyed line is encrypted whole under the line's key: its unwritten bytes keep
///   their labels only if the fill decrypted them under that same key (otherwise the line held garbage
///   for them, which carries nothing).
final class CachedLine {
    /// The labels and origins of the line's bytes as the line holds them.
    private(set) var sets = [LabelTable.SetID](repeating: 0, count: 64)
    private(set) var origins = [UInt64](repeating: 0, count: 64)
    /// Memory's state of each block at the fill.
    private var filled: [ShadowMemory.BlockState]
    /// Bit i: byte i was written while the line was cached.
    private var modified: UInt64 = 0

    /// A line filled from memory at `base` (64-byte aligned), before the write that dirties it.
    init(base: UInt64, from shadow: ShadowMemory) {
        filled = (0..<4).map { shadow.blockState(base + UInt64($0) * 16) }
        shadow.copy(base, count: 64, into: &sets, origins: &origins, at: 0)
    }

    /// Takes in a CPU write of `count` bytes at line offset `offset` (the shadow already holds its labels).
    func noteWrite(_ spa: UInt64, offset: Int, count: Int, from shadow: ShadowMemory) {
        guard count > 0, offset >= 0, offset + count <= 64 else { return }
        shadow.copy(spa, count: count, into: &sets, origins: &origins, at: offset)
        modified |= (count == 64 ? UInt64.max : (1 << UInt64(count)) - 1) << UInt64(offset)
    }

    /// Writes the line back into `shadow` at `base` under key id `keyID`.
    func writeBack(to shadow: ShadowMemory, base: UInt64, keyID: UInt16) {
        var sets = self.sets, origins = self.origins
        var blocks = filled
        for b in 0..<4 {
            let written = UInt16(truncatingIfNeeded: modified >> UInt64(16 * b))
            guard written != 0 else { continue }  // unchanged: memory gets back what it held
            var state = filled[b]
            if keyID == 0 {
                if state.encryptedBy != 0 {
                    state.overwritten |= written
                    if state.overwritten == 0xFFFF { (state.encryptedBy, state.overwritten) = (0, 0) }
                }
            } else {
                for j in 0..<16 where written & (1 << UInt16(j)) == 0 {
                    let decrypted = filled[b].encryptedBy == keyID && filled[b].overwritten & (1 << UInt16(j)) == 0
                    if !decrypted { (sets[16 * b + j], origins[16 * b + j]) = (0, 0) }
                }
                (state.encryptedBy, state.overwritten) = (keyID, 0)
            }
            state.measured = false
            state.clear = keyID == 0
            blocks[b] = state
        }
        shadow.writeLine(base, sets: sets, origins: origins, blocks: blocks)
    }
}
