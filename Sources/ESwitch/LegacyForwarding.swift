import Glibc
import Packet

/// Why the legacy MAC table cannot hold a VF's address.
public enum LegacyMACRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    /// Another VF has the address on the same VLAN. mlx5's legacy L2 table refuses it the
    /// same way (esw_add_uc_addr: EEXIST, "mac is already in use by vport").
    case inUse(mac: UInt64, vlan: UInt16, owner: PortIndex)
    /// The exact-match memory the table lives in is full.
    case noRoom(mac: UInt64, vlan: UInt16)
    /// The data plane did not take the write.
    case writeFailed(mac: UInt64, vlan: UInt16, reason: String)

    public var errno: Int32 {
        switch self {
        case .inUse: EEXIST
        case .noRoom: ENOSPC
        case .writeFailed: EIO
        }
    }

    public var description: String {
        func on(_ mac: UInt64, _ vlan: UInt16) -> String {
            AddressText.mac(mac) + (vlan == 0 ? "" : " on vlan \(vlan)")
        }
        return switch self {
        case .inUse(let m, let v, let owner):
            "legacy MAC table: \(on(m, v)) is already in use by port \(owner) (VF \(Int(owner) - 1))"
        case .noRoom(let m, let v): "legacy MAC table: no room for \(on(m, v)) (exact-match memory full)"
        case .writeFailed(let m, let v, let why): "legacy MAC table: \(on(m, v)) not written: \(why)"
        }
    }
}

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

    /// Why `set` would refuse this entry for `port` (nil: it would take it). Asked before
    /// a VF's MAC or VLAN changes, so a refused change changes nothing.
    func refusal(port: PortIndex, vlan: UInt16, mac: UInt64) -> LegacyMACRefusal? {
        let wanted = Entry(vlan: vlan, mac: mac)
        guard mac != 0, entries[port] != wanted else { return nil }
        if let owner = entries.first(where: { $0.key != port && $0.value == wanted })?.key {
            return .inUse(mac: mac, vlan: vlan, owner: owner)
        }
        // Moving an entry reuses its unit; only a new one needs room.
        if entries[port] == nil && tables.exactMAC.available < 1 { return .noRoom(mac: mac, vlan: vlan) }
        return nil
    }

    /// Installs (or moves) the entry of one VF. On a refusal the VF keeps no entry: its
    /// old address is no longer its own, and frames to it must not reach it.
    func set(port: PortIndex, vlan: UInt16, mac: UInt64) throws(LegacyMACRefusal) {
        let wanted = Entry(vlan: vlan, mac: mac)
        let old = entries[port]
        if old == wanted { return }
        guard mac != 0 else {
            remove(port: port)
            return
        }
        if let r = refusal(port: port, vlan: vlan, mac: mac) {
            remove(port: port)
            throw r
        }
        if old == nil && !tables.reserveMACEntry() { throw .noRoom(mac: mac, vlan: vlan) }
        do {
            try tables.dataPlane.setMAC(vlan: vlan, mac: mac, port: port)
        } catch {
            if old == nil { tables.releaseMACEntry() } else { remove(port: port) }
            throw .writeFailed(mac: mac, vlan: vlan, reason: error.description)
        }
        if let old { try? tables.dataPlane.setMAC(vlan: old.vlan, mac: old.mac, port: nil) }
        entries[port] = wanted
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
