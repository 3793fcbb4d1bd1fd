/// The caches of a platform's cores, one private write-back cache per core, kept coherent the way the
/// hardware keeps them: for lines of one address under one key. A read writes back another core's
/// dirty copy first; a write also invalidates the other copies. Lines of one address under different
/// keys stay apart, in one core or several (no SME_COHERENT). CLFLUSH and VM_PAGE_FLUSH reach every
/// core; WBINVD only the core that executes it, which is why KVM runs it on all of them.
final class CoreCaches {
    let caches: [Cache]

    init(cores: Int, bytes: Int, ways: Int, controller: MemoryController) {
        caches = (0..<max(1, cores)).map { _ in Cache(bytes: bytes, ways: ways, controller: controller) }
    }

    /// Lines per core.
    var lineCount: Int { caches[0].lineCount }

    @inline(__always)
    func read(core: Int, _ spa: UInt64, size: Int, key: EncryptionKey?, keyID: UInt16) -> UInt64 {
        if caches.count > 1 {
            for (i, other) in caches.enumerated() where i != core { other.share(spa, keyID: keyID) }
        }
        return caches[core].read(spa, size: size, key: key, keyID: keyID)
    }

    @inline(__always)
    func write(core: Int, _ spa: UInt64, size: Int, value: UInt64, key: EncryptionKey?, keyID: UInt16) {
        if caches.count > 1 {
            for (i, other) in caches.enumerated() where i != core { other.flush(spa, count: 1, keyID: keyID) }
        }
        caches[core].write(spa, size: size, value: value, key: key, keyID: keyID)
    }

    /// A device or PSP access snoops every core's unkeyed line of the address.
    func snoop(_ spa: UInt64, invalidate: Bool) {
        for cache in caches { cache.snoop(spa, invalidate: invalidate) }
    }

    /// CLFLUSH (or VM_PAGE_FLUSH): the lines tagged `keyID` leave every core's cache.
    func flush(_ spa: UInt64, count: Int, keyID: UInt16) {
        for cache in caches { cache.flush(spa, count: count, keyID: keyID) }
    }

    /// WBINVD on one core.
    func writeBackAndInvalidate(core: Int) { caches[core].writeBackAndInvalidateAll() }
}
