import Packet

/// One connection as dump-conntrack shows it (OVS's struct ct_dpif_entry).
public struct CTEntry: Sendable, Equatable {
    public var id: UInt32
    public var original: CTTuple
    public var reply: CTTuple
    public var zone: UInt16
    public var mark: UInt32
    public var label: UInt128
    /// TCP only: each end's state, window scale and ct-dpif flags.
    public var tcpState: (orig: TCPState, reply: TCPState)?
    public var tcpWindowScale: (orig: UInt8, reply: UInt8) = (0, 0)
    public var tcpFlags: (orig: UInt8, reply: UInt8) = (0, 0)
    /// Seconds until expiry.
    public var timeout: UInt32
    public var packets: (orig: UInt64, reply: UInt64)
    public var bytes: (orig: UInt64, reply: UInt64)
    public var offloaded: Bool

    /// For entries rebuilt elsewhere (e.g. decoded from the control protocol) to format.
    public init(id: UInt32, original: CTTuple, reply: CTTuple, zone: UInt16, mark: UInt32 = 0, label: UInt128 = 0,
                tcpState: (orig: TCPState, reply: TCPState)? = nil, tcpWindowScale: (orig: UInt8, reply: UInt8) = (0, 0),
                tcpFlags: (orig: UInt8, reply: UInt8) = (0, 0), timeout: UInt32 = 0,
                packets: (orig: UInt64, reply: UInt64) = (0, 0), bytes: (orig: UInt64, reply: UInt64) = (0, 0),
                offloaded: Bool = false) {
        self.id = id
        self.original = original
        self.reply = reply
        self.zone = zone
        self.mark = mark
        self.label = label
        self.tcpState = tcpState
        self.tcpWindowScale = tcpWindowScale
        self.tcpFlags = tcpFlags
        self.timeout = timeout
        self.packets = packets
        self.bytes = bytes
        self.offloaded = offloaded
    }

    public static func == (a: CTEntry, b: CTEntry) -> Bool {
        a.id == b.id && a.original == b.original && a.reply == b.reply && a.zone == b.zone && a.mark == b.mark
            && a.label == b.label && a.tcpState?.orig == b.tcpState?.orig && a.tcpState?.reply == b.tcpState?.reply
            && a.timeout == b.timeout && a.packets == b.packets && a.bytes == b.bytes && a.offloaded == b.offloaded
    }

    /// ct-dpif TCP flags: WINDOW_SCALE, BE_LIBERAL (picked up mid-stream).
    static let flagNames: [(UInt8, String)] = [(1, "WINDOW_SCALE"), (2, "SACK_PERM"), (4, "CLOSE_INIT"), (8, "BE_LIBERAL"),
                                               (16, "DATA_UNACKNOWLEDGED"), (32, "MAXACK_SET")]
    /// The kernel's IPS_HW_OFFLOAD bit, which OVS 3.1 has no name for and prints in hex.
    public static let hardwareOffloadStatus: UInt32 = 1 << 15
}

extension ConnectionTracker {
    /// Live connections, of one zone or all, ordered by id.
    public func entries(zone: UInt16?, now: UInt64) -> [CTEntry] {
        state.withLock { s in
            s.connections.values.filter { $0.expiration > now && (zone == nil || $0.original.zone == zone) }
                .sorted { $0.id < $1.id }.map { Self.entry($0, now: now) }
        }
    }

    static func entry(_ c: Connection, now: UInt64) -> CTEntry {
        var e = CTEntry(id: c.id, original: c.original, reply: c.reply, zone: c.original.zone, mark: c.mark, label: c.label,
                        tcpState: nil, timeout: c.timeoutLeft(now: now),
                        packets: (c.packets.orig + c.hardwarePackets.orig, c.packets.reply + c.hardwarePackets.reply),
                        bytes: (c.bytes.orig + c.hardwareBytes.orig, c.bytes.reply + c.hardwareBytes.reply),
                        offloaded: c.offloaded)
        if case .tcp(let t) = c.proto {
            e.tcpState = (t.peers.0.state, t.peers.1.state)
            e.tcpWindowScale = (t.peers.0.windowScale & TCPConnection.scaleMask, t.peers.1.windowScale & TCPConnection.scaleMask)
            func flags(_ p: TCPPeer) -> UInt8 {
                (p.windowScale & TCPConnection.scaleKnown != 0 ? 1 : 0) | (p.windowScale & TCPConnection.scaleUnknown != 0 ? 8 : 0)
            }
            e.tcpFlags = (flags(t.peers.0), flags(t.peers.1))
        }
        return e
    }

    /// The line `ovs-appctl dpctl/dump-conntrack [-m] [-s]` prints (ct_dpif_format_entry).
    /// Userspace conntrack has no status bits: verbose output shows `status=0`, and for an
    /// offloaded connection the kernel's HW_OFFLOAD bit, which OVS prints `status=0x8000`.
    public static func format(_ e: CTEntry, verbose: Bool, statistics: Bool) -> String {
        var s = protoName(e.original.proto)
        func counters(_ packets: UInt64, _ bytes: UInt64) -> String {
            packets != 0 || bytes != 0 ? ",packets=\(packets),bytes=\(bytes)" : ""
        }
        s += ",orig=(" + formatTuple(e.original) + (statistics ? counters(e.packets.orig, e.bytes.orig) : "") + ")"
        s += ",reply=(" + formatTuple(e.reply) + (statistics ? counters(e.packets.reply, e.bytes.reply) : "") + ")"
        if verbose { s += ",id=\(e.id)" }
        if e.zone != 0 { s += ",zone=\(e.zone)" }
        if verbose {
            let status: UInt32 = e.offloaded ? CTEntry.hardwareOffloadStatus : 0
            s += ",status=" + (status == 0 ? "0" : "0x" + String(status, radix: 16))
        }
        if statistics { s += ",timeout=\(e.timeout)" }
        if e.mark != 0 { s += ",mark=\(e.mark)" }
        if e.label != 0 { s += ",labels=0x" + String(e.label, radix: 16) }
        if let tcp = e.tcpState {
            if verbose {
                s += ",protoinfo=(state_orig=\(tcp.orig.name),state_reply=\(tcp.reply.name)"
                if e.tcpWindowScale.orig != 0 || e.tcpWindowScale.reply != 0 {
                    s += ",wscale_orig=\(e.tcpWindowScale.orig),wscale_reply=\(e.tcpWindowScale.reply)"
                }
                s += ",flags_orig=" + tcpFlagsText(e.tcpFlags.orig) + ",flags_reply=" + tcpFlagsText(e.tcpFlags.reply) + ")"
            } else {
                s += ",protoinfo=(state=\(max(tcp.orig, tcp.reply).coalesced.name))"
            }
        }
        return s
    }

    static func tcpFlagsText(_ f: UInt8) -> String {
        f == 0 ? "0" : CTEntry.flagNames.filter { f & $0.0 != 0 }.map(\.1).joined(separator: "|")
    }

    /// ct_dpif_format_ipproto.
    public static func protoName(_ p: UInt8) -> String {
        switch p {
        case 1: "icmp"
        case 58: "icmpv6"
        case 6: "tcp"
        case 17: "udp"
        case 132: "sctp"
        case 136: "udplite"
        case 33: "dccp"
        case 2: "igmp"
        default: String(p)
        }
    }

    /// ct_dpif_format_tuple.
    public static func formatTuple(_ t: CTTuple) -> String {
        var s = t.isIPv6
            ? "src=\(AddressText.ipv6(t.src.value)),dst=\(AddressText.ipv6(t.dst.value))"
            : "src=\(AddressText.ipv4(UInt32(truncatingIfNeeded: t.src.value))),dst=\(AddressText.ipv4(UInt32(truncatingIfNeeded: t.dst.value)))"
        if t.isICMP {
            s += ",id=\(t.srcPort),type=\(t.srcICMPType),code=0"
        } else {
            s += ",sport=\(t.srcPort),dport=\(t.dstPort)"
        }
        return s
    }
}
