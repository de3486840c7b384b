/// Units the driver has reserved from the hardware's pools ahead of the rules that
/// will use them (the `prefetch` and `credit` models): taking from the stock costs no
/// hardware access. The units count as occupied in their pools meanwhile, so other
/// users of a shared memory (legacy MAC entries) cannot have them.
final class ReservedStock {
    private var units: [ObjectIdentifier: (pool: HardwareResource, count: Int)] = [:]

    func count(_ pool: HardwareResource) -> Int { units[ObjectIdentifier(pool)]?.count ?? 0 }

    /// Takes `n` units of `pool` from the stock, or nothing if it has fewer.
    func take(_ pool: HardwareResource, _ n: Int) -> Bool {
        let id = ObjectIdentifier(pool)
        guard let e = units[id], e.count >= n else { return false }
        units[id] = (pool, e.count - n)
        return true
    }

    /// One hardware access's worth: reserves up to `n` more units of `pool` (fewer when
    /// the pool has fewer free). Returns how many were reserved.
    @discardableResult
    func refill(_ pool: HardwareResource, by n: Int) -> Int {
        let got = max(0, min(n, pool.available))
        guard got > 0, pool.reserve(got) else { return 0 }
        units[ObjectIdentifier(pool), default: (pool, 0)].count += got
        return got
    }

    /// Gives every unit back to its pool (model change, reload, shutdown).
    func returnAll() {
        for (_, e) in units where e.count > 0 { e.pool.release(e.count) }
        units.removeAll()
    }

    var isEmpty: Bool { units.values.allSatisfy { $0.count == 0 } }
}
