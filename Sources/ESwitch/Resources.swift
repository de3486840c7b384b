import Glibc

/// Hardware resources the devlink way: a tree of named pools with a size, an occupancy
/// and a pending size that takes effect on reload. Children of a pool draw from the
/// parent's memory: their occupancies add up against the parent's size, so one child
/// can starve another (the exact-match memory shared by the MAC table and flows).
public final class HardwareResource: @unchecked Sendable {
    public let name: String
    public let unit: String
    private var ownSize: Int
    /// A child that was never resized may use all of its parent's memory.
    public private(set) var tracksParent: Bool
    public var size: Int { tracksParent ? (parent?.size ?? ownSize) : ownSize }
    public var pendingSize: Int?
    public let sizeMin: Int
    public let sizeMax: Int
    public let sizeGranularity: Int
    /// Units taken: by rules in the data plane, by rules reserved and waiting for the
    /// firmware, and by the driver's stock of reserved credits.
    public private(set) var occupancy = 0
    /// Of the occupancy, units that rules in the data plane hold now.
    public private(set) var programmed = 0
    /// Units reserved but not (or not yet) in the data plane.
    public var reserved: Int { occupancy - programmed }
    public private(set) var children: [HardwareResource] = []
    /// Not counted: the tree lives and dies with its root (HardwareTables). A weak
    /// reference paid the slow reference-counting path on every retain, a checked
    /// unowned one (and an unsafe unowned one, once loaded) an atomic retain and release
    /// at every step up the tree (each rule's reservation and programming walk it).
    private var parentRef: Unmanaged<HardwareResource>?
    public var parent: HardwareResource? { parentRef?.takeUnretainedValue() }

    public init(name: String, size: Int?, unit: String = "entry", sizeMin: Int = 0, sizeMax: Int, granularity: Int = 1) {
        self.name = name
        self.ownSize = size ?? 0
        self.tracksParent = size == nil
        self.unit = unit
        self.sizeMin = sizeMin
        self.sizeMax = sizeMax
        self.sizeGranularity = granularity
    }

    @discardableResult
    public func addChild(_ child: HardwareResource) -> HardwareResource {
        children.append(child)
        child.parentRef = Unmanaged.passUnretained(self)
        return child
    }

    /// "/exact/mac" style path.
    public var path: String { (parent.map { $0.path } ?? "") + "/" + name }

    /// Units still free here, counting what siblings already took from shared parents.
    /// One walk up the tree (asked at every rule's reservation): the size of a pool that
    /// tracks its parent comes back with the parent's answer, not from a walk of its own.
    public var available: Int { sizeAndFree().free }

    private func sizeAndFree() -> (size: Int, free: Int) {
        guard let p = parentRef else { return (ownSize, ownSize - occupancy) }
        let up = p._withUnsafeGuaranteedRef { $0.sizeAndFree() }
        let size = tracksParent ? up.size : ownSize
        return (size, min(up.free, size - occupancy))
    }

    /// Takes `units` from this pool and every ancestor, all or nothing.
    public func reserve(_ units: Int) -> Bool {
        guard units <= available else { return false }
        addOccupancy(units)
        return true
    }

    public func release(_ units: Int) { addOccupancy(-units) }

    // The walks up the tree recurse through the uncounted parent references: a loop
    // over a local variable took and gave back a reference at every step (each rule's
    // reservation and programming walk the tree).
    private func addOccupancy(_ units: Int) {
        occupancy = max(0, occupancy + units)
        parentRef?._withUnsafeGuaranteedRef { $0.addOccupancy(units) }
    }

    /// Units of this pool (and every ancestor) now held by rules in the data plane.
    public func markProgrammed(_ units: Int) {
        programmed = max(0, min(occupancy, programmed + units))
        parentRef?._withUnsafeGuaranteedRef { $0.markProgrammed(units) }
    }

    /// The pool that lacks room for `units`: this one or the ancestor that is full.
    public func exhaustedPool(for units: Int) -> HardwareResource {
        var r: HardwareResource = self
        var cur: HardwareResource? = self
        while let x = cur {
            if x.size - x.occupancy < units { r = x }
            cur = x.parent
        }
        return r
    }

    public func find(path: String) -> HardwareResource? {
        let parts = path.split(separator: "/").map(String.init)
        guard let first = parts.first, first == name else { return nil }
        var node: HardwareResource = self
        for p in parts.dropFirst() {
            guard let c = node.children.first(where: { $0.name == p }) else { return nil }
            node = c
        }
        return node
    }

    public enum SizeError: Error, Equatable, CustomStringConvertible {
        case outOfRange(path: String, size: Int, min: Int, max: Int)
        case granularity(path: String, size: Int, granularity: Int)
        case occupancyDoesNotFit(path: String, size: Int, occupancy: Int)
        case childrenExceedParent(path: String, size: Int, children: Int)
        /// The data plane could not grow its tables to the new sizes (its errno).
        case dataPlane(String, errno: Int32)

        /// What devlink reload returns: EINVAL for sizes that do not fit together (the
        /// kernel's size_valid check), ENOSPC for entries in use that would not fit, the
        /// data plane's own errno for a failed resize.
        public var errno: Int32 {
            switch self {
            case .outOfRange, .granularity, .childrenExceedParent: EINVAL
            case .occupancyDoesNotFit: ENOSPC
            case .dataPlane(_, let e): e
            }
        }

        public var description: String {
            switch self {
            case .outOfRange(let p, let s, let lo, let hi): "resource \(p): size \(s) outside \(lo)...\(hi)"
            case .granularity(let p, let s, let g): "resource \(p): size \(s) is not a multiple of \(g)"
            case .occupancyDoesNotFit(let p, let s, let o):
                "resource \(p): \(o == 1 ? "1 entry in use does" : "\(o) entries in use do") not fit in size \(s)"
            case .childrenExceedParent(let p, let s, let c): "resource \(p): size \(s) is smaller than child \(c)"
            case .dataPlane(let why, _): "the data plane cannot hold the new sizes: \(why)"
            }
        }
    }

    /// Records a new size for the next reload (devlink resource set).
    public func setPending(_ newSize: Int) throws(SizeError) {
        guard newSize >= sizeMin, newSize <= sizeMax else {
            throw .outOfRange(path: path, size: newSize, min: sizeMin, max: sizeMax)
        }
        guard newSize % sizeGranularity == 0 else {
            throw .granularity(path: path, size: newSize, granularity: sizeGranularity)
        }
        pendingSize = newSize == size ? nil : newSize
    }

    /// The size after the next reload.
    public var sizeAfterReload: Int {
        if let p = pendingSize { return p }
        if tracksParent, let parent { return parent.sizeAfterReload }
        return ownSize
    }

    /// devlink's size_valid: whether the sizes after the next reload fit together, so
    /// reload can apply them: this one within its parent's, the children's within this
    /// one. (devlink sums the children, which split their parent; here children share
    /// their parent's memory, so each one must fit on its own. A leaf bigger than its
    /// parent is invalid: reload refuses it.) Entries in use that would not fit are not
    /// a matter of sizes: reload refuses them with its own reason, as a driver does.
    public var pendingSizeValid: Bool {
        let s = sizeAfterReload
        if let parent, s > parent.sizeAfterReload { return false }
        return children.allSatisfy { $0.sizeAfterReload <= s }
    }

    /// Checks that every pending size below here fits what is in use (devlink reload).
    public func validatePending() throws(SizeError) {
        let s = sizeAfterReload
        if occupancy > s { throw .occupancyDoesNotFit(path: path, size: s, occupancy: occupancy) }
        for c in children {
            try c.validatePending()
            let cs = c.sizeAfterReload
            if cs > s { throw .childrenExceedParent(path: path, size: s, children: cs) }
        }
    }

    /// Applies pending sizes (after `validatePending` succeeded).
    public func applyPending() {
        if let p = pendingSize {
            ownSize = p
            tracksParent = false
        }
        pendingSize = nil
        for c in children { c.applyPending() }
    }

    public var all: [HardwareResource] { [self] + children.flatMap(\.all) }
}
