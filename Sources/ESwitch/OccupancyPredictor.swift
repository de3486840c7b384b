import Packet

/// The `predictive` model's answer to "will the hardware hold this rule?", given with
/// no hardware access: the driver's own count of what the rules it admitted take.
/// A rule counts from its admission until the firmware has taken it out of the
/// hardware (or the hardware refused it), so that a removal still queued is never
/// counted as free room: the model overestimates rather than guesses.
struct OccupancyPredictor {
    /// What one admitted rule was counted as.
    struct Charge {
        var table: HardwareTable
        var units: Int
        var mask: FlowKey
    }

    private(set) var charges: [UInt64: Charge] = [:]
    private var maskedUnits = 0
    private var exactUnits = 0
    private var maskUsers: [FlowKey: Int] = [:]
    // Flat: rules per object type against fixed partitions.
    private var narrowMasked = 0
    private var wideMasked = 0

    /// Admits `rule` (and counts it) or says which limit it would pass.
    mutating func admit(_ rule: HardwareRule, tables: HardwareTables, model: PredictiveModel) -> OffloadFailure? {
        let newMask = maskUsers[rule.mask.bits] == nil
        if newMask && maskUsers.count + 1 > tables.maskPool.size { return .noSpace(table: "masks (predicted)") }
        if charges.count + 1 > tables.counterPool.size { return .noSpace(table: "counters (predicted)") }
        switch model {
        case .flat:
            if let f = flatLimit(rule, tables) { return f }
        case .complex:
            if let f = complexLimit(rule, tables) { return f }
        }
        charges[rule.id] = Charge(table: rule.table, units: rule.units, mask: rule.mask.bits)
        if rule.table == .exact { exactUnits += rule.units } else { maskedUnits += rule.units }
        if rule.table != .exact { if rule.units > 1 { wideMasked += 1 } else { narrowMasked += 1 } }
        maskUsers[rule.mask.bits, default: 0] += 1
        return nil
    }

    /// A driver resource profile: half the masked table for single-width rules, the
    /// other half for double-width ones, and exact-match memory split evenly between
    /// flows and MAC entries. Never wrong (each partition fits), never full unless the
    /// workload has exactly the profile's mix.
    static func flatPartitions(_ t: HardwareTables) -> (narrow: Int, wide: Int, exactFlows: Int) {
        let masked = t.maskedPool.size
        return (masked / 2, (masked - masked / 2) / 2, t.exactPool.size / 2)
    }

    private func flatLimit(_ rule: HardwareRule, _ t: HardwareTables) -> OffloadFailure? {
        let p = Self.flatPartitions(t)
        switch rule.table {
        case .exact:
            if exactUnits + rule.units > p.exactFlows { return .noSpace(table: "exact (profile partition)") }
        case .masked, .chain:
            if rule.units > 1 {
                if wideMasked + 1 > p.wide { return .noSpace(table: "masked double-width (profile partition)") }
            } else if narrowMasked + 1 > p.narrow {
                return .noSpace(table: "masked (profile partition)")
            }
        }
        return nil
    }

    /// Each rule as it lands: masked vs exact table, double width, exact memory shared
    /// with the MAC entries the driver holds.
    private func complexLimit(_ rule: HardwareRule, _ t: HardwareTables) -> OffloadFailure? {
        switch rule.table {
        case .exact:
            let macs = t.exactMAC.occupancy
            let flowsLimit = min(t.exactFlows.size, t.exactPool.size - macs)
            if exactUnits + rule.units > flowsLimit { return .noSpace(table: "exact (predicted)") }
        case .masked, .chain:
            if maskedUnits + rule.units > t.maskedPool.size { return .noSpace(table: "masked (predicted)") }
        }
        return nil
    }

    /// The hardware no longer holds (or never took) an admitted rule.
    mutating func forget(_ id: UInt64) {
        guard let c = charges.removeValue(forKey: id) else { return }
        if c.table == .exact { exactUnits -= c.units } else { maskedUnits -= c.units }
        if c.table != .exact { if c.units > 1 { wideMasked -= 1 } else { narrowMasked -= 1 } }
        if let n = maskUsers[c.mask] { maskUsers[c.mask] = n > 1 ? n - 1 : nil }
    }

    /// A replacement keeps its predecessor's charge.
    mutating func transfer(from old: UInt64, to new: UInt64) {
        if let c = charges.removeValue(forKey: old) { charges[new] = c }
    }

    /// Starts over from what the hardware holds (the model was switched on).
    mutating func rebuild(from rules: some Sequence<HardwareRule>, tables: HardwareTables) {
        self = OccupancyPredictor()
        for r in rules {
            charges[r.id] = Charge(table: r.table, units: r.units, mask: r.mask.bits)
            if r.table == .exact { exactUnits += r.units } else { maskedUnits += r.units }
            if r.table != .exact { if r.units > 1 { wideMasked += 1 } else { narrowMasked += 1 } }
            maskUsers[r.mask.bits, default: 0] += 1
        }
    }
}
