import SEVMachine
import TraceFormat

/// What a statement that may fail came to: success, a firmware status, an errno from KVM (with the
/// firmware status behind an `EIO`), or the guest owner's refusal. `expect=` is matched against it.
struct Outcome: CustomStringConvertible {
    /// 0, or the errno KVM returned (positive).
    var errno: Int32 = 0
    /// The firmware's status: of a command issued directly, or the one KVM reported with `EIO`.
    var firmware: SEVStatus?
    var refused = false

    static let ok = Outcome()

    var isSuccess: Bool { errno == 0 && !refused && (firmware == nil || firmware == .success) }

    var description: String {
        if refused { return "REFUSED" }
        if isSuccess { return "ok" }
        let status = firmware.map { $0.description }
        guard errno != 0 else { return status ?? "ok" }
        return Errno.name(of: errno) + (status.map { " (\($0))" } ?? "")
    }

    /// Whether `expect` names this outcome: `ok` (or `SUCCESS`), `REFUSED`, a firmware status
    /// (`INVALID_GUEST_STATE`), an errno by name (`EINVAL`) or by number (`errno22`, `errno 22`). Case does
    /// not matter.
    func matches(_ expect: String) -> Bool {
        let e = expect.uppercased().filter { !$0.isWhitespace }
        if e == "OK" || e == "SUCCESS" { return isSuccess }
        if e == "REFUSED" { return refused }
        if let n = Self.errnoNumber(e) { return errno == n }
        if let named = Errno(name: e) { return errno == named.rawValue }
        return firmware?.description == e
    }

    /// N in `ERRNON`.
    private static func errnoNumber(_ e: String) -> Int32? {
        guard e.hasPrefix("ERRNO") else { return nil }
        return Int32(e.dropFirst(5))
    }

    /// Whether `expect` is a form ``matches(_:)`` understands.
    static func isKnown(_ expect: String) -> Bool {
        let e = expect.uppercased().filter { !$0.isWhitespace }
        return ["OK", "SUCCESS", "REFUSED"].contains(e) || errnoNumber(e) != nil || Errno(name: e) != nil
            || SEVStatus.allCases.contains { $0.description == e }
    }
}
