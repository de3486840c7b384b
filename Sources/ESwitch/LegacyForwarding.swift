import Classifier
import Packet

/// Legacy (non-switchdev) SR-IOV forwarding: a MAC table keyed by (VLAN, MAC) in the
/// exact-match memory, per-VF VST VLANs (tag pushed towards the uplink, stripped
/// towards the VF), and flooding of broadcast, multicast and unknown unicast.
final class LegacyMACTable: @unchecked Sendable {
    final class Entry: ClassifierEntry, @unchecked Sendable {
        let port: PortIndex
        init(vlan: UInt16, mac: UInt64, port: PortIndex, mask: FlowMask) {
            self.port = port
            var k = FlowKey()
            k[.vlanTCI] = UInt64(vlan)
            k[.ethDst] = mac
            super.init(key: k, mask: mask)
        }
    }

    let classifier: Classifier
    let mask: FlowMask
    unowned let tables: HardwareTables
    private(set) var entries: [PortIndex: Entry] = [:]

    init(tables: HardwareTables) {
        self.tables = tables
        classifier = Classifier(rcu: tables.rcu)
        var m = FlowKey()
        m[.vlanTCI] = UInt64(VLAN.vidMask)
        m[.ethDst] = FlowField.ethDst.valueMask
        mask = classifier.mask(for: m)
    }

    /// Installs (or moves) the entry of one VF. Returns false when the exact-match
    /// memory is full.
    @discardableResult
    func set(port: PortIndex, vlan: UInt16, mac: UInt64) -> Bool {
        if let old = entries[port] {
            if old.key[.ethDst] == mac && old.key[.vlanTCI] == UInt64(vlan) { return true }
            remove(port: port)
        }
        guard mac != 0 else { return true }
        if classifier.lookupExact(key: Entry(vlan: vlan, mac: mac, port: port, mask: mask).key, mask: mask.bits) != nil {
            return false  // another VF already owns this address
        }
        guard tables.reserveMACEntry() else { return false }
        let e = Entry(vlan: vlan, mac: mac, port: port, mask: mask)
        classifier.insert(e)
        entries[port] = e
        return true
    }

    func remove(port: PortIndex) {
        guard let e = entries.removeValue(forKey: port) else { return }
        classifier.remove(e)
        tables.releaseMACEntry()
    }

    func removeAll() {
        for p in Array(entries.keys) { remove(port: p) }
    }

    @inline(__always)
    func lookup(vlan: UInt16, mac: UInt64, reader: QuiescentState.Reader) -> PortIndex? {
        var k = FlowKey()
        k[.vlanTCI] = UInt64(vlan)
        k[.ethDst] = mac
        var probed: UInt64 = 0
        guard let e = classifier.lookup(k, reader: reader, probed: &probed) else { return nil }
        return unsafeDowncast(e.takeUnretainedValue(), to: Entry.self).port
    }

    /// Forwards one frame the legacy way.
    @inline(__always)
    func forward(_ b: inout PacketBuffer, from port: ESwitchPort, worker: FastPathWorker) {
        guard b.length >= 14 else { return }
        let ports = worker.device.ports
        let dst = b.data.be48(0)
        let multicast = (dst >> 40) & 1 == 1
        if port.vf != nil {
            let vlan = port.config.vlan
            // VST: the VF may not tag its own frames.
            if vlan != 0 && EtherType.isVLAN(b.data.be16(12)) { return }
            if !multicast, let target = lookup(vlan: vlan, mac: dst, reader: worker.reader) {
                if target != port.index { worker.transmit(&b, to: ports[Int(target)], deferred: false) }
                return
            }
            for p in ports where p.vf != nil && p.index != port.index && p.config.vlan == vlan {
                worker.transmit(&b, to: p, deferred: false)
            }
            if vlan != 0 {
                var offsets = HeaderOffsets()
                var key = FlowKey()
                let tci = VLAN.present | vlan | UInt16(port.config.qos) << VLAN.pcpShift
                guard HeaderRewrite.pushVLAN(&b, offsets: &offsets, key: &key, tpid: EtherType.vlan, tci: tci) else { return }
            }
            worker.transmit(&b, to: ports[0], deferred: true)
        } else {
            var vlan: UInt16 = 0
            if b.length >= 18, b.data.be16(12) == EtherType.vlan {
                vlan = b.data.be16(14) & VLAN.vidMask
                var offsets = HeaderOffsets()
                var key = FlowKey()
                HeaderRewrite.popVLAN(&b, offsets: &offsets, key: &key)
            }
            if !multicast, let target = lookup(vlan: vlan, mac: dst, reader: worker.reader) {
                worker.transmit(&b, to: ports[Int(target)], deferred: false)
                return
            }
            for p in ports where p.vf != nil && p.config.vlan == vlan {
                worker.transmit(&b, to: p, deferred: false)
            }
        }
    }
}
