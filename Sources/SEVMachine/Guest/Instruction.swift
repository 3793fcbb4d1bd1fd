import TraceFormat

/// The guest instruction set: fixed 16-byte instructions (one AES block, so one fetch):
/// byte 0 opcode, bytes 1-3 register operands a, b, c, byte 4 access width in bytes, bytes 8-15 a
/// little-endian 64-bit immediate. Registers r0-r15 stand for RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI,
/// R8-R15 where an instruction gives them x86 meaning (CPUID, RDMSR, VMMCALL).
public struct Instruction: Equatable, Sendable {
    /// Every instruction is this long.
    public static let size = 16
    /// Registers r0-r15 are architectural; 16 is the string-copy data latch that `copy` moves data through.
    public static let registerCount = 16
    public static let copyLatch: UInt8 = 16
    /// The PSP's data path: what a firmware command reads for itself and then writes (LAUNCH_UPDATE_DATA,
    /// DBG_*, COPY), so taint can follow data through the firmware.
    public static let pspData: UInt8 = 17
    /// The PSP's transport path: data under the transport key (LAUNCH_SECRET and SEND/RECEIVE packets).
    public static let pspTransport: UInt8 = 18
    /// The host's copy path: a `memcpy` by the hypervisor or VMM. Each write on it names, in its `gva`,
    /// the (traced) address its bytes were read from, so taint can follow the host's own copies.
    public static let hostCopy: UInt8 = MemoryAccess.hostCopyRegister
    /// Where the guest kernel keeps a caller's RAX, RBX, RCX and RDX around a hypercall it makes itself
    /// (registers 20-23): the save is register moves, not recorded stack traffic.
    public static let kernelSave: UInt8 = MemoryAccess.kernelSaveRegister

    public enum Opcode: UInt8, CaseIterable, Sendable {
        /// `mov rA, imm`
        case movImmediate = 0x01
        /// `mov rA, rB`
        case move = 0x02
        /// `add/sub/xor/and/or rA, rB`: rA = rA op rB
        case add = 0x03, sub = 0x04, xor = 0x05, and = 0x06, or = 0x07
        /// `add rA, imm`
        case addImmediate = 0x08
        /// `load.W rA, [rB + imm]`
        case load = 0x10
        /// `store.W [rA + imm], rB`
        case store = 0x11
        /// `copy rA, rB, rC`: copy rC quadwords from [rB] to [rA] (rep movsq): rA and rB advance, rC ends at 0.
        case copy = 0x12
        /// `jmp imm`
        case jump = 0x20
        /// `jnz rA, imm`
        case jumpIfNotZero = 0x21
        /// `jz rA, imm`
        case jumpIfZero = 0x22
        /// `set_memory_decrypted rA, imm`: the guest kernel clears the C-bit of imm pages from the address in rA.
        case setMemoryDecrypted = 0x30
        /// `set_memory_encrypted rA, imm`: the guest kernel sets the C-bit again.
        case setMemoryEncrypted = 0x31
        /// `set_memory_decrypted_noflush rA, imm`: a buggy kernel that flips the C-bit without flushing the
        /// page's cache lines first.
        case setMemoryDecryptedNoFlush = 0x34
        /// `dma_map_single rA, rB, rC`: SWIOTLB bounce towards a device: the kernel declares the hand-over
        /// of rC bytes, then copies them from the private buffer [rB] into the bounce slot [rA].
        case dmaMapSingle = 0x32
        /// `dma_unmap_single rA, rB, rC`: SWIOTLB bounce from a device: copy rC bytes from the bounce slot
        /// [rB] into the private buffer [rA].
        case dmaUnmapSingle = 0x33
        /// `out.W PORT, rA`: write the low W bytes of rA to an I/O port (a #VMEXIT).
        case out = 0x40
        /// `in.W rA, PORT`: read an I/O port into rA (a #VMEXIT; the hypervisor supplies the value).
        case input = 0x41
        /// `outs PORT, rA, rC`: `rep outsb`, rC bytes from [rA] (the hypervisor emulates it by reading guest memory).
        case outs = 0x42
        /// `ins PORT, rA, rC`: `rep insb`, rC bytes into [rA] (the hypervisor writes guest memory).
        case ins = 0x43
        /// `vmmcall`: a hypercall, number in r0 (RAX), arguments in r3, r1, r2 (RBX, RCX, RDX).
        case vmmcall = 0x50
        /// `cpuid`: leaf in r0 (EAX); results in r0, r3, r1, r2 (EAX, EBX, ECX, EDX).
        case cpuid = 0x51
        /// `rdmsr`: MSR number in r1 (ECX); value in r2:r0 (EDX:EAX).
        case rdmsr = 0x52
        /// `wrmsr`: MSR number in r1 (ECX), value in r2:r0 (EDX:EAX).
        case wrmsr = 0x53
        /// `hlt`
        case halt = 0xF0
    }

    public var opcode: Opcode
    public var a: UInt8
    public var b: UInt8
    public var c: UInt8
    public var width: UInt8
    public var immediate: UInt64

    public init(_ opcode: Opcode, a: UInt8 = 0, b: UInt8 = 0, c: UInt8 = 0, width: UInt8 = 0, immediate: UInt64 = 0) {
        self.opcode = opcode
        self.a = a
        self.b = b
        self.c = c
        self.width = width
        self.immediate = immediate
    }

    /// The instruction's 16 bytes.
    public var encoded: [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.size)
        out[0] = opcode.rawValue
        out[1] = a
        out[2] = b
        out[3] = c
        out[4] = width
        for i in 0..<8 { out[8 + i] = UInt8(truncatingIfNeeded: immediate >> UInt64(8 * i)) }
        return out
    }

    /// Decodes two little-endian quadwords fetched from memory; nil when they are no valid instruction.
    public static func decode(_ lo: UInt64, _ hi: UInt64) -> Instruction? {
        guard let op = Opcode(rawValue: UInt8(truncatingIfNeeded: lo)) else { return nil }
        let a = UInt8(truncatingIfNeeded: lo >> 8), b = UInt8(truncatingIfNeeded: lo >> 16)
        let c = UInt8(truncatingIfNeeded: lo >> 24), width = UInt8(truncatingIfNeeded: lo >> 32)
        guard a < registerCount, b < registerCount, c < registerCount, lo >> 40 == 0 else { return nil }
        if op == .load || op == .store {
            guard width == 1 || width == 2 || width == 4 || width == 8 else { return nil }
        } else if op == .out || op == .input {
            guard width == 1 || width == 2 || width == 4 else { return nil }
        } else if width != 0 {
            return nil
        }
        return Instruction(op, a: a, b: b, c: c, width: width, immediate: hi)
    }
}
