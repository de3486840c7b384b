import ArgumentParser
import ControlProtocol
import Netlink

/// `IFACE[,type=T][,port_no=N][,dst_port=P]`.
struct PortSpec {
    var name: String
    var type: UInt32 = 1
    var number: UInt32?
    var dstPort: UInt16?

    init(_ text: String) throws {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard let n = parts.first, !n.isEmpty else { throw CLIError("missing interface name in \"\(text)\"") }
        name = n
        for kv in parts.dropFirst() {
            let p = kv.split(separator: "=", maxSplits: 1).map(String.init)
            guard p.count == 2 else { throw CLIError("\"\(kv)\": expected key=value") }
            switch p[0] {
            case "type":
                switch p[1] {
                case "netdev", "system": type = 1
                case "internal": type = 2
                case "vxlan": type = 4
                default: throw CLIError("unknown port type \"\(p[1])\" (netdev, internal, vxlan)")
                }
            case "port_no":
                guard let v = UInt32(p[1]) else { throw CLIError("port_no: \"\(p[1])\" is not a number") }
                number = v
            case "dst_port":
                guard let v = UInt16(p[1]) else { throw CLIError("dst_port: \"\(p[1])\" is not a port") }
                dstPort = v
            default:
                throw CLIError("unknown option \"\(p[0])\" (type, port_no, dst_port)")
            }
        }
    }
}

struct AddIf: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add-if",
                                                    abstract: "Add ports: IFACE[,type=netdev|internal|vxlan][,port_no=N][,dst_port=P].")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "[DP] IFACE...") var args: [String]

    func run() throws {
        try cli {
            var dp: String?
            var specs = args
            if let f = specs.first, f.contains("@") { dp = f; specs.removeFirst() }
            guard !specs.isEmpty else { throw CLIError("add-if needs at least one interface") }
            let s = try Session(connection, dp: dp, unknown: .opening)
            for text in specs {
                let spec = try PortSpec(text)
                _ = try s.request(Family.vport, VportCmd.new) { w in
                    w.putString(VportAttr.name, spec.name)
                    w.putU32(VportAttr.type, spec.type)
                    if let n = spec.number { w.putU32(VportAttr.portNumber, n) }
                    if let p = spec.dstPort { w.nested(VportAttr.options) { $0.putU16(TunnelOptionAttr.dstPort, p) } }
                }
            }
        }
    }
}

struct SetIf: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set-if", abstract: "Change port options (type cannot change).")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "[DP] IFACE,...") var args: [String]

    func run() throws {
        try cli {
            let (dp, rest) = splitDP(args, needed: 1)
            let s = try Session(connection, dp: dp, unknown: .opening)
            for text in rest {
                let spec = try PortSpec(text)
                _ = try s.request(Family.vport, VportCmd.set) { w in
                    w.putString(VportAttr.name, spec.name)
                    if text.contains("type=") { w.putU32(VportAttr.type, spec.type) }
                    if let p = spec.dstPort { w.nested(VportAttr.options) { $0.putU16(TunnelOptionAttr.dstPort, p) } }
                }
            }
        }
    }
}

struct DelIf: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "del-if", abstract: "Remove ports by name.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "[DP] IFACE...") var args: [String]

    func run() throws {
        try cli {
            var dp: String?
            var names = args
            if let f = names.first, f.contains("@") { dp = f; names.removeFirst() }
            let s = try Session(connection, dp: dp, unknown: .opening)
            for n in names { _ = try s.request(Family.vport, VportCmd.del) { $0.putString(VportAttr.name, n) } }
        }
    }
}
