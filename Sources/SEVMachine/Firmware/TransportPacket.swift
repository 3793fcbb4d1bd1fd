import Crypto
import TraceFormat

/// The 52-byte packet header of LAUNCH_SECRET and SEND/RECEIVE_UPDATE_DATA: `u32 flags` (bit 0
/// COMPRESSED), `iv[16]`, `mac[32]`; the data travels as AES-128-CTR(TEK, IV) and the MAC is an
/// HMAC-SHA256 under the TIK.
///
/// - LAUNCH_SECRET: `MAC = HMAC(TIK, 0x01 || FLAGS || IV || GUEST_LENGTH || TRANS_LENGTH || TRANS || MEASURE)`
///   (the measurement is appended from API 0.17 on).
/// - SEND/RECEIVE_UPDATE_DATA: `MAC = HMAC(TIK, 0x02 || FLAGS || IV || GUEST_LENGTH || TRANS_LENGTH || TRANS)`
///   (the simulator's choice for the migration packet; the specification's exact layout is not modelled).
public enum TransportPacket {
    public static let headerSize = Header.size

    /// The packet header.
    public struct Header: BufferLayout {
        /// Bit 0: COMPRESSED.
        public var flags: UInt32 = 0
        public var iv: [UInt8] = []
        public var mac: [UInt8] = []
        public init() {}
        public static let size = 52
        public static var fields: [BufferField<Self>] { [.u32(0, \.flags), .bytes(4, count: 16, \.iv), .bytes(20, count: 32, \.mac)] }
    }

    static func le32(_ v: UInt32) -> [UInt8] { SEVKDF.le32(v) }

    /// The MAC of a packet.
    public static func mac(tik: [UInt8], kind: UInt8, flags: UInt32, iv: [UInt8], guestLength: UInt32, trans: [UInt8],
                           measurement: [UInt8] = []) -> [UInt8] {
        let message = [kind] + le32(flags) + iv + le32(guestLength) + le32(UInt32(trans.count)) + trans + measurement
        return Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: tik)))
    }

    /// The header bytes.
    public static func header(flags: UInt32, iv: [UInt8], mac: [UInt8]) -> [UInt8] {
        var h = Header()
        (h.flags, h.iv, h.mac) = (flags, iv, mac)
        return h.buffer.bytes
    }

    /// A LAUNCH_SECRET packet for `secret`, as the guest owner builds it.
    public static func launchSecret(_ secret: [UInt8], tek: [UInt8], tik: [UInt8], iv: [UInt8], measurement: [UInt8])
        -> (header: [UInt8], trans: [UInt8]) {
        let trans = AESCTR.apply(key: tek, iv: iv, secret)
        let m = mac(tik: tik, kind: 0x01, flags: 0, iv: iv, guestLength: UInt32(secret.count), trans: trans,
                    measurement: measurement)
        return (header(flags: 0, iv: iv, mac: m), trans)
    }
}
