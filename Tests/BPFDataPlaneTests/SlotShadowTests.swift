@testable import BPFDataPlane
import Testing

/// The slot shadow against a dictionary doing the same: random queues, writes (queued
/// entries settled where they were queued), removals and shrinks over a small fingerprint space (so that probe runs collide, wrap around
/// the table's end, pass deleted entries and meet rebuilds).
struct SlotShadowTests {
    struct Model: Equatable {
        var state: SlotShadow.State
        var counter: UInt32
        var actionSet: UInt32
        var flags: UInt32
    }

    /// Fingerprints whose low bits collide a lot: table positions are their low bits.
    static func fingerprint(_ n: UInt64) -> Fingerprint { Fingerprint((n % 7) | (n / 7) << 40) }

    /// A flush empties the shadow in place with rules still marked queued (their writes
    /// are dropped): their places are stale after it, and the shadow is empty.
    @Test func aResetWithRulesQueuedLeavesTheirPlacesStale() {
        let shadow = SlotShadow()
        var places: [SlotShadow.Place] = []
        for n in 0..<100 as Range<UInt64> {
            places.append(shadow.markQueued(Self.fingerprint(n), BPFDataPlane.Slot(actionSet: 1, counter: UInt32(n), flags: 0)))
        }
        shadow.reset()
        #expect(shadow.isEmpty && shadow.capacity == SlotShadow.minimumCapacity)
        for at in places { #expect(!shadow.markWritten(at)) }
        #expect(shadow.find(Self.fingerprint(5)) == nil)
    }

    @Test func agreesWithADictionary() {
        var rng = SystemRandomNumberGenerator()
        let shadow = SlotShadow()
        var model: [UInt64: Model] = [:]
        var places: [UInt64: SlotShadow.Place] = [:]
        var settledInPlace = 0
        for step in 0..<200_000 {
            let n = UInt64.random(in: 0..<3000, using: &rng)
            let f = Self.fingerprint(n)
            let slot = BPFDataPlane.Slot(actionSet: UInt32.random(in: 0..<65536, using: &rng),
                                         counter: UInt32(step), flags: UInt32.random(in: 0..<4, using: &rng))
            switch Int.random(in: 0..<10, using: &rng) {
            case 0..<3:
                // Queued only where nothing holds the slot (as BPFDataPlane.queue does).
                if model[f.value] == nil {
                    places[f.value] = shadow.markQueued(f, slot)
                    model[f.value] = Model(state: .queued, counter: slot.counter, actionSet: slot.actionSet, flags: slot.flags)
                }
            case 3..<6:
                // A queued entry settles where it was queued (unless a rebuild moved it),
                // keeping what it was queued with; any other is written with `slot`.
                if var m = model[f.value], m.state == .queued, let at = places[f.value], shadow.markWritten(at) {
                    m.state = .written
                    model[f.value] = m
                    settledInPlace += 1
                } else {
                    shadow.setWritten(f, slot)
                    model[f.value] = Model(state: .written, counter: slot.counter, actionSet: slot.actionSet, flags: slot.flags)
                }
                places[f.value] = nil
            case 6..<8:
                if let i = shadow.find(f) { shadow.remove(at: i) }
                model[f.value] = nil
                places[f.value] = nil
            case 8:
                shadow.removeQueued(f)
                if model[f.value]?.state == .queued {
                    model[f.value] = nil
                    places[f.value] = nil
                }
            default:
                if step % 97 == 0 { shadow.shrinkIfSparse(minimum: 16) }
            }
            if step % 5000 == 0 || step == 199_999 {
                #expect(shadow.written == model.values.filter { $0.state == .written }.count)
                #expect(shadow.queued == model.values.filter { $0.state == .queued }.count)
                for m in 0..<UInt64(3000) {
                    let g = Self.fingerprint(m)
                    let got = shadow.find(g).map { i -> Model in
                        let e = shadow[i]
                        return Model(state: e.state, counter: e.counter, actionSet: e.slot.actionSet, flags: e.slot.flags)
                    }
                    #expect(got == model[g.value], "fingerprint \(m) at step \(step)")
                    #expect(shadow.writtenSlot(g)?.counter == (model[g.value]?.state == .written ? model[g.value]!.counter : nil))
                }
            }
        }
        #expect(settledInPlace > 1000)
    }

    @Test func memoryGoesBackWhenMostEntriesLeave() {
        let shadow = SlotShadow()
        let slot = BPFDataPlane.Slot(actionSet: 1, counter: 2, flags: 0)
        for n in 0..<UInt64(100_000) { shadow.setWritten(Fingerprint(n &* 0x9E37_79B9_7F4A_7C15), slot) }
        #expect(shadow.capacity >= 131_072)
        for n in 0..<UInt64(99_000) {
            if let i = shadow.find(Fingerprint(n &* 0x9E37_79B9_7F4A_7C15)) { shadow.remove(at: i) }
        }
        shadow.shrinkIfSparse(minimum: 4096)
        #expect(shadow.written == 1000)
        #expect(shadow.capacity <= 2048)
        for n in 99_000..<UInt64(100_000) { #expect(shadow.writtenSlot(Fingerprint(n &* 0x9E37_79B9_7F4A_7C15))?.counter == 2) }
    }
}

extension SlotShadow {
    /// The slot written for `fingerprint`, if any (a queued one is not written yet).
    func writtenSlot(_ fingerprint: Fingerprint) -> BPFDataPlane.Slot? {
        guard let i = find(fingerprint), self[i].state == .written else { return nil }
        return self[i].slot
    }
}
