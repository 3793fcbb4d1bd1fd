#if canImport(Glibc)
import Glibc
#endif

/// The platform's DRAM: what is stored there is exactly what the memory controller wrote, ciphertext
/// for private lines and plaintext for shared ones.
public final class PhysicalMemory {
    /// Bytes of memory.
    public let size: UInt64
    private let base: UnsafeMutableRawPointer
    /// One bit per 4 KiB page: whether anything was ever stored there (what the host knows as a
    /// populated page).
    private var populated: [UInt64]

    /// Maps `size` zeroed bytes that the kernel backs only as they are touched (MAP_NORESERVE), so that
    /// even the largest memory a scenario may ask for costs only what the simulation writes. Scenarios
    /// are held to ``MachineLimits/maxMemoryBytes`` before any platform exists.
    public init(size: UInt64) {
        self.size = size
        let p = mmap(nil, Int(size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p, p != MAP_FAILED else { fatalError("cannot map \(size) bytes of simulated memory: address space exhausted") }
        base = p
        populated = [UInt64](repeating: 0, count: Int((size >> 12 + 63) / 64))
    }

    /// Whether page number `page` was ever written.
    public func isPopulated(page: UInt64) -> Bool {
        page < size >> 12 && populated[Int(page >> 6)] & (1 << (page & 63)) != 0
    }

    deinit { munmap(base, Int(size)) }

    @inline(__always)
    func check(_ spa: UInt64, _ count: Int) throws(MachineError) {
        guard spa < size, UInt64(count) <= size - spa else {
            throw .physicalAddressOutOfRange(spa: spa, size: count)
        }
    }

    /// Copies `count` raw bytes at `spa` into `out`.
    @inline(__always)
    func load(_ spa: UInt64, into out: UnsafeMutableRawPointer, count: Int) {
        out.copyMemory(from: base + Int(spa), byteCount: count)
    }

    /// Stores `count` raw bytes at `spa`.
    @inline(__always)
    func store(_ spa: UInt64, from src: UnsafeRawPointer, count: Int) {
        (base + Int(spa)).copyMemory(from: src, byteCount: count)
        var page = spa >> 12
        while page <= (spa + UInt64(count) - 1) >> 12 {
            populated[Int(page >> 6)] |= 1 << (page & 63)
            page += 1
        }
    }

    /// The raw bytes stored at `spa` (what a probe on the memory bus would see).
    public func rawBytes(at spa: UInt64, count: Int) throws(MachineError) -> [UInt8] {
        try check(spa, count)
        return Array(UnsafeRawBufferPointer(start: base + Int(spa), count: count))
    }
}
