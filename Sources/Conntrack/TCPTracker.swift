/// TCP window tracking as OVS's lib/conntrack-tcp.c (itself from OpenBSD pf): each end
/// keeps the highest sequence it sent, the highest the other end may send (acked +
/// window), its largest window and window scale; a segment must fall within those
/// bounds (Guido van Rooij's sequence tracking) or it is invalid.

/// TCP states as OVS's CT_DPIF_TCPS_*, in their order (comparisons rely on it).
public enum TCPState: UInt8, Sendable, Comparable, CaseIterable {
    case closed, listen, synSent, synReceived, established, closeWait, finWait1, closing, lastAck, finWait2, timeWait

    public static func < (a: TCPState, b: TCPState) -> Bool { a.rawValue < b.rawValue }

    /// The name ct-dpif prints.
    public var name: String {
        switch self {
        case .closed: "CLOSED"
        case .listen: "LISTEN"
        case .synSent: "SYN_SENT"
        case .synReceived: "SYN_RECV"
        case .established: "ESTABLISHED"
        case .closeWait: "CLOSE_WAIT"
        case .finWait1: "FIN_WAIT_1"
        case .closing: "CLOSING"
        case .lastAck: "LAST_ACK"
        case .finWait2: "FIN_WAIT_2"
        case .timeWait: "TIME_WAIT"
        }
    }

    /// The kernel and userspace see some states differently; non-verbose output and
    /// ct-stats print the kernel's view (ct-dpif's coalesce_tcp_state).
    public var coalesced: TCPState {
        switch self {
        case .finWait2: .timeWait
        case .synReceived: .established
        default: self
        }
    }
}

/// The timeouts of OVS's default policy (conntrack-tp.c), by what the tracker decides.
enum CTTimeout {
    case tcpFirstPacket, tcpOpening, tcpEstablished, tcpClosing, tcpFinWait, tcpClosed
    case otherFirst, otherMultiple, otherBidir, icmpFirst, icmpReply

    var seconds: UInt64 {
        switch self {
        case .tcpFirstPacket: 30        // TCP_SYN_SENT
        case .tcpOpening: 30            // TCP_SYN_RECV
        case .tcpEstablished: 86_400    // TCP_ESTABLISHED
        case .tcpClosing: 900           // TCP_FIN_WAIT
        case .tcpFinWait: 45            // TCP_TIME_WAIT
        case .tcpClosed: 30             // TCP_CLOSE
        case .otherFirst: 60            // UDP_FIRST
        case .otherMultiple: 60         // UDP_SINGLE
        case .otherBidir: 30            // UDP_MULTIPLE
        case .icmpFirst: 60
        case .icmpReply: 30
        }
    }
}

/// What a protocol tracker says about a packet of an existing connection.
enum UpdateResult {
    case invalid
    /// Part of the connection: ct_state est.
    case valid
    /// Part of the connection, which is not yet established: ct_state new.
    case validNew
    /// Starts a new connection over a closed one (a SYN after both ends closed).
    case recreate
}

struct TCPPeer: Sendable {
    var seqLow: UInt32 = 0      // highest sequence sent
    var seqHigh: UInt32 = 0     // highest the other end acked plus its window
    var maxWindow: UInt16 = 0   // largest window seen, unscaled
    var windowScale: UInt8 = 0  // CT_WSCALE_* flags and factor
    var state: TCPState = .closed
}

struct TCPConnection: Sendable {
    static let maxWindowScale: UInt8 = 14
    static let scaleKnown: UInt8 = 0x80
    static let scaleUnknown: UInt8 = 0x40
    static let scaleMask: UInt8 = 0x0f
    /// 1500 is pf's fudge factor for fragments acked backwards.
    static let maxAckWindow: Int64 = 0xffff + 1500

    var peers: (TCPPeer, TCPPeer) = (TCPPeer(), TCPPeer())
    /// Packets left that skip the sequence-window check after a hardware hand-back: while
    /// offloaded the software saw no segments, so its windows are stale, and the teardown
    /// (FIN, ACK, RST) that made the hardware hand the connection back must still pass.
    var relaxedPackets = 0

    /// pf's scrub check: flag combinations no real stack sends.
    static func invalidFlags(_ f: UInt16) -> Bool {
        if f & TCPFlag.syn != 0 {
            if f & (TCPFlag.rst | TCPFlag.fin) != 0 { return true }
        } else if f & (TCPFlag.ack | TCPFlag.rst) == 0 {
            return true
        }
        if f & TCPFlag.ack == 0 && f & (TCPFlag.fin | TCPFlag.psh | TCPFlag.urg) != 0 { return true }
        return false
    }

    /// May this segment create a connection: not malformed and not a SYN+ACK (OVS
    /// admits a SYN, or a mid-stream segment of a connection it picks up).
    static func validNew(_ s: TCPSegment) -> Bool {
        !invalidFlags(s.flags) && !(s.flags & TCPFlag.syn != 0 && s.flags & TCPFlag.ack != 0)
    }

    /// The window-scale option of a SYN, with CT_WSCALE_FLAG when present.
    static func windowScale(_ p: UnsafeRawPointer, l4: Int, headerLength: Int) -> UInt8 {
        var off = l4 + 20
        var len = headerLength - 20
        var scale: UInt8 = 0
        while len >= 3 {
            switch p.u8(off) {
            case 0: return scale
            case 1: off += 1; len -= 1
            default:
                if p.u8(off) == 3 { scale = min(p.u8(off + 2), maxWindowScale) | scaleKnown }
                let optLength = max(Int(p.u8(off + 1)), 2)
                len -= optLength
                off += optLength
            }
        }
        return scale
    }

    init(first s: TCPSegment, scale: UInt8) {
        var src = TCPPeer(), dst = TCPPeer()
        src.seqLow = s.seq
        src.seqHigh = s.seq &+ s.payloadLength &+ 1
        if s.flags & TCPFlag.syn != 0 {
            src.seqHigh &+= 1
            src.windowScale = scale
        } else {
            // Picked up mid-stream: the scales are unknown, be liberal with windows.
            src.windowScale = Self.scaleUnknown
            dst.windowScale = Self.scaleUnknown
        }
        src.maxWindow = max(s.window, 1)
        if src.windowScale & Self.scaleMask != 0 {
            let sws = UInt32(src.windowScale & Self.scaleMask)
            src.maxWindow = UInt16((UInt32(src.maxWindow) + (1 << sws) - 1) >> sws)
        }
        if s.flags & TCPFlag.fin != 0 { src.seqHigh &+= 1 }
        dst.seqHigh = 1
        dst.maxWindow = 1
        src.state = .synSent
        dst.state = .closed
        peers = (src, dst)
    }

    var firstTimeout: CTTimeout { .tcpFirstPacket }

    /// tcp_conn_update: judges the segment and moves both ends' states; `timeout` is set
    /// when the connection's expiry is refreshed.
    mutating func update(_ s: TCPSegment, scale: UInt8, reply: Bool, sequenceCheck: Bool,
                         timeout: inout CTTimeout?) -> UpdateResult {
        var src = reply ? peers.1 : peers.0
        var dst = reply ? peers.0 : peers.1
        defer { if reply { peers = (dst, src) } else { peers = (src, dst) } }
        let flags = s.flags
        if Self.invalidFlags(flags) { return .invalid }

        if flags & (TCPFlag.syn | TCPFlag.ack) == TCPFlag.syn {
            if dst.state >= .finWait2 && src.state >= .finWait2 {
                src.state = .closed
                dst.state = .closed
                return .recreate
            } else if src.state <= .synSent {
                src.state = .synSent
                timeout = .tcpFirstPacket
                return .validNew
            }
        }

        var sws: UInt32 = 0, dws: UInt32 = 0
        if src.windowScale & Self.scaleKnown != 0 && dst.windowScale & Self.scaleKnown != 0 && flags & TCPFlag.syn == 0 {
            sws = UInt32(src.windowScale & Self.scaleMask)
            dws = UInt32(dst.windowScale & Self.scaleMask)
        } else if src.windowScale & Self.scaleUnknown != 0 && dst.windowScale & Self.scaleUnknown != 0 && flags & TCPFlag.syn == 0 {
            sws = UInt32(Self.maxWindowScale)
            dws = UInt32(Self.maxWindowScale)
        }

        var window = UInt32(s.window)
        var seq = s.seq
        let originalSeq = s.seq
        var ack = s.ack
        var end: UInt32
        var checkAckSkew = true
        if src.state < .synSent {
            // First packet from this end.
            end = seq &+ s.payloadLength
            if flags & TCPFlag.syn != 0 {
                end &+= 1
                if dst.windowScale & Self.scaleKnown != 0 {
                    src.windowScale = scale
                    if src.windowScale & Self.scaleKnown != 0 {
                        sws = UInt32(src.windowScale & Self.scaleMask)
                        window = (window + (1 << sws) - 1) >> sws
                        dws = UInt32(dst.windowScale & Self.scaleMask)
                    } else {
                        // The other end's window was scaled for nothing; undo it.
                        dst.maxWindow = UInt16(truncatingIfNeeded: UInt32(dst.maxWindow) << UInt32(dst.windowScale & Self.scaleMask))
                        dst.windowScale = 0
                    }
                }
            }
            if flags & TCPFlag.fin != 0 { end &+= 1 }
            src.seqLow = seq
            src.state = .synSent
            let reach = end &+ max(1, UInt32(truncatingIfNeeded: UInt64(dst.maxWindow) << UInt64(dws)))
            if src.seqHigh == 1 || seqGEQ(reach, src.seqHigh) {
                src.seqHigh = reach
                // A new connection, or one picked up established: skip the ack skew check.
                checkAckSkew = false
            }
            if window > UInt32(src.maxWindow) { src.maxWindow = UInt16(truncatingIfNeeded: window) }
        } else {
            end = seq &+ s.payloadLength
            if flags & TCPFlag.syn != 0 { end &+= 1 }
            if flags & TCPFlag.fin != 0 { end &+= 1 }
        }

        if flags & TCPFlag.ack == 0 {
            ack = dst.seqLow
        } else if ack == 0 && flags & (TCPFlag.ack | TCPFlag.rst) == (TCPFlag.ack | TCPFlag.rst) {
            // Stacks that send RST|ACK without an ack number.
            ack = dst.seqLow
        }
        if seq == end {
            // No data: ease the sequencing restrictions.
            seq = src.seqLow
            end = seq
        }

        let ackSkew: Int64 = checkAckSkew ? Int64(Int32(bitPattern: dst.seqLow &- ack)) : 0
        let dstWindowScaled = UInt32(truncatingIfNeeded: UInt64(dst.maxWindow) << UInt64(dws))
        let scaledWindow = UInt32(truncatingIfNeeded: UInt64(window) << UInt64(sws))
        let bypass = !sequenceCheck || relaxedPackets > 0
        if relaxedPackets > 0 { relaxedPackets -= 1 }
        let inWindow = seqGEQ(src.seqHigh, end)
            && seqGEQ(seq, src.seqLow &- dstWindowScaled)
            && ackSkew >= -Self.maxAckWindow
            && ackSkew <= (Self.maxAckWindow << Int64(sws))
            && (flags & TCPFlag.rst == 0 || originalSeq == src.seqLow || originalSeq == src.seqLow &+ 1
                || originalSeq &+ 1 == src.seqLow)
        if inWindow || bypass {
            if bypass && !inWindow {
                // Resynchronise the ends to what is on the wire now.
                src.seqLow = end
            }
            if UInt32(src.maxWindow) < window { src.maxWindow = UInt16(truncatingIfNeeded: window) }
            if seqGT(end, src.seqLow) { src.seqLow = end }
            if seqGEQ(ack &+ scaledWindow, dst.seqHigh) { dst.seqHigh = ack &+ max(scaledWindow, 1) }
            if flags & TCPFlag.syn != 0 && src.state < .synSent { src.state = .synSent }
            if flags & TCPFlag.fin != 0 && src.state < .closing { src.state = .closing }
            if flags & TCPFlag.ack != 0 {
                if dst.state == .synSent {
                    dst.state = .established
                } else if dst.state == .closing {
                    dst.state = .finWait2
                }
            }
            if flags & TCPFlag.rst != 0 {
                src.state = .timeWait
                dst.state = .timeWait
            }
            if src.state >= .finWait2 && dst.state >= .finWait2 {
                timeout = .tcpClosed
            } else if src.state >= .closing && dst.state >= .closing {
                timeout = .tcpFinWait
            } else if src.state < .established || dst.state < .established {
                timeout = .tcpOpening
            } else if src.state >= .closing || dst.state >= .closing {
                timeout = .tcpClosing
            } else {
                timeout = .tcpEstablished
            }
        } else if (dst.state < .synSent || dst.state >= .finWait2 || src.state >= .finWait2)
                    && seqGEQ(src.seqHigh &+ UInt32(Self.maxAckWindow), end)
                    && seqGEQ(seq, src.seqLow &- UInt32(Self.maxAckWindow)) {
            // Shotgunned SYNs, a connection picked up late, stray packets after close: let
            // them through without refreshing the timeout (a flood must not keep it alive).
            if UInt32(src.maxWindow) < window { src.maxWindow = UInt16(truncatingIfNeeded: window) }
            if seqGT(end, src.seqLow) { src.seqLow = end }
            if seqGEQ(ack &+ scaledWindow, dst.seqHigh) { dst.seqHigh = ack &+ max(scaledWindow, 1) }
            if flags & TCPFlag.fin != 0 && src.state < .closing { src.state = .closing }
            if flags & TCPFlag.rst != 0 {
                src.state = .timeWait
                dst.state = .timeWait
            }
        } else {
            return .invalid
        }
        return .valid
    }

    /// Both ends established: the connection hardware may take over.
    var isEstablished: Bool { peers.0.state == .established && peers.1.state == .established }
    /// One end has begun closing or the connection was reset.
    var isClosing: Bool { peers.0.state >= .closing || peers.1.state >= .closing }
}

@inline(__always) func seqGT(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) > 0 }
@inline(__always) func seqGEQ(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) >= 0 }
