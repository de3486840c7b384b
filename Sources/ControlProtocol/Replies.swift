import Netlink
import ODP

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
    /// The key, mask and actions attributes, where the reply holds them (a dump reads
    /// a million replies: no arrays of their own).
    public var key: ArraySlice<UInt8> = []
    public var mask: ArraySlice<UInt8> = []
    public var actions: ArraySlice<UInt8> = []
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
    /// Why the flow is not in hardware: decoded when asked for (a plain dump does not
    /// print it, and every software flow has one).
    public var offloadReason: String? {
        offloadReasonBytes.flatMap { try? Attribute(type: FlowAttr.offloadReason, payload: $0).string() }
    }
    private var offloadReasonBytes: ArraySlice<UInt8>?
    public var learned = false

    public init(_ m: GenericMessage) {
        let body = m.attributes
        // Read in place, in one walk: an Attribute per reply attribute was a slice to
        // count, and each integer went through a throwing reader. Into a local: a
        // closure that set self's fields copied the whole struct in and out.
        var f = FlowInfo()
        let whole = body.withUnsafeBytes { raw in
            var walk = RawAttributes.Iterator(raw)
            while let a = walk.next() {
                let p = a.payload
                switch a.type {
                case FlowAttr.key: f.key = body[a.range.shifted(by: body.startIndex)]
                case FlowAttr.mask: f.mask = body[a.range.shifted(by: body.startIndex)]
                case FlowAttr.actions: f.actions = body[a.range.shifted(by: body.startIndex)]
                case FlowAttr.ufid where p.count == 16: f.ufid = UInt128(bigEndian: p.loadUnaligned(as: UInt128.self))
                case FlowAttr.stats where p.count >= 16:
                    f.packets = UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))
                    f.bytes = UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
                case FlowAttr.used: f.usedMilliseconds = p.count == 8 ? UInt64(littleEndian: p.loadUnaligned(as: UInt64.self)) : nil
                case FlowAttr.now: f.nowMilliseconds = p.count == 8 ? UInt64(littleEndian: p.loadUnaligned(as: UInt64.self)) : 0
                case FlowAttr.tcpFlags: f.tcpFlags = p.count == 2 ? UInt16(littleEndian: p.loadUnaligned(as: UInt16.self)) : 0
                case FlowAttr.offloaded: f.offloadState = p.count == 1 ? p[0] : 0
                case FlowAttr.offloadReason: f.offloadReasonBytes = body[a.range.shifted(by: body.startIndex)]
                case FlowAttr.origin: f.learned = p.count == 1 && p[0] != 0
                default: break
                }
            }
            return !walk.malformed
        }
        // Attributes that do not parse give nothing at all, as a parse of the list would.
        // (The local moved, not copied: a copy was four retains and four releases.)
        if whole { self = consume f } else { self = FlowInfo() }
    }

    private init() {}

    /// `packets:N, bytes:N, used:…[, flags:…]`: OVS's dpif_flow_stats_format, what
    /// ovs-dpctl -s prints for add-flow, mod-flow and del-flow.
    public var statisticsText: String {
        "packets:\(packets), bytes:\(bytes), used:\(usedText)" + (tcpFlags != 0 ? ", flags:\(tcpFlagsText)" : "")
    }

    /// `used:0.123s` or `used:never`, as OVS prints it.
    public var usedText: String {
        TextBuffer.string { appendUsed(to: &$0) }
    }

    /// The same, appended to a dump's line.
    public func appendUsed(to t: inout TextBuffer) {
        guard let u = usedMilliseconds, u != 0 else { return t.append("never") }
        let age = nowMilliseconds >= u ? nowMilliseconds - u : 0
        t.appendDecimal(age / 1000)
        let ms = age % 1000
        t.append(UInt8(ascii: "."))
        t.append(48 + UInt8(ms / 100))
        t.append(48 + UInt8(ms / 10 % 10))
        t.append(48 + UInt8(ms % 10))
        t.append(UInt8(ascii: "s"))
    }

    /// packet_format_tcp_flags(): S F P R U . E C N [200]…
    public var tcpFlagsText: String {
        let order: [(UInt16, String)] = [(0x002, "S"), (0x001, "F"), (0x008, "P"), (0x004, "R"), (0x020, "U"), (0x010, "."),
                                         (0x040, "E"), (0x080, "C"), (0x100, "N"), (0x200, "[200]"), (0x400, "[400]"), (0x800, "[800]")]
        return order.filter { tcpFlags & $0.0 != 0 }.map(\.1).joined()
    }
}

extension Range<Int> {
    /// The range moved by `offset` (a payload's place in a slice that does not start at 0).
    func shifted(by offset: Int) -> Range<Int> { (lowerBound + offset)..<(upperBound + offset) }
}

extension ArraySlice where Element == UInt8 {
    /// The little-endian UInt64 at offset `o` from the slice's start.
    func u64(_ o: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in (0..<8).reversed() { v = v << 8 | UInt64(self[startIndex + o + i]) }
        return v
    }
}
