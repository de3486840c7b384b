/// Every rule the driver accepted and has not discarded, whatever its state: an array,
/// each rule knowing its place in it. Membership, adding and removing take no hashing
/// (a dictionary by rule id cost a hash a look-up and, at a million rules, a cache miss
/// and rehashes as it grew). The order is no order: a removal moves the last rule into
/// the gap.
public struct HeldRules {
    private var items: [HardwareRule] = []

    public var count: Int { items.count }
    public var isEmpty: Bool { items.isEmpty }
    /// The rules, as an array of their own (safe to walk while rules come and go).
    public var values: [HardwareRule] { items }

    func holds(_ r: HardwareRule) -> Bool {
        r.heldIndex >= 0 && r.heldIndex < items.count && items[r.heldIndex] === r
    }

    mutating func add(_ r: HardwareRule) {
        r.heldIndex = items.count
        items.append(r)
    }

    mutating func remove(_ r: HardwareRule) {
        guard holds(r) else { return }
        let i = r.heldIndex
        let last = items.removeLast()
        if last !== r {
            items[i] = last
            last.heldIndex = i
        }
        r.heldIndex = -1
        // An emptied array keeps its storage (megabytes after a million rules).
        if items.isEmpty && items.capacity > 4096 { items = [] }
    }

    /// `new` takes `old`'s place (a replacement, or undoing one).
    mutating func swap(out old: HardwareRule, in new: HardwareRule) {
        guard holds(old) else { return add(new) }
        new.heldIndex = old.heldIndex
        items[old.heldIndex] = new
        old.heldIndex = -1
    }

    mutating func removeAll() {
        for r in items { r.heldIndex = -1 }
        items = []
    }
}
