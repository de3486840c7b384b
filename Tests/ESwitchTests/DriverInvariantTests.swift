import Foundation
@testable import ESwitch
import Classifier
import Packet
import Testing

/// Random sequences of adds, replaces, deletes, firmware progress, injected faults, failed
/// data-plane writes, encap and mark actions, model and mode switches against the in-memory
/// data plane; after every drain the data plane, the pools (occupancy and programmed), masks,
/// encap entries and marks must agree with the rules the driver holds.
struct DriverInvariantTests {
    struct RNG: RandomNumberGenerator {
        var s: UInt64
        mutating func next() -> UInt64 { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s }
    }

    static func check(_ sw: ESwitch, _ dp: InMemoryDataPlane, _ handles: [Int: HardwareRuleHandle], _ tag: String) -> [String] {
        var errs: [String] = []
        let t = sw.tables
        let live = Array(t.rules.values)
        // after drain
        let prog = live.filter { $0.isProgrammed }
        if dp.rules.count != prog.count { errs.append("\(tag): dp rules \(dp.rules.count) vs programmed live \(prog.count)") }
        for r in prog where !dp.rules.contains(where: { $0.key == r.programmed.key && $0.mask == r.programmed.mask && $0.actions == r.actions }) {
            errs.append("\(tag): programmed rule \(r.id) not in dp with its actions")
        }
        let holding = live.filter { $0.holdsUnits }
        for r in live where r.state == .pending { errs.append("\(tag): rule \(r.id) pending after drain") }
        for r in live where !r.isProgrammed && r.holdsUnits { errs.append("\(tag): unprogrammed rule \(r.id) holds units") }
        let units = holding.filter { $0.table == .masked }.reduce(0) { $0 + $1.units }
        let stockM = sw.stockedUnits(t.maskedPool)
        if t.maskedPool.occupancy - stockM != units { errs.append("\(tag): masked occ \(t.maskedPool.occupancy) stock \(stockM) vs held \(units)") }
        let stockC = sw.stockedUnits(t.counterPool)
        if t.counterPool.occupancy - stockC != holding.count { errs.append("\(tag): counters occ \(t.counterPool.occupancy) stock \(stockC) vs \(holding.count)") }
        if t.maskedPool.programmed != prog.filter({ $0.table == .masked }).reduce(0, { $0 + $1.units }) { errs.append("\(tag): masked programmed \(t.maskedPool.programmed)") }
        if t.counterPool.programmed != prog.count { errs.append("\(tag): counters programmed \(t.counterPool.programmed) vs \(prog.count)") }
        let masks = Set(holding.map { $0.spec.mask })
        if t.maskPool.occupancy != masks.count { errs.append("\(tag): masks occ \(t.maskPool.occupancy) vs \(masks.count)") }
        for (_, e) in t.encaps {
            let users = live.filter { r in r.encapEntries.contains { $0 === e } }.count
            if e.users != users + 1 { errs.append("\(tag): encap \(e.id) users \(e.users) vs \(users)") }
        }
        let marks = Set(live.filter { r in if case .failed = r.state { false } else { true } }.compactMap { $0.mark.map(ObjectIdentifier.init) })
        if t.markPool.occupancy < marks.count { errs.append("\(tag): marks occ \(t.markPool.occupancy) vs \(marks.count)") }
        for r in live where !(r.state != .programmed && r.state != .pending) { if let m = r.mark, m.users != live.filter({ $0.mark === m }).count { errs.append("\(tag): mark users \(m.users)") } }
        if t.encapPool.occupancy != t.encaps.count { errs.append("\(tag): encap occ \(t.encapPool.occupancy) vs \(t.encaps.count)") }
        for (_, h) in handles {
            guard let r = sw.rule(h) else { errs.append("\(tag): handle lost"); continue }
            if !t.rules.holds(r) { errs.append("\(tag): handle's rule not in tables") }
        }
        return errs
    }

    @Test(arguments: [OffloadModel.lockstep, .async, .prefetch, .credit, .predictive])
    func fuzz(model: OffloadModel) throws {
        for seed in 1...120 {
            var rng = RNG(s: UInt64(seed) &* 0x9E3779B97F4A7C15 | 1)
            let (sw, dp, clock) = try OffloadModelTests.device(model, masked: 12, latency: 10, batch: 3, bucket: 4, credit: 4)
            var tunnel = TunnelMetadata()
            let encs: [EncapEntry] = try (0..<2).map { i in
                tunnel.ipv4Dst = 0xC612_0002 + UInt32(i); tunnel.id = 42
                let key = EncapKey(tunnel: tunnel, udpPort: 4789, egress: .uplink)
                return try sw.encapEntry(for: key, header: VXLAN.template(ethSrc: 1, ethDst: 2, tunnel: tunnel, srcIPv4: 1, udpDst: 4789)).get()
            }
            for e in encs { e.users += 1 } // pin
            var handles: [Int: HardwareRuleHandle] = [:]
            var log: [String] = []
            func spec(_ n: Int, _ v: Int) -> HardwareRuleSpec {
                var s = n < 100 ? OffloadModelTests.ipv4(n) : OffloadModelTests.ipv6(n)
                switch v {
                case 0: s.actions = [.forward(.vf(1))]
                case 1: s.actions = [.forward(.uplink)]
                case 2: s.actions = [.encap(encs[0]), .forward(.uplink)]
                case 3: s.actions = [.encap(encs[1]), .forward(.uplink)]
                default:
                    if case .success(let m) = sw.allocateMark() { s.actions = [.hint(m)] } else { s.actions = [.drop] }
                }
                return s
            }
            for step in 0..<120 {
                let op = Int(rng.next() % 10)
                let n = Int(rng.next() % 8) + (rng.next() % 4 == 0 ? 100 : 0)
                let v = Int(rng.next() % 5)
                switch op {
                case 0, 1, 2:
                    if handles[n] == nil, case .success(let h) = sw.addRule(spec(n, v)) { handles[n] = h; log.append("add \(n) \(v)") }
                case 3, 4:
                    if let h = handles[n], case .success(let nh) = sw.replaceRule(h, with: spec(n, v)) { handles[n] = nh; log.append("replace \(n) \(v)") }
                case 5, 6:
                    if let h = handles[n] { _ = sw.deleteRule(h); handles[n] = nil; log.append("del \(n)") }
                case 7:
                    let adv = rng.next() % 40_000; let idle = rng.next() % 2 == 0; clock.advance(nanoseconds: adv); sw.serviceHardware(idle: idle); log.append("svc \(adv) \(idle)")
                case 8 where rng.next() % 2 == 0:
                    dp.failNextWrites = 1
                    if let h = handles[n] {
                        if case .success(let nh) = sw.replaceRule(h, with: spec(n, v)) { handles[n] = nh }
                        log.append("dpfailreplace \(n) \(v)")
                    } else {
                        if case .success(let h) = sw.addRule(spec(n, v)) { handles[n] = h }
                        log.append("dpfailadd \(n) \(v)")
                    }

                case 8:
                    var p = sw.params; p.failNextOffloads = 1; sw.params = p; log.append("fail")
                default:
                    if rng.next() % 6 == 0 {
                        dp.failNextWrites = 0; sw.tick(now: clock.now()); try sw.setMode(.legacy)
                        let errs = Self.check(sw, dp, [:], "seed \(seed) step \(step) legacy")
                        + (sw.tables.maskedPool.occupancy - sw.stockedUnits(sw.tables.maskedPool) != 0 ? ["masked occ after legacy"] : [])
                        + (sw.tables.markPool.occupancy != 0 ? ["marks occ after legacy \(sw.tables.markPool.occupancy)"] : [])
                        if !errs.isEmpty { Issue.record("\(errs)"); return }
                        try sw.setMode(.switchdev)
                        handles = [:]
                        log.append("legacy")
                    } else if rng.next() % 5 == 0 {
                        // A flush in the middle of whatever is queued, replaced or stuck.
                        if rng.next() % 3 == 0 {
                            // The data plane refuses: nothing changed, every handle still names its rule.
                            sw.drainHardware()   // (queued writes would take the failure first)
                            dp.failNextWrites = 1
                            let before = handles.values.filter { sw.rule($0) != nil }.count
                            let rules = sw.tables.rules.count
                            #expect(!sw.deleteAllRules())
                            let after = handles.values.filter { sw.rule($0) != nil }.count
                            if after != before || sw.tables.rules.count != rules { Issue.record("seed \(seed) step \(step): a refused flush lost a rule") }
                        }
                        dp.failNextWrites = 0
                        #expect(sw.deleteAllRules())
                        if sw.queuedHardwareWrites != 0 { Issue.record("seed \(seed) step \(step): \(sw.queuedHardwareWrites) commands of gone rules still queued") }
                        for (_, h) in handles where sw.ruleState(h) != nil { Issue.record("seed \(seed) step \(step): a rule survived the flush") }
                        handles = [:]
                        log.append("flush")
                        if !dp.rules.isEmpty { Issue.record("seed \(seed) step \(step): \(dp.rules.count) rules in the data plane after a flush"); return }
                        sw.drainHardware()
                        dp.failNextWrites = 0
                        sw.tick(now: clock.now())
                        var errs = Self.check(sw, dp, [:], "seed \(seed) step \(step) after flush")
                        if !sw.tables.rules.isEmpty { errs.append("rules left \(sw.tables.rules.count)") }
                        if sw.tables.maskedPool.occupancy != sw.stockedUnits(sw.tables.maskedPool) { errs.append("masked occ after flush") }
                        if sw.tables.maskedPool.programmed != 0 || sw.tables.counterPool.programmed != 0 { errs.append("programmed after flush") }
                        if sw.tables.maskPool.occupancy != 0 { errs.append("masks occ after flush \(sw.tables.maskPool.occupancy)") }
                        if sw.tables.markPool.occupancy != 0 { errs.append("marks occ after flush \(sw.tables.markPool.occupancy)") }
                        if !errs.isEmpty { try? (["\(model)"] + log).joined(separator: "|").write(toFile: "/tmp/fuzzlog-\(model).txt", atomically: true, encoding: .utf8); Issue.record("\(errs)"); return }
                    } else if rng.next() % 4 == 0 {
                        var p = sw.params; p.offloadModel = [OffloadModel.lockstep, .async, .prefetch, .credit, .predictive][Int(rng.next() % 5)]; sw.params = p
                        log.append("model \(p.offloadModel)")
                        sw.drainHardware()
                        dp.failNextWrites = 0
                        sw.tick(now: clock.now())
                        let errs = Self.check(sw, dp, handles, "seed \(seed) step \(step) after model switch")
                        if !errs.isEmpty { try? (["\(model)"] + log).joined(separator: "|").write(toFile: "/tmp/fuzzlog-\(model).txt", atomically: true, encoding: .utf8); Issue.record("\(errs)"); return }
                    }
                }
            }
            sw.drainHardware()
            // Removals the data plane refused are retried by the driver's tick.
            dp.failNextWrites = 0
            sw.tick(now: clock.now())
            var errs = Self.check(sw, dp, handles, "seed \(seed) drained")
            if !errs.isEmpty { try? (["\(model)"] + log).joined(separator: "|").write(toFile: "/tmp/fuzzlog-\(model).txt", atomically: true, encoding: .utf8); Issue.record("\(errs)"); return }
            for (_, h) in handles { _ = sw.deleteRule(h) }
            handles = [:]
            sw.drainHardware()
            sw.tick(now: clock.now())
            errs = Self.check(sw, dp, handles, "seed \(seed) empty")
            if !sw.tables.rules.isEmpty { errs.append("rules left \(sw.tables.rules.count)") }
            if !errs.isEmpty { try? (["\(model)"] + log).joined(separator: "|").write(toFile: "/tmp/fuzzlog-\(model).txt", atomically: true, encoding: .utf8); Issue.record("\(errs)"); return }
        }
    }
}
