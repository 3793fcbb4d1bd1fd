import CAESNI

/// An ``EncryptionKey`` as each access on the memory path passes it: the address of its expanded
/// schedule and an unchecked reference to the key, so that handing a key from the vCPU through the
/// platform to the memory controller costs no reference counting.
///
/// Valid only while its key lives. A key lives while a slot of the memory controller, a cache line or
/// a firmware context holds it; whoever keeps a `KeySchedule` beyond one access (a vCPU's current key)
/// takes it again whenever the controller's key slots change (``MemoryController/keyGeneration``), and
/// whoever keeps the key past that (a cache line) keeps ``owner`` as a strong reference.
struct KeySchedule {
    let expanded: UnsafePointer<caesni_key128>
    /// The key itself, for the caches, which keep the key of each line they hold.
    unowned(unsafe) let owner: EncryptionKey

    init(expanded: UnsafeMutablePointer<caesni_key128>, owner: EncryptionKey) {
        self.expanded = UnsafePointer(expanded)
        self.owner = owner
    }

    /// Encrypts one block in place.
    @inline(__always)
    func encrypt(_ block: UnsafeMutablePointer<UInt8>) { caesni_encrypt_block(expanded, block, block) }

    /// Decrypts one block in place.
    @inline(__always)
    func decrypt(_ block: UnsafeMutablePointer<UInt8>) { caesni_decrypt_block(expanded, block, block) }
}
