/// A reference that does not keep its object alive, for an object that outlives its holder (a child
/// pointing back at its owner), and that a hot path can use without any reference counting.
///
/// `unowned(unsafe)` alone does not give that: each call through such a reference copies it into a
/// strong one, a retain and a release around the call. ``with(_:)`` lends the object for the call only.
struct Unretained<Object: AnyObject> {
    private let reference: Unmanaged<Object>

    init(_ object: Object) { reference = .passUnretained(object) }

    /// The object, as a strong reference (for paths where a retain does not matter).
    @inline(__always)
    var object: Object { reference.takeUnretainedValue() }

    /// Calls `body` with the object, lent without a retain.
    @inline(__always)
    func with<Result, Failure: Error>(_ body: (Object) throws(Failure) -> Result) throws(Failure) -> Result {
        var outcome: Swift.Result<Result, Failure>?
        reference._withUnsafeGuaranteedRef { object in
            outcome = Swift.Result { () throws(Failure) -> Result in try body(object) }
        }
        return try outcome!.get()
    }
}
