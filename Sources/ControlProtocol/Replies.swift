import Netlink

/// Decoded replies of the OVS families, for the CLIs.
public struct DatapathInfo: Sendable {
    public var name = ""
    public var hit: UInt64 = 0, missed: UInt64 = 0, lost: UInt64 = 0, flows: UInt64 = 0
    public var maskHit: UInt64 = 0, masks: UInt32 = 0
    public var policy = "", missMode = "", eswitch = ""
    public var offloadedFlows: UInt64 = 0
    public var pendingFlows: UInt64 = 0
    public var failedFlows: UInt64 = 0
    public var blackholedFlows: UInt64 = 0
    public var hardwareOnlyDrops: UInt64 = 0
    public var partialOffload = true
    public var partialFlows: UInt64 = 0
    public var staleMarks: UInt64 = 0
    public var maxIdle: UInt32 = 0

    public init(_ m: GenericMessage) {
        for a in (try? AttributeParser.parse(m.attributes)) ?? [] {
            let p = a.payload
            switch a.type {
            case DatapathAttr.name: name = (try? a.string()) ?? ""
            case DatapathAttr.stats where p.count >= 32:
                hit = p.u64(0); missed = p.u64(8); lost = p.u64(16); flows = p.u64(24)
            case DatapathAttr.megaflowStats where p.count >= 12:
                maskHit = p.u64(0); masks = UInt32(truncatingIfNeeded: p.u64(8) & 0xffff_ffff)
            case DatapathAttr.policy: policy = (try? a.string()) ?? ""
            case DatapathAttr.missMode: missMode = (try? a.string()) ?? ""
            case DatapathAttr.offloadedFlows: offloadedFlows = (try? a.u64()) ?? 0
            case DatapathAttr.pendingFlows: pendingFlows = (try? a.u64()) ?? 0
            case DatapathAttr.failedFlows: failedFlows = (try? a.u64()) ?? 0
            case DatapathAttr.blackholedFlows: blackholedFlows = (try? a.u64()) ?? 0
            case DatapathAttr.hardwareOnlyDrops: hardwareOnlyDrops = (try? a.u64()) ?? 0
            case DatapathAttr.partialOffload: partialOffload = ((try? a.u8()) ?? 1) != 0
            case DatapathAttr.partialFlows: partialFlows = (try? a.u64()) ?? 0
            case DatapathAttr.staleMarks: staleMarks = (try? a.u64()) ?? 0
            case DatapathAttr.maxIdle: maxIdle = (try? a.u32()) ?? 0
            case DatapathAttr.eswitch: eswitch = (try? a.string()) ?? ""
            default: break
            }
        }
    }
}

public struct VportInfo: Sendable {
    public var number: UInt32 = 0
    public var type: UInt32 = 0
    public var name = ""
    public var dstPort: UInt16?
    public var stats: [UInt64] = Array(repeating: 0, count: 8)
    public var eswitchPort: UInt32?
    /// rx_offload_full, rx_offload_partial, rx_offload_miss (representors only).
    public var offloadCounters: [UInt64]?

    public var typeName: String {
        switch type {
        case 1: "netdev"
        case 2: "internal"
        case 3: "gre"
        case 4: "vxlan"
        case 5: "geneve"
        default: "type\(type)"
        }
    }

    public init(_ m: GenericMessage) {
        for a in (try? AttributeParser.parse(m.attributes)) ?? [] {
            switch a.type {
            case VportAttr.portNumber: number = (try? a.u32()) ?? 0
            case VportAttr.type: type = (try? a.u32()) ?? 0
            case VportAttr.name: name = (try? a.string()) ?? ""
            case VportAttr.options:
                for o in (try? a.nestedAttributes()) ?? [] where o.type == TunnelOptionAttr.dstPort { dstPort = try? o.u16() }
            case VportAttr.stats where a.count >= 64:
                let p = a.payload
                stats = (0..<8).map { p.u64($0 * 8) }
            case VportAttr.eswitchPort: eswitchPort = try? a.u32()
            case VportAttr.offloadCounters where a.count >= 24:
                let p = a.payload
                offloadCounters = (0..<3).map { p.u64($0 * 8) }
            default: break
            }
        }
    }
}

public struct FlowInfo: Sendable {
    public var key: [UInt8] = []
    public var mask: [UInt8] = []
    public var actions: [UInt8] = []
    public var ufid: UInt128 = 0
    public var packets: UInt64 = 0, bytes: UInt64 = 0
    public var usedMilliseconds: UInt64?
    public var nowMilliseconds: UInt64 = 0
    public var tcpFlags: UInt16 = 0
    /// FlowAttr.offloaded: 0 software, 1 hardware, 2 pending, 3 failed, 4 partial.
    public var offloadState: UInt8 = 0
    public var offloaded: Bool { offloadState == 1 }
    /// The word after `offloaded:` in a verbose dump (nil for a software flow).
    public var offloadWord: String? {
        switch offloadState {
        case 1: "yes"
        case 2: "pending"
        case 3: "failed"
        case 4: "partial"
        default: nil
        }
    }
    public var offloadReason: String?
    public var learned = false

    public init(_ m: GenericMessage) {
        let body = m.attributes
        for span in (try? AttributeParser.spans(body)) ?? [] {
            // Arrays only for what is kept as bytes: a dump decodes a million of these.
            let p = body[span.payload]
            let a = Attribute(type: span.type, isNested: span.isNested, payload: p, offset: span.offset)
            switch a.type {
            case FlowAttr.key: key = Array(p)
            case FlowAttr.mask: mask = Array(p)
            case FlowAttr.actions: actions = Array(p)
            case FlowAttr.ufid where p.count == 16: ufid = p.reduce(UInt128(0)) { $0 << 8 | UInt128($1) }
            case FlowAttr.stats where p.count >= 16: packets = p.u64(0); bytes = p.u64(8)
            case FlowAttr.used: usedMilliseconds = try? a.u64()
            case FlowAttr.now: nowMilliseconds = (try? a.u64()) ?? 0
            case FlowAttr.tcpFlags: tcpFlags = (try? a.u16()) ?? 0
            case FlowAttr.offloaded: offloadState = (try? a.u8()) ?? 0
            case FlowAttr.offloadReason: offloadReason = try? a.string()
            case FlowAttr.origin: learned = ((try? a.u8()) ?? 0) != 0
            default: break
            }
        }
    }

    /// `packets:N, bytes:N, used:…[, flags:…]`: OVS's dpif_flow_stats_format, what
    /// ovs-dpctl -s prints for add-flow, mod-flow and del-flow.
    public var statisticsText: String {
        "packets:\(packets), bytes:\(bytes), used:\(usedText)" + (tcpFlags != 0 ? ", flags:\(tcpFlagsText)" : "")
    }

    /// `used:0.123s` or `used:never`, as OVS prints it.
    public var usedText: String {
        guard let u = usedMilliseconds, u != 0 else { return "never" }
        let age = nowMilliseconds >= u ? nowMilliseconds - u : 0
        let s = String(age / 1000) + "." + String(1000 + age % 1000).dropFirst()
        return s + "s"
    }

    /// packet_format_tcp_flags(): S F P R U . E C N [200]…
    public var tcpFlagsText: String {
        let order: [(UInt16, String)] = [(0x002, "S"), (0x001, "F"), (0x008, "P"), (0x004, "R"), (0x020, "U"), (0x010, "."),
                                         (0x040, "E"), (0x080, "C"), (0x100, "N"), (0x200, "[200]"), (0x400, "[400]"), (0x800, "[800]")]
        return order.filter { tcpFlags & $0.0 != 0 }.map(\.1).joined()
    }
}

extension ArraySlice where Element == UInt8 {
    /// The little-endian UInt64 at offset `o` from the slice's start.
    func u64(_ o: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in (0..<8).reversed() { v = v << 8 | UInt64(self[startIndex + o + i]) }
        return v
    }
}
