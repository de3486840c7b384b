import ODP
import Packet

/// The built-in `normal` miss handler: a MAC-learning switch (what ovs-vswitchd's
/// NORMAL action does for a datapath). It learns source addresses from misses,
/// forwards to a learned port by installing a megaflow (in_port, eth src/dst, VLAN,
/// eth_type), floods otherwise, and moves flows when a MAC moves.
final class NormalSwitch {
    struct Address: Hashable {
        var vlan: UInt16
        var mac: UInt64
    }

    struct Entry {
        var port: UInt32
        var seenNanoseconds: UInt64
    }

    private(set) var table: [Address: Entry] = [:]
    /// MAC entries expire after this long without traffic (OVS's mac-aging-time default).
    var agingNanoseconds: UInt64 = 300 * 1_000_000_000

    /// What to do with one missed packet.
    enum Decision {
        case forward(UInt32, FlowMatch)
        case flood([UInt32])
        case drop
    }

    /// Learns from and decides for a miss. `moved` receives MACs that changed port.
    func decide(_ key: FlowKey, ports: [UInt32], now: UInt64, moved: (Address) -> Void) -> Decision {
        let inPort = UInt32(truncatingIfNeeded: key[.inPort])
        let vlan = UInt16(truncatingIfNeeded: key[.vlanTCI]) & VLAN.vidMask
        let src = key[.ethSrc], dst = key[.ethDst]
        if (src >> 40) & 1 == 0 {
            let a = Address(vlan: vlan, mac: src)
            if let e = table[a], e.port != inPort { moved(a) }
            table[a] = Entry(port: inPort, seenNanoseconds: now)
        }
        let multicast = (dst >> 40) & 1 == 1
        if !multicast, let e = table[Address(vlan: vlan, mac: dst)] {
            guard e.port != inPort else { return .drop }
            var mask = FlowKey()
            for f in [FlowField.inPort, .ethSrc, .ethDst, .ethType, .vlanTCI, .vlanTPID, .recircID] { mask[f] = f.valueMask }
            if key[.ethType] < 0x600 { mask[.ethType] = 0xffff }
            return .forward(e.port, FlowMatch(key: key, mask: mask))
        }
        return .flood(ports.filter { $0 != inPort })
    }

    /// What `decide` would do with a miss, learning nothing (for a trace).
    func preview(_ key: FlowKey, ports: [UInt32]) -> Decision {
        let inPort = UInt32(truncatingIfNeeded: key[.inPort])
        let vlan = UInt16(truncatingIfNeeded: key[.vlanTCI]) & VLAN.vidMask
        let dst = key[.ethDst]
        if (dst >> 40) & 1 == 0, let e = table[Address(vlan: vlan, mac: dst)] {
            return e.port == inPort ? .drop : .forward(e.port, FlowMatch(key: key, mask: FlowKey()))
        }
        return .flood(ports.filter { $0 != inPort })
    }

    func expire(now: UInt64) {
        table = table.filter { now &- $0.value.seenNanoseconds < agingNanoseconds }
    }

    func forget(port: UInt32) {
        table = table.filter { $0.value.port != port }
    }
}
