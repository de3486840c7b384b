import ArgumentParser
import ControlProtocol
import Netlink

/// One row of the tracker's encap table.
struct TunnelRow {
    var id: UInt32?, vni: UInt64 = 0, endpoint = "", source = "", udpPort: UInt16 = 0, egress = ""
    var neighbour = "", mac = "", state = "", flows: UInt32 = 0, valid = false, reason = ""

    init(_ m: GenericMessage) throws {
        let a = try AttributeParser.parse(m.attributes)
        id = a.u32(TunnelAttr.entryID)
        vni = a.u64(TunnelAttr.vni)
        endpoint = a.string(TunnelAttr.endpoint) ?? ""
        source = a.string(TunnelAttr.source) ?? ""
        udpPort = a.u16(TunnelAttr.udpPort) ?? 0
        egress = a.string(TunnelAttr.egress) ?? ""
        neighbour = a.string(TunnelAttr.neighbour) ?? ""
        mac = a.string(TunnelAttr.neighbourMAC) ?? ""
        state = a.string(TunnelAttr.neighbourState) ?? ""
        flows = a.u32(TunnelAttr.flows) ?? 0
        valid = (a.u8(TunnelAttr.valid) ?? 0) != 0
        reason = a.string(TunnelAttr.reason) ?? ""
    }

    var status: String { valid ? "valid" : (id == nil ? "not offloaded: " : "invalid: ") + reason }

    var cells: [String] {
        [id.map(String.init) ?? "-", String(vni), endpoint, String(udpPort), source.isEmpty ? "-" : source, egress,
         neighbour.isEmpty ? "-" : neighbour, mac.isEmpty ? "-" : mac, state, String(flows), status]
    }

    var json: JSON {
        var f: [(String, JSON)] = []
        if let id { f.append(("id", .uint(UInt64(id)))) }
        f += [("vni", .uint(vni)), ("endpoint", .string(endpoint)), ("udp_port", .uint(UInt64(udpPort)))]
        if !source.isEmpty { f.append(("source", .string(source))) }
        f += [("egress", .string(egress)), ("neighbour", neighbour.isEmpty ? .null : .string(neighbour)),
              ("lladdr", mac.isEmpty ? .null : .string(mac)), ("state", .string(state)), ("flows", .uint(UInt64(flows))),
              ("in_hardware", .bool(id != nil)), ("valid", .bool(valid))]
        if !reason.isEmpty { f.append(("reason", .string(reason))) }
        return .object(f)
    }
}

struct DumpTunnels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump-tunnels",
        abstract: "The tunnel tracker's encap table: entries in hardware, and tunnels whose flows stay in software.")
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .short, help: "JSON.") var json = false
    @Flag(name: [.short, .long], help: "Also print the tracker's statistics.") var statistics = false
    @Argument(help: "Datapath.") var dp: String?

    static let statNames = ["events", "malformed", "resyncs", "encap_rewrites", "reevaluations", "keepalives",
                            "solicitations", "last_rewrite_entries", "last_rewrite_ns"]

    func run() throws {
        try cli {
            let s = try Session(connection, dp: dp)
            let rows = try s.request(Family.tunnel, TunnelCmd.encapDump, dump: true).map(TunnelRow.init)
            var stats: [UInt64] = []
            if statistics, let m = try s.request(Family.tunnel, TunnelCmd.statsGet).first,
               let raw = try AttributeParser.parse(m.attributes).bytes(TunnelAttr.statistics) {
                stats = stride(from: 0, to: raw.count - 7, by: 8).map { o in
                    (0..<8).reduce(UInt64(0)) { $0 | UInt64(raw[o + $1]) << (8 * UInt64($1)) }
                }
            }
            if json {
                var f: [(String, JSON)] = [("encap", .array(rows.map(\.json)))]
                if !stats.isEmpty { f.append(("statistics", .object(zip(Self.statNames, stats).map { ($0.0, .uint($0.1)) }))) }
                Out.line(JSON.object(f).serialized())
                return
            }
            let header = ["ID", "VNI", "ENDPOINT", "UDP", "SOURCE", "EGRESS", "NEIGHBOUR", "LLADDR", "STATE", "FLOWS", "STATUS"]
            Out.write(table([header] + rows.map(\.cells)))
            if !stats.isEmpty {
                Out.line("tracker: " + zip(Self.statNames, stats).map { "\($0.0):\($0.1)" }.joined(separator: " "))
            }
        }
    }
}

/// Left-aligned columns two spaces apart; the last column is not padded.
func table(_ rows: [[String]]) -> String {
    guard let first = rows.first else { return "" }
    var widths = [Int](repeating: 0, count: first.count)
    for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
    var out = ""
    for r in rows {
        let cells = r.enumerated().map { i, c in i == r.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count) }
        out += cells.joined(separator: "  ") + "\n"
    }
    return out
}
