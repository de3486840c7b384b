/// A way back to an object for what must not keep it alive (a handler its owner hands
/// to another object, a tracker that follows a datapath). Not a weak reference: one
/// gives its target a side table, and every retain of the target (several a flow put)
/// the runtime's slow path. The target clears it when it goes (`deinit`); used on one
/// thread (the control thread).
public final class BackReference<Target: AnyObject>: @unchecked Sendable {
    public var target: Unmanaged<Target>?

    public init() {}

    /// The target, if it is still there.
    public var object: Target? { target?.takeUnretainedValue() }
}
