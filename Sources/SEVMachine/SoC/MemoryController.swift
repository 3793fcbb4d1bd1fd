/// The memory controller: the only path between the SoC and DRAM. Accesses made with a key are
/// encrypted with AES-128 per 16-byte block and a physical-address tweak. Accesses without a guest key
/// use the host's SME key in slot 0 when SME is on, and store and load plaintext when it is off.
///
/// The tweak follows what was reported for Zen 1: each set address bit `i` (4 and up) contributes a
/// fixed 128-bit value, XORed together into `T(pa)`, and a block is stored as `AES_K(P xor T(pa))`. The
/// same plaintext at two addresses gives different ciphertext; at one address it always gives the same.
public final class MemoryController {
    public let memory: PhysicalMemory
    /// Key slots by ASID; slot 0 is the host's (SME) key, empty while SME is off.
    private var slots: [EncryptionKey?]
    /// Slot 0's schedule, kept apart for the hot path: what every access without a guest key is
    /// encrypted with (the slot keeps the key alive).
    private var hostKey: KeySchedule?
    /// The per-bit tweak constants: the low halves at 0..<64, the high halves at 64..<128. A fixed
    /// allocation rather than arrays, so the hot path reads them without reference counting.
    private let tweaks: UnsafeMutablePointer<UInt64>

    public init(memory: PhysicalMemory, asidCount: Int) {
        self.memory = memory
        slots = Array(repeating: nil, count: asidCount)
        // Fixed per-bit tweak constants: AES under an all-zero key of the bit number. Any fixed values
        // serve; these are reproducible and look random.
        let k = EncryptionKey(bytes: [UInt8](repeating: 0, count: 16))
        var lo = [UInt64](repeating: 0, count: 64), hi = [UInt64](repeating: 0, count: 64)
        for bit in 4..<64 {
            var block = [UInt8](repeating: 0, count: 16)
            block[0] = UInt8(bit)
            block = k.encryptBlock(block)
            for i in 0..<8 {
                lo[bit] |= UInt64(block[i]) << UInt64(8 * i)
                hi[bit] |= UInt64(block[8 + i]) << UInt64(8 * i)
            }
        }
        tweaks = .allocate(capacity: 128)
        tweaks.initialize(repeating: 0, count: 128)
        for bit in 0..<64 {
            tweaks[bit] = lo[bit]
            tweaks[64 + bit] = hi[bit]
        }
    }

    deinit { tweaks.deallocate() }

    /// The key loaded for `asid`, if any.
    public func key(forASID asid: UInt16) -> EncryptionKey? {
        Int(asid) < slots.count ? slots[Int(asid)] : nil
    }

    /// Counts the changes of any slot: a holder of a key taken from a slot takes it again once this moved.
    public private(set) var keyGeneration: UInt64 = 0

    /// Loads a key into an ASID's slot (what ACTIVATE does), or clears it.
    public func setKey(_ key: EncryptionKey?, forASID asid: UInt16) {
        keyGeneration &+= 1
        slots[Int(asid)] = key
        if asid == 0 { hostKey = key?.schedule }
    }

    @inline(__always)
    private func tweak(_ pa: UInt64) -> (UInt64, UInt64) {
        var lo: UInt64 = 0, hi: UInt64 = 0
        var bits = pa & ~0xF
        while bits != 0 {
            let i = bits.trailingZeroBitCount
            lo ^= tweaks[i]
            hi ^= tweaks[64 + i]
            bits &= bits - 1
        }
        return (lo, hi)
    }

    /// Loads the 16-byte block at `blockPA` into `buf`, decrypting it with `key` when there is one.
    @inline(__always)
    private func loadBlock(_ blockPA: UInt64, _ buf: UnsafeMutablePointer<UInt64>, key: KeySchedule?) {
        memory.load(blockPA, into: buf, count: 16)
        if let key {
            key.decrypt(UnsafeMutableRawPointer(buf).assumingMemoryBound(to: UInt8.self))
            let (lo, hi) = tweak(blockPA)
            buf[0] ^= lo.littleEndian
            buf[1] ^= hi.littleEndian
        }
    }

    /// Stores the plaintext block in `buf` at `blockPA`, encrypting it with `key` when there is one.
    @inline(__always)
    private func storeBlock(_ blockPA: UInt64, _ buf: UnsafeMutablePointer<UInt64>, key: KeySchedule?) {
        if let key {
            let (lo, hi) = tweak(blockPA)
            buf[0] ^= lo.littleEndian
            buf[1] ^= hi.littleEndian
            key.encrypt(UnsafeMutableRawPointer(buf).assumingMemoryBound(to: UInt8.self))
        }
        memory.store(blockPA, from: buf, count: 16)
    }

    /// Reads `count` bytes at `spa` into `out`.
    public func read(_ spa: UInt64, count: Int, key: EncryptionKey?, into out: UnsafeMutableRawPointer) throws(MachineError) {
        try read(spa, count: count, schedule: key?.schedule, into: out)
    }

    /// The same, with the key as the memory path passes it.
    @inline(__always)
    func read(_ spa: UInt64, count: Int, schedule key: KeySchedule?, into out: UnsafeMutableRawPointer) throws(MachineError) {
        try memory.check(spa, count)
        guard let key = key ?? hostKey else {
            memory.load(spa, into: out, count: count)
            return
        }
        var block: (UInt64, UInt64) = (0, 0)
        withUnsafeMutablePointer(to: &block) { b in
            let buf = UnsafeMutableRawPointer(b).assumingMemoryBound(to: UInt64.self)
            var done = 0
            while done < count {
                let pa = spa + UInt64(done)
                let blockPA = pa & ~0xF
                let offset = Int(pa - blockPA)
                let n = min(16 - offset, count - done)
                loadBlock(blockPA, buf, key: key)
                (out + done).copyMemory(from: UnsafeRawPointer(buf) + offset, byteCount: n)
                done += n
            }
        }
    }

    /// Writes `count` bytes from `src` at `spa` (read-modify-write of partial blocks under a key).
    public func write(_ spa: UInt64, count: Int, key: EncryptionKey?, from src: UnsafeRawPointer) throws(MachineError) {
        try write(spa, count: count, schedule: key?.schedule, from: src)
    }

    /// The same, with the key as the memory path passes it.
    @inline(__always)
    func write(_ spa: UInt64, count: Int, schedule key: KeySchedule?, from src: UnsafeRawPointer) throws(MachineError) {
        try memory.check(spa, count)
        guard let key = key ?? hostKey else {
            memory.store(spa, from: src, count: count)
            return
        }
        var block: (UInt64, UInt64) = (0, 0)
        withUnsafeMutablePointer(to: &block) { b in
            let buf = UnsafeMutableRawPointer(b).assumingMemoryBound(to: UInt64.self)
            var done = 0
            while done < count {
                let pa = spa + UInt64(done)
                let blockPA = pa & ~0xF
                let offset = Int(pa - blockPA)
                let n = min(16 - offset, count - done)
                if n < 16 { loadBlock(blockPA, buf, key: key) }
                (UnsafeMutableRawPointer(buf) + offset).copyMemory(from: src + done, byteCount: n)
                storeBlock(blockPA, buf, key: key)
                done += n
            }
        }
    }

    /// Reads a little-endian value of `size` (1 to 8) bytes.
    public func readValue(_ spa: UInt64, size: Int, key: EncryptionKey?) throws(MachineError) -> UInt64 {
        try readValue(spa, size: size, schedule: key?.schedule)
    }

    /// The same, with the key as the memory path passes it.
    @inline(__always)
    func readValue(_ spa: UInt64, size: Int, schedule key: KeySchedule?) throws(MachineError) -> UInt64 {
        var v: UInt64 = 0
        try withUnsafeMutableBytes(of: &v) { (p) throws(MachineError) in try read(spa, count: size, schedule: key, into: p.baseAddress!) }
        return UInt64(littleEndian: v)
    }

    /// Writes the low `size` (1 to 8) bytes of `value`, little-endian.
    public func writeValue(_ spa: UInt64, size: Int, value: UInt64, key: EncryptionKey?) throws(MachineError) {
        try writeValue(spa, size: size, value: value, schedule: key?.schedule)
    }

    /// The same, with the key as the memory path passes it.
    @inline(__always)
    func writeValue(_ spa: UInt64, size: Int, value: UInt64, schedule key: KeySchedule?) throws(MachineError) {
        var v = value.littleEndian
        try withUnsafeBytes(of: &v) { (p) throws(MachineError) in try write(spa, count: size, schedule: key, from: p.baseAddress!) }
    }

    /// Reads bytes.
    public func readBytes(_ spa: UInt64, count: Int, key: EncryptionKey?) throws(MachineError) -> [UInt8] {
        try memory.check(spa, count)
        var out = [UInt8](repeating: 0, count: count)
        if count > 0 { out.withUnsafeMutableBytes { try! read(spa, count: count, key: key, into: $0.baseAddress!) } }
        return out
    }

    /// Writes bytes.
    public func writeBytes(_ spa: UInt64, _ bytes: [UInt8], key: EncryptionKey?) throws(MachineError) {
        try memory.check(spa, bytes.count)
        if !bytes.isEmpty { bytes.withUnsafeBytes { try! write(spa, count: bytes.count, key: key, from: $0.baseAddress!) } }
    }
}
