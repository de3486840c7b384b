import ArgumentParser
import ControlProtocol
import Netlink

/// One port as the daemon describes it.
struct PortInfo {
    var dev = "", index: UInt32 = 0, netdev = "", flavour = "", physName = "", switchID = ""
    var pfnum: UInt32 = 0, vfnum: UInt32?
    var hwAddr: [UInt8]?, vlan: UInt16 = 0, qos: UInt16 = 0, linkUp = true, mtu: UInt32 = 0
    var stats: [UInt64] = []
    var program: ProgramInfo?

    init(_ m: GenericMessage) throws {
        let a = try AttributeParser.parse(m.attributes)
        dev = a.string(DevlinkAttr.devName) ?? ""
        index = a.u32(DevlinkAttr.portIndex) ?? 0
        netdev = a.string(DevlinkAttr.portNetdev) ?? ""
        flavour = a.string(DevlinkAttr.portFlavour) ?? ""
        physName = a.string(DevlinkAttr.portPhysName) ?? ""
        switchID = a.string(DevlinkAttr.switchID) ?? ""
        pfnum = a.u32(DevlinkAttr.portPFNumber) ?? 0
        vfnum = a.u32(DevlinkAttr.portVFNumber)
        hwAddr = a.bytes(DevlinkAttr.portHWAddr)
        vlan = a.u16(DevlinkAttr.portVLAN) ?? 0
        qos = a.u16(DevlinkAttr.portQoS) ?? 0
        linkUp = (a.u8(DevlinkAttr.portLinkUp) ?? 1) != 0
        mtu = a.u32(DevlinkAttr.portMTU) ?? 0
        if let s = a.bytes(DevlinkAttr.portStats) { stats = u64Array(s) }
        program = ProgramInfo(a)
    }

    var handle: String { "\(dev)/\(index)" }

    static let statNames = ["rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "rx_dropped", "tx_dropped",
                            "to_representor", "from_representor"]

    /// devlink's one-line form, e.g. `esw0/1: type eth netdev pf0vf0 flavour pcivf pfnum 0 vfnum 0`.
    var line: String {
        var s = "\(handle): type eth netdev \(netdev) flavour \(flavour)"
        if let vfnum { s += " pfnum \(pfnum) vfnum \(vfnum)" } else { s += " port 0" }
        return s + " splittable false"
    }

    var functionFields: [(String, String)] {
        guard vfnum != nil else { return [] }
        var f = [("hw_addr", (hwAddr ?? [0, 0, 0, 0, 0, 0]).macText)]
        if vlan != 0 { f.append(("vlan", String(vlan))); f.append(("qos", String(qos))) }
        f.append(("state", linkUp ? "active" : "inactive"))
        return f
    }

    func json(statistics: Bool) -> JSON {
        var f: [(String, JSON)] = [("type", .string("eth")), ("netdev", .string(netdev)), ("flavour", .string(flavour))]
        if let vfnum {
            f += [("pfnum", .uint(UInt64(pfnum))), ("vfnum", .uint(UInt64(vfnum)))]
        } else {
            f.append(("port", .uint(0)))
        }
        f += [("splittable", .bool(false)), ("phys_port_name", .string(physName)), ("switch_id", .string(switchID)),
              ("mtu", .uint(UInt64(mtu)))]
        let fn = functionFields
        if !fn.isEmpty { f.append(("function", .object(fn.map { ($0.0, .string($0.1)) }))) }
        if statistics { f.append(("stats", .object(zip(Self.statNames, stats).map { ($0.0, .uint($0.1)) }))) }
        if let program { f.append(("prog", program.json(statistics: statistics))) }
        return .object(f)
    }
}

struct PortShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show ports: `show [DEV | DEV/INDEX | NETDEV]`.")
    @OptionGroup var options: DevlinkOptions
    @Flag(name: [.customShort("s"), .customLong("statistics")], help: "Show rx/tx packets, bytes and drops.")
    var statistics = false
    @Argument(help: "Device, port handle or port netdev (default: every port the control socket serves).")
    var target: String?

    func run() throws {
        try cli {
            let ports: [PortInfo]
            switch try target.map(PortHandle.init) {
            case nil:
                ports = try fetchPorts(options.session(nil), dev: nil)
            case .index(let dev, let index)?:
                ports = try fetchPorts(options.session(dev), dev: dev).filter { $0.index == index }
            case .netdev(let word)?:
                // A device name (all its ports) or a port's netdev, whatever the device is called.
                let all = try fetchPorts(options.session(deviceOrPort: word), dev: nil)
                let ofDevice = all.filter { $0.dev == word }
                ports = ofDevice.isEmpty ? all.filter { $0.netdev == word } : ofDevice
            }
            if let target, ports.isEmpty { throw CLIError("\(target): no such device or port") }
            if options.json {
                options.emit(.object([("port", .object(ports.map { ($0.handle, $0.json(statistics: statistics)) }))]))
                return
            }
            for p in ports {
                Console.line(p.line)
                let fn = p.functionFields
                if !fn.isEmpty {
                    Console.line("  function:")
                    Console.line("    " + fn.map { "\($0.0) \($0.1)" }.joined(separator: " "))
                }
                if statistics {
                    Console.line("  stats:")
                    Console.line("    " + zip(PortInfo.statNames, p.stats).map { "\($0.0) \($0.1)" }.joined(separator: " "))
                }
                if let prog = p.program {
                    Console.line("  prog: \(prog.line)")
                    if statistics { Console.line("    " + prog.statsLine) }
                }
            }
        }
    }
}

/// The ports of `dev`, or without a device every port the socket's daemon serves.
func fetchPorts(_ session: ControlSession, dev: String?) throws -> [PortInfo] {
    try session.request(Family.devlink, DevlinkCmd.portGet, dump: true) { $0.putDevice(dev) }.map(PortInfo.init)
}

struct PortFunctionSet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Set a VF's MAC, VLAN (VST) or link state: `set PORT [hw_addr MAC] [vlan N [qos Q]] [state active|inactive]`.")
    @OptionGroup var options: DevlinkOptions
    @Argument(help: "PORT (DEV/INDEX or representor netdev) then keywords") var words: [String] = []

    func run() throws {
        try cli {
            guard let first = words.first else { throw CLIError("usage: port function set PORT hw_addr MAC [vlan N [qos Q]]") }
            let kw = try keywordArguments(Array(words.dropFirst()), allowed: ["hw_addr", "vlan", "qos", "state"])
            guard !kw.isEmpty else { throw CLIError("nothing to set (hw_addr, vlan, qos or state)") }
            let session: ControlSession, dev: String, index: UInt32
            switch try PortHandle(first) {
            case .index(let d, let n):
                (session, dev, index) = (try options.session(d), d, n)
            case .netdev(let n):
                // The netdev is looked up among the ports of whatever device the socket serves.
                session = try options.session(nil)
                guard let p = try fetchPorts(session, dev: nil).first(where: { $0.netdev == n }) else {
                    throw CLIError("\(n): no such port (or give it as DEV/INDEX)")
                }
                (dev, index) = (p.dev, p.index)
            }
            let mac = try kw["hw_addr"].map(parseMAC)
            let vlan = try kw["vlan"].map { v in
                guard let n = UInt16(v), n < 4095 else { throw CLIError("vlan \(v): expected 0...4094") }
                return n
            }
            let qos = try kw["qos"].map { v in
                guard let n = UInt16(v), n < 8 else { throw CLIError("qos \(v): expected 0...7") }
                return n
            }
            if qos != nil && vlan == nil { throw CLIError("qos needs vlan") }
            let state = try kw["state"].map { v in
                guard v == "active" || v == "inactive" else { throw CLIError("state \(v): expected active or inactive") }
                return v == "active"
            }
            _ = try session.request(Family.devlink, DevlinkCmd.portFunctionSet) {
                $0.putString(DevlinkAttr.devName, dev)
                $0.putU32(DevlinkAttr.portIndex, index)
                if let mac { $0.put(DevlinkAttr.portHWAddr, mac) }
                if let vlan { $0.putU16(DevlinkAttr.portVLAN, vlan) }
                if let qos { $0.putU16(DevlinkAttr.portQoS, qos) }
                if let state { $0.putU8(DevlinkAttr.portLinkUp, state ? 1 : 0) }
            }
        }
    }
}
