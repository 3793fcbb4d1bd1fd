import TraceFormat

/// One core's cache: set-associative and write-back, with 64-byte lines tagged by system physical
/// address and key (the ASID of a private access, 0 for a shared or host access).
/// Lines hold plaintext; a fill decrypts with the tag's key and a write-back encrypts with it. Lines
/// of one address under different keys are different lines and are not kept coherent, as on SEV
/// hardware without SME_COHERENT: a C-bit change without a flush leaves the old line behind, and
/// its write-back can later overwrite what was written under the new C-bit.
final class Cache {
    struct Line {
        var valid = false
        var tag: UInt64 = 0
        var keyID: UInt16 = 0
        var key: EncryptionKey?
        var dirty = false
        var stamp: UInt64 = 0
        var data = [UInt64](repeating: 0, count: 8)
    }

    static let lineSize: UInt64 = 64
    let sets: Int
    let ways: Int
    private var lines: [Line]
    private var clock: UInt64 = 0
    /// The platform owns both the controller and the caches (unchecked: every fill and write-back uses it).
    unowned(unsafe) let controller: MemoryController
    /// Called for each line written back to DRAM (its address and key id).
    var onWriteBack: (UInt64, UInt16) -> Void = { _, _ in }

    init(bytes: Int, ways: Int, controller: MemoryController) {
        self.ways = ways
        sets = max(1, bytes / Int(Self.lineSize) / ways)
        lines = Array(repeating: Line(), count: sets * ways)
        self.controller = controller
    }

    /// The number of lines.
    var lineCount: Int { lines.count }

    private func set(of lineAddr: UInt64) -> Int { Int(lineAddr % UInt64(sets)) }

    private func find(_ lineAddr: UInt64, _ keyID: UInt16) -> Int? {
        let base = set(of: lineAddr) * ways
        for i in base..<base + ways where lines[i].valid && lines[i].tag == lineAddr && lines[i].keyID == keyID { return i }
        return nil
    }

    private func writeBack(_ i: Int) {
        guard lines[i].valid && lines[i].dirty else { return }
        let spa = lines[i].tag * Self.lineSize
        lines[i].data.withUnsafeBytes { p in
            try? controller.write(spa, count: 64, key: lines[i].key, from: p.baseAddress!)
        }
        lines[i].dirty = false
        onWriteBack(spa, lines[i].keyID)
    }

    /// The line holding `spa` under `keyID`, filled from DRAM on a miss (evicting the least recently used).
    private func line(_ spa: UInt64, keyID: UInt16, key: EncryptionKey?) -> Int {
        clock &+= 1
        let lineAddr = spa / Self.lineSize
        if let i = find(lineAddr, keyID) {
            lines[i].stamp = clock
            return i
        }
        let base = set(of: lineAddr) * ways
        var victim = base
        for i in base..<base + ways {
            if !lines[i].valid { victim = i; break }
            if lines[i].stamp < lines[victim].stamp { victim = i }
        }
        writeBack(victim)
        var fresh = Line(valid: true, tag: lineAddr, keyID: keyID, key: key, dirty: false, stamp: clock)
        fresh.data.withUnsafeMutableBytes { p in
            try? controller.read(lineAddr * Self.lineSize, count: 64, key: key, into: p.baseAddress!)
        }
        lines[victim] = fresh
        return victim
    }

    /// Reads `size` bytes (within one line).
    func read(_ spa: UInt64, size: Int, key: EncryptionKey?, keyID: UInt16) -> UInt64 {
        let i = line(spa, keyID: keyID, key: key)
        let offset = Int(spa % Self.lineSize)
        var v: UInt64 = 0
        lines[i].data.withUnsafeBytes { p in
            for b in 0..<size { v |= UInt64(p[offset + b]) << UInt64(8 * b) }
        }
        return v
    }

    /// Writes `size` bytes (within one line).
    func write(_ spa: UInt64, size: Int, value: UInt64, key: EncryptionKey?, keyID: UInt16) {
        let i = line(spa, keyID: keyID, key: key)
        let offset = Int(spa % Self.lineSize)
        lines[i].data.withUnsafeMutableBytes { p in
            for b in 0..<size { p[offset + b] = UInt8(truncatingIfNeeded: value >> UInt64(8 * b)) }
        }
        lines[i].dirty = true
    }

    /// A device's access snoops the unkeyed line of the address: a dirty one is written back first, and
    /// a device write invalidates it.
    func snoop(_ spa: UInt64, invalidate: Bool) {
        guard let i = find(spa / Self.lineSize, 0) else { return }
        writeBack(i)
        if invalidate { lines[i].valid = false }
    }

    /// CLFLUSH of the lines of `[spa, spa + count)` tagged `keyID`: written back if dirty, then invalidated.
    /// Returns how many lines it found.
    @discardableResult
    func flush(_ spa: UInt64, count: Int, keyID: UInt16) -> Int {
        var found = 0
        var lineAddr = spa / Self.lineSize
        while lineAddr * Self.lineSize < spa + UInt64(count) {
            if let i = find(lineAddr, keyID) {
                writeBack(i)
                lines[i].valid = false
                found += 1
            }
            lineAddr += 1
        }
        return found
    }

    /// Another core reads the line of `spa` under `keyID`: a dirty copy here is written back so the
    /// reader fills what was last written, and stays here, clean.
    func share(_ spa: UInt64, keyID: UInt16) {
        guard let i = find(spa / Self.lineSize, keyID) else { return }
        writeBack(i)
    }

    /// WBINVD: every dirty line written back, every line invalidated.
    func writeBackAndInvalidateAll() {
        for i in lines.indices where lines[i].valid {
            writeBack(i)
            lines[i].valid = false
        }
    }
}
