/// The bounds a reader holds a bundle to before it allocates or loops on anything the bundle says, and
/// that writers keep so that every trace they write passes them.
///
/// A bundle is untrusted input: a number read from a header or a decoded event is checked against one
/// of these before it sizes an allocation, a loop or an address range.
public enum TraceLimits {
    /// The largest header body (tool version, scenario name and text): 4 MiB.
    public static let maxHeaderBodyBytes = 4 << 20
    /// The chunk-size targets a header may state: 256 bytes to 64 MiB.
    public static let chunkBytesRange: ClosedRange<UInt32> = 256...(64 << 20)
    /// The zstd levels a header may state.
    public static let compressionLevelRange: ClosedRange<Int32> = -7...22
    /// How far past its target a chunk's encoded length may go: the largest single encoded event.
    public static let maxEventBytes = 1 << 20
    /// The largest memory access an event may describe (a 16-byte instruction fetch is the largest the
    /// simulator makes; a cache line bounds them all).
    public static let maxAccessBytes: UInt32 = 64
    /// The largest range one event may cover (a secret, a hand-over, an NPT change): 16 GiB, the
    /// largest simulated memory.
    public static let maxRangeBytes: UInt64 = 16 << 30
    /// The largest secret one event may declare (scenarios are held to it whatever their own limits).
    public static let maxSecretBytes: UInt64 = 256 << 20
    /// The most image blocks an `ownerCheck` event may list (a scenario's image has one per `data` and
    /// `program` statement).
    public static let maxImageRegions = 4096
    /// The largest guest memory a `vmCreated` event may state.
    public static let maxVMMemoryBytes: UInt64 = 16 << 30

    /// The largest encoded length a chunk written with `chunkBytes` can have.
    public static func maxRawChunkBytes(chunkBytes: UInt32) -> Int { Int(chunkBytes) + maxEventBytes }
}
