/// Legacy (non-switchdev) SR-IOV forwarding's MAC table: (VLAN, MAC) -> VF, held in the
/// exact-match memory it shares with exact-match flows. The data plane forwards by it,
/// applies each VF's VST VLAN and floods broadcast, multicast and unknown unicast.
final class LegacyMACTable: @unchecked Sendable {
    struct Entry: Equatable {
        var vlan: UInt16
        var mac: UInt64
    }

    unowned let tables: HardwareTables
    private(set) var entries: [PortIndex: Entry] = [:]

    init(tables: HardwareTables) {
        self.tables = tables
    }

    /// Installs (or moves) the entry of one VF. Returns false when the exact-match
    /// memory is full or another VF owns the address.
    @discardableResult
    func set(port: PortIndex, vlan: UInt16, mac: UInt64) -> Bool {
        let wanted = Entry(vlan: vlan, mac: mac)
        let old = entries[port]
        if old == wanted { return true }
        guard mac != 0 else {
            remove(port: port)
            return true
        }
        // A change that cannot be made leaves the VF's old entry in place.
        if entries.contains(where: { $0.key != port && $0.value == wanted }) { return false }
        if old == nil && !tables.reserveMACEntry() { return false }
        do {
            try tables.dataPlane.setMAC(vlan: vlan, mac: mac, port: port)
        } catch {
            if old == nil { tables.releaseMACEntry() }
            return false
        }
        if let old { try? tables.dataPlane.setMAC(vlan: old.vlan, mac: old.mac, port: nil) }
        entries[port] = wanted
        return true
    }

    func remove(port: PortIndex) {
        guard let e = entries.removeValue(forKey: port) else { return }
        try? tables.dataPlane.setMAC(vlan: e.vlan, mac: e.mac, port: nil)
        tables.releaseMACEntry()
    }

    func removeAll() {
        for p in Array(entries.keys) { remove(port: p) }
    }
}
