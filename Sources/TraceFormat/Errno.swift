/// The errno values KVM answers with (returned negated, as the kernel does).
public enum Errno: Int32, CaseIterable, Sendable, CustomStringConvertible {
    case eperm = 1, eio = 5, ebadf = 9, enomem = 12, efault = 14, ebusy = 16, einval = 22, enotty = 25

    /// The C name: `EIO`, `EINVAL`…
    public var description: String {
        switch self {
        case .eperm: "EPERM"
        case .eio: "EIO"
        case .ebadf: "EBADF"
        case .enomem: "ENOMEM"
        case .efault: "EFAULT"
        case .ebusy: "EBUSY"
        case .einval: "EINVAL"
        case .enotty: "ENOTTY"
        }
    }

    /// The name of an errno value (`errno N` for one KVM does not answer with); 0 is `ok`.
    public static func name(of value: Int32) -> String {
        value == 0 ? "ok" : Errno(rawValue: value)?.description ?? "errno \(value)"
    }

    /// The errno of a C name (any case).
    public init?(name: String) {
        guard let e = Self.allCases.first(where: { $0.description == name.uppercased() }) else { return nil }
        self = e
    }
}
