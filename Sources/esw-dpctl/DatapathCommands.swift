import ArgumentParser
import ControlProtocol
import Netlink

struct AddDP: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add-dp", abstract: "Create the datapath (one per daemon).")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Datapath name, e.g. esw@esw0.") var dp: String

    func run() throws {
        try cli {
            let s = try Session(connection, dp: dp, unknown: .unchecked)
            _ = try s.request(Family.datapath, DatapathCmd.new) { $0.putString(DatapathAttr.name, dp) }
        }
    }
}

struct DelDP: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "del-dp", abstract: "Delete the datapath and all its flows.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Datapath name.") var dp: String

    func run() throws {
        try cli {
            let s = try Session(connection, dp: dp, unknown: .opening)
            _ = try s.request(Family.datapath, DatapathCmd.del) { $0.putString(DatapathAttr.name, dp) }
        }
    }
}

struct DumpDPs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dump-dps", abstract: "List datapaths.")
    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        try cli {
            let s = try Session(connection, dp: nil)
            for m in try s.request(Family.datapath, DatapathCmd.get, dump: true) { Out.line(DatapathInfo(m).name) }
        }
    }
}

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Datapath statistics and ports (ovs-dpctl show).")
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: [.short, .long], help: "Port statistics.") var statistics = false
    @Flag(name: .short, help: "JSON.") var json = false
    @Argument(help: "Datapath.") var dp: String?

    func run() throws {
        try cli {
            let s = try Session(connection, dp: dp, unknown: .openingNamed)
            let d = try s.datapath()
            let ports = try s.ports()
            if json {
                Out.line(JSON.object([
                    ("name", .string(d.name)),
                    ("lookups", .object([("hit", .uint(d.hit)), ("missed", .uint(d.missed)), ("lost", .uint(d.lost))])),
                    ("flows", .uint(d.flows)), ("offloaded_flows", .uint(d.offloadedFlows)),
                    ("pending_flows", .uint(d.pendingFlows)), ("failed_flows", .uint(d.failedFlows)),
                    ("blackholed_flows", .uint(d.blackholedFlows)),
                    ("hw_only_drops", .uint(d.hardwareOnlyDrops)),
                    ("partial_offload", .bool(d.partialOffload)), ("partial_flows", .uint(d.partialFlows)),
                    ("stale_marks", .uint(d.staleMarks)),
                    ("masks", .object([("hit", .uint(d.maskHit)), ("total", .uint(UInt64(d.masks)))])),
                    ("policy", .string(d.policy)), ("miss", .string(d.missMode)), ("eswitch", .string(d.eswitch)),
                    ("ports", .array(ports.map { p in
                        var f: [(String, JSON)] = [("port", .uint(UInt64(p.number))), ("name", .string(p.name)), ("type", .string(p.typeName))]
                        if let dst = p.dstPort { f.append(("dst_port", .uint(UInt64(dst)))) }
                        if let e = p.eswitchPort { f.append(("eswitch_port", .uint(UInt64(e)))) }
                        if let o = p.offloadCounters {
                            f.append(("rx_offload_full", .uint(o[0])))
                            f.append(("rx_offload_partial", .uint(o[1])))
                            f.append(("rx_offload_miss", .uint(o[2])))
                        }
                        f.append(("stats", .object(zip(["rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_errors", "tx_errors",
                                                        "rx_dropped", "tx_dropped"], p.stats).map { ($0, .uint($1)) })))
                        return .object(f)
                    })),
                ]).serialized(pretty: true))
                return
            }
            Out.line("\(d.name):")
            Out.line("  lookups: hit:\(d.hit) missed:\(d.missed) lost:\(d.lost)")
            Out.line("  flows: \(d.flows)")
            let pkts = d.hit + d.missed
            let avg = pkts == 0 ? 0.0 : Double(d.maskHit) / Double(pkts)
            Out.line("  masks: hit:\(d.maskHit) total:\(d.masks) hit/pkt:\(fixed2(avg))")
            Out.line("  offloaded flows: \(d.offloadedFlows)")
            if d.pendingFlows + d.failedFlows + d.hardwareOnlyDrops > 0 {
                Out.line("  offload pending: \(d.pendingFlows) failed: \(d.failedFlows) (in software: "
                         + "\(d.failedFlows - min(d.failedFlows, d.blackholedFlows)), blackholed: \(d.blackholedFlows)) "
                         + "hw-only drops: \(d.hardwareOnlyDrops)")
            }
            Out.line("  offload policy: \(d.policy), miss: \(d.missMode)")
            Out.line("  partial offload: \(d.partialOffload ? "on" : "off"), flows: \(d.partialFlows), stale marks: \(d.staleMarks)")
            for p in ports {
                var line = "  port \(p.number): \(p.name)"
                switch p.type {
                case 1:
                    if let e = p.eswitchPort { line += " (representor of \(d.eswitch) port \(e))" }
                case 4: line += " (vxlan: dst_port=\(p.dstPort ?? 4789))"
                default: line += " (\(p.typeName))"
                }
                Out.line(line)
                if statistics {
                    let st = p.stats
                    Out.line("    RX packets:\(st[0]) errors:\(st[4]) dropped:\(st[6]) overruns:0 frame:0")
                    Out.line("    TX packets:\(st[1]) errors:\(st[5]) dropped:\(st[7]) aborted:0 carrier:0")
                    Out.line("    collisions:0")
                    Out.line("    RX bytes:\(st[2])\(humanSize(st[2]))  TX bytes:\(st[3])\(humanSize(st[3]))")
                    if let o = p.offloadCounters {
                        Out.line("    rx_offload_full:\(o[0]) rx_offload_partial:\(o[1]) rx_offload_miss:\(o[2])")
                    }
                }
            }
        }
    }
}

func fixed2(_ v: Double) -> String {
    let r = (v * 100).rounded() / 100
    let whole = Int(r)
    let frac = Int(((r - Double(whole)) * 100).rounded())
    return "\(whole)." + (frac < 10 ? "0" : "") + "\(frac)"
}

/// OVS's print_human_size: " (1.2 KiB)" after a byte count, nothing below 1 KiB.
func humanSize(_ b: UInt64) -> String {
    if b < 1024 { return "" }
    let units = ["KiB", "MiB", "GiB", "TiB"]
    var v = Double(b) / 1024
    var i = 0
    while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
    let tenths = Int((v * 10).rounded())
    return " (\(tenths / 10).\(tenths % 10) \(units[i]))"
}

struct SetPolicy: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set-policy",
                                                    abstract: "Offload policy: none (hardware, else software), skip_sw, skip_hw.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "[DP] POLICY") var args: [String]

    func validate() throws {
        guard args.count == 1 || args.count == 2 else { throw ValidationError("usage: set-policy [DP] none|skip_sw|skip_hw") }
        guard ["none", "skip_sw", "skip_hw"].contains(args.last!) else { throw ValidationError("policy must be none, skip_sw or skip_hw") }
    }

    func run() throws {
        try cli {
            let (dp, rest) = splitDP(args, needed: 1)
            let s = try Session(connection, dp: dp)
            _ = try s.request(Family.datapath, DatapathCmd.set) { $0.putString(DatapathAttr.policy, rest[0]) }
        }
    }
}

struct SetPartialOffload: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set-partial-offload",
        abstract: "Partial offload (hinting) of flows whose actions only software can run: on (default) or off.",
        discussion: "On: the hardware matches such a flow, marks its packets and sends them up the representor, where the datapath finds the flow by mark without classifying. Off: they stay in software.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "[DP] on|off") var args: [String]

    func run() throws {
        try cli {
            let (dp, rest) = splitDP(args, needed: 1)
            guard let v = rest.first, rest.count == 1, ["on", "off"].contains(v) else {
                throw CLIError("usage: set-partial-offload [DP] on|off")
            }
            let s = try Session(connection, dp: dp)
            _ = try s.request(Family.datapath, DatapathCmd.set) { $0.putU8(DatapathAttr.partialOffload, v == "on" ? 1 : 0) }
        }
    }
}

struct SetMiss: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set-miss", abstract: "What misses do: drop, normal, controller.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "[DP] MODE") var args: [String]

    func run() throws {
        try cli {
            let (dp, rest) = splitDP(args, needed: 1)
            guard let mode = rest.first, ["drop", "normal", "controller"].contains(mode) else {
                throw CLIError("usage: set-miss [DP] drop|normal|controller")
            }
            let s = try Session(connection, dp: dp)
            _ = try s.request(Family.datapath, DatapathCmd.set) { $0.putString(DatapathAttr.missMode, mode) }
        }
    }
}
