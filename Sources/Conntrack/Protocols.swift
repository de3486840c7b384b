import Packet

/// The l4 protocol classes (OVS's ct_l4_proto): whether a packet may start a
/// connection, the state it starts in, and how later packets move it.
extension ConnectionTracker {
    struct NewState { var state: ProtocolState; var timeout: CTTimeout }

    /// valid_new + new_conn: nil when the packet cannot start a connection (ct_state inv).
    func newProtocolState(packet: ParsedPacket, frame: UnsafeMutableRawPointer) -> NewState? {
        let t = packet.tuple
        switch t.proto {
        case IPProto.tcp:
            let seg = PacketParser.tcpSegment(frame, packet)
            guard TCPConnection.validNew(seg) else { return nil }
            let scale = seg.flags & TCPFlag.syn != 0
                ? TCPConnection.windowScale(frame, l4: packet.l4, headerLength: seg.headerLength) : 0
            return NewState(state: .tcp(TCPConnection(first: seg, scale: scale)), timeout: .tcpFirstPacket)
        case IPProto.icmp where !t.isIPv6:
            // Echo, timestamp and information requests (not replies) start connections.
            guard t.srcICMPType == ICMPv4.echoRequest || t.srcICMPType == ICMPv4.timestamp
                    || t.srcICMPType == ICMPv4.infoRequest else { return nil }
            return NewState(state: .icmp(replied: false), timeout: .icmpFirst)
        case ICMPv6.proto where t.isIPv6:
            guard t.srcICMPType == ICMPv6.echoRequest else { return nil }
            return NewState(state: .icmp(replied: false), timeout: .icmpFirst)
        default:
            return NewState(state: .other(.first), timeout: .otherFirst)
        }
    }

    /// conn_update: runs the protocol tracker and refreshes the expiry it chooses.
    func update(_ c: inout Connection, packet: ParsedPacket, frame: UnsafeMutableRawPointer, reply: Bool, now: UInt64,
                sequenceCheck: Bool) -> UpdateResult {
        var timeout: CTTimeout?
        let result: UpdateResult
        switch c.proto {
        case .tcp(var tcp):
            let seg = PacketParser.tcpSegment(frame, packet)
            let scale = seg.flags & TCPFlag.syn != 0
                ? TCPConnection.windowScale(frame, l4: packet.l4, headerLength: seg.headerLength) : 0
            result = tcp.update(seg, scale: scale, reply: reply, sequenceCheck: sequenceCheck, timeout: &timeout)
            c.proto = .tcp(tcp)
        case .icmp(var replied):
            if reply { replied = true }
            result = replied ? .valid : .validNew
            timeout = replied ? .icmpReply : .icmpFirst
            c.proto = .icmp(replied: replied)
        case .other(var s):
            if reply {
                s = .bidirectional
            } else if s == .first {
                s = .multiple
            }
            c.proto = .other(s)
            timeout = s == .bidirectional ? .otherBidir : s == .multiple ? .otherMultiple : .otherFirst
            result = s == .bidirectional ? .valid : .validNew
        }
        if let timeout {
            c.timeoutPolicy = timeout
            c.expiration = now + timeout.seconds * 1_000_000_000
        }
        return result
    }

    /// nat_packet: rewrites a packet of connection `c` to the tuple its direction has
    /// after NAT. For an ICMP error the quoted datagram gets the reverse rewrite and the
    /// ICMP checksum is recomputed. Returns the outer header's new tuple.
    func applyNAT(_ c: Connection, reply: Bool, packet: ParsedPacket, frame p: UnsafeMutableRawPointer, partial: Bool,
                  state: inout CTState) -> CTTuple {
        let direction = reply ? c.nat.reversed : c.nat
        state.insert(direction.ctState)
        let v6 = packet.tuple.isIPv6
        var outer = outerTuple(p, packet)
        if packet.related {
            // The quoted datagram went the other way: it gets the rewrite that packets of
            // its direction get (the error's direction's NAT, reversed).
            let quoted = reply ? c.original : c.reply
            let innerProto = quoted.proto
            Rewrite.setPorts(p, l4: packet.innerL4, l4End: packet.end, proto: innerProto, v6: v6,
                             src: quoted.srcPort, dst: quoted.dstPort, partial: false)
            setQuotedAddress(p, packet: packet, source: true, to: quoted.src, proto: innerProto)
            setQuotedAddress(p, packet: packet, source: false, to: quoted.dst, proto: innerProto)
            switch direction {
            case .source: outer.src = quoted.dst
            case .destination: outer.dst = quoted.src
            case .none: break
            }
            Rewrite.setAddress(p, l3: packet.l3, l4: packet.l4, l4End: packet.end, proto: v6 ? ICMPv6.proto : IPProto.icmp,
                               source: true, to: outer.src, partial: false)
            Rewrite.setAddress(p, l3: packet.l3, l4: packet.l4, l4End: packet.end, proto: v6 ? ICMPv6.proto : IPProto.icmp,
                               source: false, to: outer.dst, partial: false)
            // Recompute the ICMP checksum over the rewritten message.
            let len = packet.end - packet.l4
            p.setBE16(packet.l4 + 2, 0)
            var initial: UInt64 = 0
            if v6 {
                initial = Checksum.pseudoHeaderIPv6(src: outer.src.value, dst: outer.dst.value, proto: ICMPv6.proto, length: len)
            }
            p.setBE16(packet.l4 + 2, Checksum.compute(p + packet.l4, count: len, initial: initial))
            return outer
        }
        let target = reply ? c.original.reversed() : c.reply.reversed()
        switch direction {
        case .source: outer.src = target.src
        case .destination: outer.dst = target.dst
        case .none: break
        }
        Rewrite.setAddress(p, l3: packet.l3, l4: packet.l4, l4End: packet.end, proto: packet.tuple.proto,
                           source: true, to: outer.src, partial: partial)
        Rewrite.setAddress(p, l3: packet.l3, l4: packet.l4, l4End: packet.end, proto: packet.tuple.proto,
                           source: false, to: outer.dst, partial: partial)
        if target.hasPorts {
            outer.srcPort = target.srcPort
            outer.dstPort = target.dstPort
            Rewrite.setPorts(p, l4: packet.l4, l4End: packet.end, proto: packet.tuple.proto, v6: v6,
                             src: target.srcPort, dst: target.dstPort, partial: partial)
        }
        return outer
    }

    /// The outer header's addresses and ports as they are in the frame.
    private func outerTuple(_ p: UnsafeRawPointer, _ packet: ParsedPacket) -> CTTuple {
        let v6 = packet.tuple.isIPv6
        let src = v6 ? CTAddress(ipv6: p.be128(packet.l3 + 8)) : CTAddress(ipv4: p.be32(packet.l3 + 12))
        let dst = v6 ? CTAddress(ipv6: p.be128(packet.l3 + 24)) : CTAddress(ipv4: p.be32(packet.l3 + 16))
        var t = CTTuple(src: src, dst: dst, proto: packet.tuple.proto, zone: packet.tuple.zone)
        if !packet.related && packet.tuple.hasPorts {
            t.srcPort = p.be16(packet.l4)
            t.dstPort = p.be16(packet.l4 + 2)
        }
        return t
    }

    /// An address of the quoted header: its IPv4 header checksum and its (possibly cut
    /// off) transport checksum are updated like the outer ones.
    private func setQuotedAddress(_ p: UnsafeMutableRawPointer, packet: ParsedPacket, source: Bool, to a: CTAddress,
                                  proto: UInt8) {
        Rewrite.setAddress(p, l3: packet.innerL3, l4: packet.innerL4, l4End: packet.end, proto: proto,
                           source: source, to: a, partial: false)
    }
}
