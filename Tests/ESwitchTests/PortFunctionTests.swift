@testable import ESwitch
import Glibc
import Logging
import NetLinux
import Synchronization
import Testing

/// devlink port function settings against the in-memory data plane, with VF netdevs
/// that exist only as a record of what the driver did to them.
@Suite struct PortFunctionTests {
    /// The VF driver's side: MACs and carrier per VF netdev.
    final class FakeVFLinks: VFLinkOperations {
        var macs: [String: UInt64] = [:]
        var carrier: [String: Bool] = [:]
        func setMAC(_ vf: VFNetdev, _ mac: UInt64) throws { macs[vf.name] = mac }
        func mac(of vf: VFNetdev) throws -> UInt64 { macs[vf.name] ?? 0 }
        func setMTU(_ vf: VFNetdev, _ mtu: Int) throws {}
        func setCarrier(_ vf: VFNetdev, _ up: Bool) throws { carrier[vf.name] = up }
        func isInOtherNamespace(_ vf: VFNetdev) -> Bool { false }
        func exists(_ vf: VFNetdev) -> Bool { true }
        func remake(_ vf: VFNetdev) throws -> VFNetdev { vf }
        func discard(_ vf: VFNetdev) {}
    }

    /// Log lines at warning and above, to count repeats.
    final class LogLines: LogHandler, @unchecked Sendable {
        let lines = Mutex<[String]>([])
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .warning
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            lines.withLock { $0.append(event.message.description) }
        }
        var count: Int { lines.withLock { $0.count } }
    }

    struct Device {
        let sw: ESwitch
        let dp: InMemoryDataPlane
        let links: FakeVFLinks
        let log: LogLines
    }

    static func device(mode: ESwitchMode, vfs: Int = 3, profile: HardwareProfile = HardwareProfile()) throws -> Device {
        let dp = InMemoryDataPlane(), links = FakeVFLinks(), log = LogLines()
        let netdevs = (0..<vfs).map { VFNetdev(name: "t\($0)", switchSide: "ts\($0)", switchIfindex: Int32(100 + $0)) }
        for (n, v) in netdevs.enumerated() { links.macs[v.name] = 0x02_00_00_00_00_10 + UInt64(n) }
        let sw = try ESwitch(name: "t", vfs: netdevs, uplink: UplinkNetdev(name: "up", ifindex: 99), mode: mode,
                             profile: profile, dataPlane: dp, logger: Logger(label: "test") { _ in log })
        try sw.start()
        // No representor provider: representors need TAPs (the driver skips them without one).
        sw.vfLinks = links
        sw.refreshLegacyTable()
        return Device(sw: sw, dp: dp, links: links, log: log)
    }

    // MARK: hw_addr in legacy mode

    @Test func aMACAnotherVFHasIsRefusedAndNothingChanges() throws {
        let d = try Self.device(mode: .legacy)
        #expect(d.dp.macs[0x02_00_00_00_00_10] == .vf(0))
        let refusal = LegacyMACRefusal.inUse(mac: 0x02_00_00_00_00_12, vlan: 0, owner: .vf(2))
        #expect(throws: refusal) { try d.sw.setVFMAC(.vf(0), mac: 0x02_00_00_00_00_12) }
        #expect(refusal.errno == EEXIST)
        #expect(refusal.description.contains("already in use by port 3 (VF 2)"))
        // The VF netdev, the port's admin MAC and the table are as they were.
        #expect(d.links.macs["t0"] == 0x02_00_00_00_00_10)
        #expect(d.sw.port(.vf(0))?.config.mac == 0)
        #expect(d.dp.macs[0x02_00_00_00_00_10] == .vf(0))
        #expect(d.dp.macs[0x02_00_00_00_00_12] == .vf(2))
        // On another VLAN the same MAC is another entry: accepted.
        try d.sw.setVFVLAN(.vf(0), vlan: 100)
        try d.sw.setVFMAC(.vf(0), mac: 0x02_00_00_00_00_12)
        #expect(d.dp.macs[UInt64(100) << 48 | 0x02_00_00_00_00_12] == .vf(0))
        #expect(d.dp.macs[0x02_00_00_00_00_10] == nil)
        // Moving it back onto VF2's VLAN would collide: refused, VLAN unchanged.
        #expect(throws: LegacyMACRefusal.self) { try d.sw.setVFVLAN(.vf(0), vlan: 0) }
        #expect(d.sw.port(.vf(0))?.config.vlan == 100)
    }

    @Test func aVFThatTakesAnotherVFsMACLosesItsEntryAndItIsLoggedOnce() throws {
        let d = try Self.device(mode: .legacy)
        d.links.macs["t0"] = 0x02_00_00_00_00_11  // VF0's driver sets VF1's address itself
        for _ in 0..<5 { d.sw.refreshLegacyTable() }
        #expect(d.dp.macs[0x02_00_00_00_00_10] == nil)  // the old address no longer leads to VF0
        #expect(d.dp.macs[0x02_00_00_00_00_11] == .vf(1))
        #expect(d.sw.legacyRefusal(.vf(0)) == .inUse(mac: 0x02_00_00_00_00_11, vlan: 0, owner: .vf(1)))
        #expect(d.log.count == 1)
        #expect(d.log.lines.withLock { $0.first?.contains("already in use by port 2") } == true)
        // Its own address again: the entry is back, the refusal gone, nothing more logged.
        d.links.macs["t0"] = 0x02_00_00_00_00_20
        d.sw.refreshLegacyTable()
        #expect(d.dp.macs[0x02_00_00_00_00_20] == .vf(0))
        #expect(d.sw.legacyRefusal(.vf(0)) == nil)
        #expect(d.log.count == 1)
    }

    @Test func aFullTableIsLoggedOncePerChangeNotAtEveryRefresh() throws {
        var profile = HardwareProfile()
        profile.exactEntries = 2
        let d = try Self.device(mode: .legacy, profile: profile)
        for _ in 0..<5 { d.sw.refreshLegacyTable() }
        #expect(d.sw.legacyRefusal(.vf(2)) == .noRoom(mac: 0x02_00_00_00_00_12, vlan: 0))
        #expect(d.log.count == 1)
        // A hw_addr the table cannot take is refused up front.
        let mac: UInt64 = 0x02_00_00_00_00_30
        #expect(throws: LegacyMACRefusal.noRoom(mac: mac, vlan: 0)) { try d.sw.setVFMAC(.vf(2), mac: mac) }
        #expect(d.links.macs["t2"] == 0x02_00_00_00_00_12)
        // The VF's own MAC changing is a new refusal: logged once more.
        d.links.macs["t2"] = 0x02_00_00_00_00_31
        for _ in 0..<5 { d.sw.refreshLegacyTable() }
        #expect(d.log.count == 2)
    }

    @Test func zeroAndMulticastMACsAreRefusedUpFront() throws {
        let d = try Self.device(mode: .switchdev)
        for mac: UInt64 in [0, 0x01_00_5e_00_00_01, 0xff_ff_ff_ff_ff_ff] {
            #expect {
                try d.sw.setVFMAC(.vf(0), mac: mac)
            } throws: { e in
                guard let r = e as? PortFunctionRefusal else { return false }
                return r.errno == EINVAL && r.description.contains("unicast and not all zeros")
            }
        }
        #expect(d.links.macs["t0"] == 0x02_00_00_00_00_10)
    }

    // MARK: vlan (VST)

    @Test func vstIsRefusedInSwitchdevAndKeptThroughAModeSwitch() throws {
        let d = try Self.device(mode: .switchdev)
        #expect {
            try d.sw.setVFVLAN(.vf(0), vlan: 100)
        } throws: { e in (e as? PortFunctionRefusal)?.errno == EOPNOTSUPP }
        #expect(d.sw.port(.vf(0))?.config.vlan == 0)
        try d.sw.setVFVLAN(.vf(0), vlan: 0)  // mlx5 accepts VLAN 0 (libvirt) and changes nothing
        try d.sw.setMode(.legacy)
        try d.sw.setVFVLAN(.vf(0), vlan: 100, qos: 3)
        #expect(d.dp.ports[.vf(0)]?.vlan == 100)
        try d.sw.setMode(.switchdev)
        try d.sw.setVFVLAN(.vf(0), vlan: 0)
        #expect(d.sw.port(.vf(0))?.config.vlan == 100)
        try d.sw.setMode(.legacy)
        #expect(d.dp.macs[UInt64(100) << 48 | 0x02_00_00_00_00_10] == .vf(0))
    }

    // MARK: state

    @Test func anInactiveFunctionLosesCarrierAndItsPortIsDown() throws {
        let d = try Self.device(mode: .switchdev)
        try d.sw.setVFLinkState(.vf(1), up: false)
        #expect(d.links.carrier["t1"] == false)
        #expect(d.dp.ports[.vf(1)]?.linkUp == false)
        #expect(d.links.carrier["t0"] == nil)
        try d.sw.setVFLinkState(.vf(1), up: true)
        #expect(d.links.carrier["t1"] == true)
        #expect(d.dp.ports[.vf(1)]?.linkUp == true)
    }

    // MARK: reload

    @Test func aRefusedReloadReportsItsRealErrno() throws {
        let d = try Self.device(mode: .switchdev)
        d.dp.failNextWrites = 1  // the in-memory data plane's failures are EIO
        #expect {
            try d.sw.reload()
        } throws: { e in (e as? HardwareResource.SizeError)?.errno == EIO }
        let flows = try #require(d.sw.tables.resource(at: "/exact/flows"))
        try flows.setPending(40000)
        #expect(!flows.pendingSizeValid)
        #expect {
            try d.sw.reload()
        } throws: { e in (e as? HardwareResource.SizeError)?.errno == EINVAL }
    }
}
