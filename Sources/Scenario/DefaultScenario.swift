/// The scenario `sev-trace record` runs when given none.
public enum DefaultScenario {
    public static let name = "default"

    public static let text = #"""
    # The default scenario: a guest NIC driver that leaks a key.
    #
    # The guest keeps a 32-byte disk key in private memory. Its network driver builds a frame in the TX
    # buffer, a page the guest kernel mapped decrypted at boot so the NIC can read it by DMA. The driver
    # copies from the wrong source: four quadwords of the key instead of the payload. The NIC then sends
    # the frame, and a curious hypervisor reads the page holding the key (it only gets ciphertext).

    platform cbit=47 asids=15 memory=64M api=0.17 build=48
    vm guest memory=4M policy=0x1
    device nic0

    shared guest 0x200000 pages=1                 # the TX buffer: C=0 in the guest page table
    data guest 0x180000 text="GET /index.html HTTP/1.1\r\n\r\n"

    program guest at=0x100000
        mov r1, 0x200000                          # destination: the TX buffer
        mov r2, 0x300000                          # source: should be 0x180000, is the key
        mov r3, 4                                 # quadwords
        copy r1, r2, r3                           # rep movsq
        hlt
    end

    launch guest
    secret guest 0x300000 disk-key hex="6b3a 9f0e 21d4 c785 0a5e 33f1 9b27 64d0 e8c1 5f92 0377 ab4e 1d6c 8f05 92ba 47e3"
    run guest
    dma nic0 read guest 0x200000 32
    hv read guest 0x300000 16
    """#
}
