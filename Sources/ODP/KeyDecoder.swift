import Netlink
import Packet

/// Key and mask attributes → `FlowMatch`, with the validation of Open vSwitch's
/// odp_flow_key_to_flow()/odp_flow_key_to_mask() (the rules the kernel's
/// flow_netlink.c also enforces): expected attributes present, nothing unexpected,
/// L3/L4 masks only under exact EtherType / IP protocol, MPLS bottom of stack,
/// VLAN CFI, ARP opcode range, tunnel TTL.
public struct KeyDecoder: Sendable {
    public var vlanLimit: Int

    public init(vlanLimit: Int = ODPConstants.vlanLimit) { self.vlanLimit = vlanLimit }

    enum Fitness: Equatable {
        case perfect, tooMuch(String), tooLittle(String), error(String)
    }

    /// The attributes of one level of a key, by type: where each payload lies in the
    /// message (no copies, no dictionary).
    struct Present {
        /// The attributes' bytes, valid for the whole decode (`decode` holds them): read
        /// in place, an attribute looked up costs no reference counting (an ArraySlice
        /// payload per look was a retain and a release, a tenth of a software put).
        let bytes: UnsafeRawBufferPointer
        var bits: UInt64 = 0
        /// For each type present: payload start << 32 | payload end, as offsets into
        /// `bytes`, for types 0...KeyAttr.max. On the stack of the decode (`decode`'s
        /// temporary allocation, the outer attributes' and then each VLAN encap's):
        /// inline (an InlineArray, 264 bytes) the whole struct was copied for every
        /// attribute looked up, span or not, and an array cost two allocations a flow.
        let bounds: UnsafeMutablePointer<UInt64>
        static let boundsCount = Int(KeyAttr.max) + 1

        init(_ bytes: UnsafeRawBufferPointer, bounds: UnsafeMutablePointer<UInt64>) {
            self.bytes = bytes
            self.bounds = bounds
        }

        func has(_ t: UInt16) -> Bool { bits & (1 << UInt64(t)) != 0 }
        /// The payload of attribute `t`, if present.
        subscript(t: UInt16) -> RawPayload? {
            guard has(t) else { return nil }
            let b = bounds[Int(t)]
            return RawPayload(UnsafeRawBufferPointer(rebasing: bytes[Int(b >> 32)..<Int(b & 0xffff_ffff)]))
        }
    }

    /// The key a mask is decoded for (none while decoding a key), read in place: as an
    /// Optional<FlowKey> every look at one field copied the whole 224-byte key.
    struct SourceKey {
        let key: UnsafePointer<FlowKey>?
        init(_ key: UnsafePointer<FlowKey>?) { self.key = key }
        subscript(f: FlowField) -> UInt64? { key.map { $0.pointee[f] } }
    }

    static func names(_ bits: UInt64) -> String {
        (0..<64).filter { bits & (1 << UInt64($0)) != 0 }.map { KeyAttr.name(UInt16($0)) }.joined(separator: ",")
    }

    /// parse_flow_nlattrs() as the kernel's __parse_flow_nlattrs() applies it: a type
    /// above OVS_KEY_ATTR_MAX refused, lengths checked, duplicates refused. Fills `p`
    /// (made for `bytes`) in place: a Present is a few hundred bytes, and returning one
    /// wrapped in a Result copied it for every key and mask.
    func parseAttributes(_ bytes: UnsafeRawBufferPointer, into p: inout Present) -> ODPError? {
        // The framing checks of AttributeParser.parse, without building a list.
        var walk = AttributeWalk(bytes)
        while let h = walk.next() {
            let type = h.type, count = h.length - 4
            if type > KeyAttr.max {
                return ODPError(position: nil, "key type \(type) is out of range max \(KeyAttr.max)")
            }
            if let expected = KeyAttr.length(type), expected >= 0, count != expected {
                return ODPError(position: nil,
                    "attribute \(KeyAttr.name(type)) has length \(count) but should have length \(expected)")
            }
            if p.has(type) {
                return ODPError(position: nil, "duplicate \(KeyAttr.name(type)) attribute in flow key")
            }
            p.bits |= 1 << UInt64(type)
            p.bounds[Int(type)] = UInt64(h.offset + 4) << 32 | UInt64(h.offset + h.length)
        }
        return walk.error.map { ODPError(position: nil, $0.description) }
    }

    /// Decodes a key (no mask yet).
    public func decodeKey(_ bytes: [UInt8]) -> Result<FlowKey, ODPError> { decodeKey(bytes[...]) }

    public func decodeKey(_ bytes: ArraySlice<UInt8>) -> Result<FlowKey, ODPError> {
        var flow = FlowKey()
        let f = decode(bytes, into: &flow, isMask: false, src: SourceKey(nil))
        if case .perfect = f { return .success(flow) }
        return .failure(Self.error(f, mask: false))
    }

    /// Decodes a mask for an already decoded key. An empty mask means an exact match
    /// of every field relevant to the key's packet.
    public func decodeMask(_ bytes: [UInt8], for key: FlowKey) -> Result<FlowKey, ODPError> { decodeMask(bytes[...], for: key) }

    public func decodeMask(_ bytes: ArraySlice<UInt8>, for key: FlowKey) -> Result<FlowKey, ODPError> {
        if bytes.isEmpty { return .success(Self.exactMask(for: key)) }
        var mask = FlowKey()
        let f = withUnsafePointer(to: key) { decode(bytes, into: &mask, isMask: true, src: SourceKey($0)) }
        if case .perfect = f { return .success(mask) }
        return .failure(Self.error(f, mask: true))
    }

    /// FlowMatch.fromAttributes() writing into `match` (fresh) in place: a match is two
    /// 224-byte keys, and a flow put should not copy them around.
    public func decodeMatch(key: ArraySlice<UInt8>, mask: ArraySlice<UInt8>, into match: inout FlowMatch) -> ODPError? {
        // Through a pointer: the mask decoder reads the key while writing the mask, which
        // as two accesses to `match` made the compiler copy the key (and the mask) around.
        withUnsafeMutablePointer(to: &match) { m in
            let keyFitness = decode(key, into: &m.pointee.key, isMask: false, src: SourceKey(nil))
            guard case .perfect = keyFitness else { return Self.error(keyFitness, mask: false) }
            return decodeMask(mask, into: m)
        }
    }

    /// The mask half of `decodeMatch`, for the key already decoded in `m`: decoded,
    /// checked and narrowed to the fields relevant to the key's packet.
    func decodeMask(_ mask: ArraySlice<UInt8>, into m: UnsafeMutablePointer<FlowMatch>) -> ODPError? {
        if mask.isEmpty {
            m.pointee.mask = Self.exactMask(for: m.pointee.key)
        } else {
            let maskFitness = decode(mask, into: &m.pointee.mask, isMask: true, src: SourceKey(m.pointer(to: \.key)))
            guard case .perfect = maskFitness else { return Self.error(maskFitness, mask: true) }
        }
        if m.pointee.mask[.inPort] != FlowField.inPort.valueMask {
            return ODPError(position: nil, "in_port is not an exact match")
        }
        if m.pointee.mask[.vlanTCI] == 0 { m.pointee.mask[.vlanTCI] = UInt64(VLAN.vidMask | VLAN.present) }
        if m.pointee.key[.ctOrigProto] != 0 {
            m.pointee.mask.formMasked(by: Self.relevantMask(for: m.pointee.key))
        } else {
            let relevant = RelevantMasks.index(for: m.pointee.key)
            RelevantMasks.shared.combinations.withUnsafeBufferPointer { m.pointee.mask.formMasked(by: $0[relevant]) }
        }
        return nil
    }

    static func error(_ f: Fitness, mask: Bool) -> ODPError {
        let what = mask ? "flow mask" : "flow key"
        switch f {
        case .perfect: return ODPError(position: nil, "ok")
        case .tooMuch(let why): return ODPError(position: nil, "\(what): present but not expected: \(why)")
        case .tooLittle(let why): return ODPError(position: nil, "\(what): expected but not present: \(why)")
        case .error(let why): return ODPError(position: nil, "\(what): \(why)")
        }
    }

    func checkExpectations(_ present: UInt64, _ expected: UInt64) -> Fitness {
        let missing = expected & ~present
        if missing != 0 { return .tooLittle(Self.names(missing)) }
        let extra = present & ~expected
        if extra != 0 { return .tooMuch(Self.names(extra)) }
        return .perfect
    }

    // MARK: odp_flow_key_to_flow__

    func decode(_ bytes: ArraySlice<UInt8>, into flow: inout FlowKey, isMask: Bool, src srcOrNil: SourceKey) -> Fitness {
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: Present.boundsCount) { bounds in
            bytes.withUnsafeBytes { decode($0, into: &flow, isMask: isMask, src: srcOrNil, bounds: bounds.baseAddress!) }
        }
    }

    private func decode(_ bytes: UnsafeRawBufferPointer, into flow: inout FlowKey, isMask: Bool, src srcOrNil: SourceKey,
                        bounds: UnsafeMutablePointer<UInt64>) -> Fitness {
        var parsed = Present(bytes, bounds: bounds)
        if let e = parseAttributes(bytes, into: &parsed) { return .error(e.message) }
        // Immutable from here on: a mutable one was copied whole (300 bytes) for every
        // attribute looked up.
        let present = parsed
        var expected: UInt64 = 0
        // Fields of the key a mask is decoded for (or of the key so far): read one at a
        // time, since copying a whole FlowKey per look is what decoding used to spend.
        // No local function captures `flow` or `present`: one that did copied them (224
        // and 300 bytes) at every call, a quarter of an add's CPU in the software path.
        func bit(_ t: UInt16) -> UInt64 { 1 << UInt64(t) }

        if let a = present[KeyAttr.recircID] {
            flow[.recircID] = UInt64(Self.le32(a))
            expected |= bit(KeyAttr.recircID)
        } else if isMask {
            flow[.recircID] = 0xffff_ffff  // always exact when not specified
        }
        if present.bits & (bit(KeyAttr.dpHash) | bit(KeyAttr.priority) | bit(KeyAttr.skbMark) | bit(KeyAttr.ctMark)) != 0 {
            for (t, f) in [(KeyAttr.dpHash, FlowField.dpHash), (KeyAttr.priority, .priority), (KeyAttr.skbMark, .skbMark),
                           (KeyAttr.ctMark, .ctMark)] {
                if let a = present[t] {
                    flow[f] = UInt64(Self.le32(a))
                    expected |= bit(t)
                }
            }
        }
        if let a = present[KeyAttr.ctState] {
            flow[.ctState] = UInt64(Self.le32(a) & 0xff)
            expected |= bit(KeyAttr.ctState)
        }
        if let a = present[KeyAttr.ctZone] {
            flow[.ctZone] = UInt64(a.le16(0))
            expected |= bit(KeyAttr.ctZone)
        }
        if let a = present[KeyAttr.ctLabels] {
            flow[.ctLabel] = a.le128(0)
            expected |= bit(KeyAttr.ctLabels)
        }
        if let a = present[KeyAttr.ctOrigTupleIPv4] {
            let p = a
            flow[.ctOrigIPv4Src] = UInt64(p.be32(0))
            flow[.ctOrigIPv4Dst] = UInt64(p.be32(4))
            flow[.ctOrigTPSrc] = UInt64(p.be16(8))
            flow[.ctOrigTPDst] = UInt64(p.be16(10))
            flow[.ctOrigProto] = UInt64(a[12])
            expected |= bit(KeyAttr.ctOrigTupleIPv4)
        }
        if let a = present[KeyAttr.ctOrigTupleIPv6] {
            let p = a
            flow[.ctOrigIPv6Src] = p.be128(0)
            flow[.ctOrigIPv6Dst] = p.be128(16)
            flow[.ctOrigTPSrc] = UInt64(p.be16(32))
            flow[.ctOrigTPDst] = UInt64(p.be16(34))
            flow[.ctOrigProto] = UInt64(a[36])
            expected |= bit(KeyAttr.ctOrigTupleIPv6)
        }
        if let a = present[KeyAttr.tunnel] {
            switch decodeTunnel(Attribute(type: KeyAttr.tunnel, isNested: true, payload: Array(a.bytes)[...]), into: &flow) {
            case .perfect: expected |= bit(KeyAttr.tunnel)
            case .error(let e): return .error(e)
            default: break
            }
        }
        if let a = present[KeyAttr.inPort] {
            flow[.inPort] = UInt64(Self.le32(a))
            expected |= bit(KeyAttr.inPort)
        } else if !isMask {
            flow[.inPort] = UInt64(ODPConstants.noPort)
        }
        if let a = present[KeyAttr.packetType] {
            flow[.packetType] = UInt64(a.be32(0))
            expected |= bit(KeyAttr.packetType)
            if UInt32(truncatingIfNeeded: srcOrNil[.packetType] ?? flow[.packetType]) >> 16 == ODPConstants.namespaceEtherType {
                flow[.ethType] = flow[.packetType] & 0xffff
            }
        } else if !isMask {
            flow[.packetType] = UInt64(ODPConstants.packetTypeEthernet)
        }
        if let a = present[KeyAttr.ethernet] {
            let p = a
            flow[.ethSrc] = p.be48(0)
            flow[.ethDst] = p.be48(6)
            if !isMask { flow[.packetType] = UInt64(ODPConstants.packetTypeEthernet) }
            expected |= bit(KeyAttr.ethernet)
        } else if let a = present[KeyAttr.ethertype] {
            if !isMask {
                flow[.packetType] = UInt64(ODPConstants.namespaceEtherType << 16 | UInt32(a.be16(0)))
            }
            expected |= bit(KeyAttr.ethertype)
        }
        if let f = parseEthertype(present, &expected, &flow, isMask: isMask, src: srcOrNil) { return f }

        let vlanPath = isMask ? (srcOrNil[.vlanTCI] ?? flow[.vlanTCI]) & UInt64(VLAN.present) != 0
            : EtherType.isVLAN(UInt16(truncatingIfNeeded: srcOrNil[.ethType] ?? flow[.ethType]))
        if vlanPath {
            return parse8021qOnward(present, expected, &flow, isMask: isMask, src: srcOrNil)
        }
        if isMask {
            // A missing VLAN mask means an exact match on "no VLAN".
            flow[.vlanTPID] = 0xffff
            flow[.vlanTCI] = 0xffff
            if let a = present[KeyAttr.vlan] {
                flow[.vlanTCI] = UInt64(a.be16(0))
                expected |= bit(KeyAttr.vlan)
            }
        }
        return parseL25Onward(present, &expected, &flow, isMask: isMask, src: srcOrNil, needCheck: true)
    }

    static func le32(_ a: RawPayload) -> UInt32 { a.le32(0) }

    /// parse_ethertype(): nil on success, a fitness on error.
    func parseEthertype(_ present: Present, _ expected: inout UInt64, _ flow: inout FlowKey, isMask: Bool,
                        src: SourceKey) -> Fitness? {
        if let a = present[KeyAttr.ethertype] {
            let t = a.be16(0)
            flow[.ethType] = UInt64(t)
            if !isMask && t < 0x600 { return .error("invalid Ethertype \(t) in flow key") }
            if isMask, let srcType = src[.ethType], srcType < 0x600, t != 0xffff {
                // An 802.2 frame's dl_type is FLOW_DL_TYPE_NONE (0x5ff) in OVS.
                let shown = srcType == UInt64(EtherType.ieee8022) ? 0x5ff : srcType
                return .error("can't bitwise match non-Ethernet II \"Ethertype\" \(hexAlt(shown)) (with mask \(hexAlt(t)))")
            }
            expected |= 1 << UInt64(KeyAttr.ethertype)
        } else if !isMask {
            if present.has(KeyAttr.ipv4) {
                flow[.ethType] = UInt64(EtherType.ipv4)
            } else if present.has(KeyAttr.ipv6) {
                flow[.ethType] = UInt64(EtherType.ipv6)
            } else if present.has(KeyAttr.mpls) {
                flow[.ethType] = UInt64(EtherType.mplsUnicast)
            } else {
                flow[.ethType] = UInt64(EtherType.ieee8022)  // not Ethernet II
            }
        } else if let srcPacketType = src[.packetType], let srcType = src[.ethType] {
            if srcPacketType != UInt64(ODPConstants.packetTypeEthernet) {
                flow[.ethType] = 0xffff
            } else if srcType < 0x600 {
                return .error("mask expected for non-Ethernet II frame")
            }
        }
        return nil
    }

    func parse8021qOnward(_ present0: Present, _ expected0: UInt64, _ flow: inout FlowKey, isMask: Bool,
                          src: SourceKey) -> Fitness {
        var present = present0
        var expected = expected0
        var fitness: Fitness = .error("vlan")
        var encaps = 0
        let tciFields: [FlowField] = [.vlanTCI, .cvlanTCI]
        let tpidFields: [FlowField] = [.vlanTPID, .cvlanTPID]
        while encaps < min(vlanLimit, 2) {
            let more = isMask ? (src[tciFields[encaps]] ?? flow[tciFields[encaps]]) & UInt64(VLAN.present) != 0
                              : EtherType.isVLAN(UInt16(truncatingIfNeeded: flow[.ethType]))
            if !more { break }
            let encap = present[KeyAttr.encap]
            if !isMask {
                expected |= 1 << UInt64(KeyAttr.vlan) | 1 << UInt64(KeyAttr.encap)
            } else {
                if present.has(KeyAttr.vlan) { expected |= 1 << UInt64(KeyAttr.vlan) }
                if present.has(KeyAttr.encap) { expected |= 1 << UInt64(KeyAttr.encap) }
            }
            fitness = checkExpectations(present.bits, expected)
            flow[tpidFields[encaps]] = flow[.ethType]
            flow[.ethType] = 0
            let tci: UInt16 = present[KeyAttr.vlan].map { $0.be16(0) } ?? 0
            flow[tciFields[encaps]] = UInt64(tci)
            if !isMask {
                if !present.has(KeyAttr.vlan) || !present.has(KeyAttr.encap) {
                    let needed = UInt64(1) << UInt64(KeyAttr.vlan) | UInt64(1) << UInt64(KeyAttr.encap)
                    return .tooLittle(Self.names(needed & ~present.bits))
                } else if tci == 0 {
                    // A truncated 802.1Q header.
                    if case .perfect = fitness, (encap?.count ?? 0) > 0 { return .tooMuch("encap") }
                    return fitness
                } else if tci & VLAN.present == 0 {
                    return .error("OVS_KEY_ATTR_VLAN \(hex0x4(tci)) is nonzero but CFI bit is not set")
                }
            } else if !present.has(KeyAttr.encap) {
                return fitness
            }
            present = Present(encap!.bytes, bounds: present.bounds)
            if let e = parseAttributes(encap!.bytes, into: &present) { return .error(e.message) }
            expected = 0
            if let f = parseEthertype(present, &expected, &flow, isMask: isMask, src: src) { return f }
            let inner = parseL25Onward(present, &expected, &flow, isMask: isMask, src: src, needCheck: false)
            if inner != .perfect { return inner }
            encaps += 1
        }
        return checkExpectations(present.bits, expected)
    }

    /// parse_l2_5_onward(): MPLS, L3 and L4.
    func parseL25Onward(_ present: Present, _ expected: inout UInt64, _ flow: inout FlowKey, isMask: Bool, src srcOrNil: SourceKey,
                        needCheck: Bool) -> Fitness {
        func bit(_ t: UInt16) -> UInt64 { 1 << UInt64(t) }
        func s(_ f: FlowField) -> UInt64 { srcOrNil[f] ?? flow[f] }
        var checkNonZero = false
        var checkBit: UInt16 = 0
        let srcType = UInt16(truncatingIfNeeded: s(.ethType))

        if EtherType.isMPLS(srcType) {
            if !isMask || present.has(KeyAttr.mpls) { expected |= bit(KeyAttr.mpls) }
            if let a = present[KeyAttr.mpls] {
                let p = a
                let n = p.count / 4
                if p.isEmpty || p.count % 4 != 0 { return .error("MPLS LSEs have invalid length \(p.count)") }
                if flow[.mplsLSE] != 0 && flow[.ethType] != 0xffff {
                    return .error("unexpected MPLS Ethertype mask \(hexAlt(flow[.ethType]))")
                }
                let fields: [FlowField] = [.mplsLSE, .mplsLSE1, .mplsLSE2]
                for i in 0..<min(n, 3) { flow[fields[i]] = UInt64(p.be32(i * 4)) }
                if n > 3 { return .tooMuch("mpls") }
                if !isMask {
                    for i in 0..<max(0, n - 1) where p.be32(i * 4) & 0x100 != 0 {
                        return .error("MPLS BOS set in non-innermost label")
                    }
                    if n < 3 && p.be32((n - 1) * 4) & 0x100 == 0 { return .tooLittle("mpls bottom of stack") }
                }
            }
            return needCheck ? checkExpectations(present.bits, expected) : .perfect
        } else if srcType == EtherType.ipv4 {
            if !isMask { expected |= bit(KeyAttr.ipv4) }
            if let a = present[KeyAttr.ipv4] {
                let p = a
                flow[.ipv4Src] = UInt64(p.be32(0))
                flow[.ipv4Dst] = UInt64(p.be32(4))
                flow[.ipProto] = UInt64(p[8])
                flow[.ipTOS] = UInt64(p[9])
                flow[.ipTTL] = UInt64(p[10])
                if isMask {
                    flow[.ipFrag] = p[11] != 0 ? 0xff : 0
                    checkNonZero = p.contains { $0 != 0 }
                    checkBit = KeyAttr.ipv4
                } else {
                    if p[11] > 2 { return .error("OVS_KEY_ATTR_IPV4 has invalid nw_frag \(hexAlt(p[11]))") }
                    flow[.ipFrag] = UInt64(p[11])
                }
            }
        } else if srcType == EtherType.ipv6 {
            if !isMask { expected |= bit(KeyAttr.ipv6) }
            if let a = present[KeyAttr.ipv6] {
                let p = a
                flow[.ipv6Src] = p.be128(0)
                flow[.ipv6Dst] = p.be128(16)
                flow[.ipv6Label] = UInt64(p.be32(32))
                flow[.ipProto] = UInt64(p[36])
                flow[.ipTOS] = UInt64(p[37])
                flow[.ipTTL] = UInt64(p[38])
                if isMask {
                    flow[.ipFrag] = p[39] != 0 ? 0xff : 0
                    checkNonZero = p.contains { $0 != 0 }
                    checkBit = KeyAttr.ipv6
                } else {
                    if p[39] > 2 { return .error("OVS_KEY_ATTR_IPV6 has invalid nw_frag \(hexAlt(p[39]))") }
                    flow[.ipFrag] = UInt64(p[39])
                }
            }
        } else if srcType == EtherType.arp || srcType == EtherType.rarp {
            if !isMask { expected |= bit(KeyAttr.arp) }
            if let a = present[KeyAttr.arp] {
                let p = a
                let op = p.be16(8)
                if !isMask && op & 0xff00 != 0 { return .error("unsupported ARP opcode \(op) in flow key") }
                flow[.ipv4Src] = UInt64(p.be32(0))
                flow[.ipv4Dst] = UInt64(p.be32(4))
                flow[.ipProto] = UInt64(UInt8(truncatingIfNeeded: op))
                flow[.arpSHA] = p.be48(10)
                flow[.arpTHA] = p.be48(16)
                if isMask {
                    checkNonZero = p.contains { $0 != 0 }
                    checkBit = KeyAttr.arp
                }
            }
        } else if srcType == EtherType.nsh {
            return .error("nsh is not supported")
        } else {
            return needCheck ? checkExpectations(present.bits, expected) : .perfect
        }
        if isMask && checkBit != 0 {
            if checkNonZero && flow[.ethType] != 0xffff {
                return .error("unexpected L3 matching with masked Ethertype \(hexAlt(srcType))/\(hexAlt(flow[.ethType]))")
            }
            expected |= bit(checkBit)
        }

        var l4Bit: UInt16 = 0
        let proto = UInt8(truncatingIfNeeded: s(.ipProto))
        let isIP = srcType == EtherType.ipv4 || srcType == EtherType.ipv6
        let laterFrag = s(.ipFrag) == UInt64(FragmentType.later.rawValue)
        if isIP && !laterFrag && (proto == IPProto.tcp || proto == IPProto.udp || proto == IPProto.sctp) {
            let attr = proto == IPProto.tcp ? KeyAttr.tcp : proto == IPProto.udp ? KeyAttr.udp : KeyAttr.sctp
            if !isMask { expected |= bit(attr) }
            if let a = present[attr] {
                let p = a
                flow[.tpSrc] = UInt64(p.be16(0))
                flow[.tpDst] = UInt64(p.be16(2))
                l4Bit = attr
            }
            if proto == IPProto.tcp, let a = present[KeyAttr.tcpFlags] {
                expected |= bit(KeyAttr.tcpFlags)
                flow[.tcpFlags] = UInt64(a.be16(0))
            }
        } else if !laterFrag && ((srcType == EtherType.ipv4 && proto == IPProto.icmp) || (srcType == EtherType.ipv6 && proto == IPProto.icmpv6)) {
            let attr = srcType == EtherType.ipv4 ? KeyAttr.icmp : KeyAttr.icmpv6
            if !isMask { expected |= bit(attr) }
            if let a = present[attr] {
                let p = a
                flow[.tpSrc] = UInt64(p[0])
                flow[.tpDst] = UInt64(p[1])
                l4Bit = attr
                // FlowKey.isND, field by field.
                let isND = s(.ethType) == UInt64(EtherType.ipv6) && s(.ipProto) == UInt64(IPProto.icmpv6) && s(.tpDst) == 0
                    && (s(.tpSrc) == 135 || s(.tpSrc) == 136)
                if attr == KeyAttr.icmpv6 && isND {
                    if !isMask { expected |= bit(KeyAttr.nd) }
                    if let n = present[KeyAttr.nd] {
                        let q = n
                        flow[.ndTarget] = q.be128(0)
                        flow[.ndSLL] = q.be48(16)
                        flow[.ndTLL] = q.be48(22)
                        if isMask {
                            if q.contains(where: { $0 != 0 }) && (flow[.tpSrc] != 0xff || flow[.tpDst] != 0xff) {
                                return .error("ICMP (src,dst) masks should be (0xff,0xff) but are actually (\(hexAlt(flow[.tpSrc])),\(hexAlt(flow[.tpDst])))")
                            }
                            expected |= bit(KeyAttr.nd)
                        }
                    }
                    if present.has(KeyAttr.ndExtensions) { return .error("nd_ext is not supported") }
                }
            }
        }
        if isMask && l4Bit != 0 {
            if (flow[.tpSrc] != 0 || flow[.tpDst] != 0) && flow[.ipProto] != 0xff {
                return .error("flow matches on L4 ports but does not define an L4 protocol")
            }
            expected |= bit(l4Bit)
        }
        return needCheck ? checkExpectations(present.bits, expected) : .perfect
    }

    /// odp_tun_key_from_attr__().
    func decodeTunnel(_ attr: Attribute, into flow: inout FlowKey) -> Fitness {
        let list: [Attribute]
        do { list = try attr.nestedAttributes() } catch { return .error("malformed tunnel key") }
        var ttl = false, unknown = false
        var flags = TunnelFlags(rawValue: flow[.tunnelFlags])
        for a in list {
            if let len = TunnelAttr.length(a.type), len >= 0, a.count != len {
                return .error("tunnel key attribute \(a.type) should have length \(len) but actually has \(a.count)")
            }
            let p = PayloadBytes(a.payload)
            switch a.type {
            case TunnelAttr.id:
                flow[.tunnelID] = p.be64(0)
                flags.insert(.key)
            case TunnelAttr.ipv4Src: flow[.tunnelIPv4Src] = UInt64(p.be32(0))
            case TunnelAttr.ipv4Dst: flow[.tunnelIPv4Dst] = UInt64(p.be32(0))
            case TunnelAttr.ipv6Src: flow[.tunnelIPv6Src] = p.be128(0)
            case TunnelAttr.ipv6Dst: flow[.tunnelIPv6Dst] = p.be128(0)
            case TunnelAttr.tos: flow[.tunnelTOS] = UInt64(p[0])
            case TunnelAttr.ttl:
                flow[.tunnelTTL] = UInt64(p[0])
                ttl = true
            case TunnelAttr.dontFragment: flags.insert(.dontFragment)
            case TunnelAttr.csum: flags.insert(.checksum)
            case TunnelAttr.oam: flags.insert(.oam)
            case TunnelAttr.tpSrc: flow[.tunnelTPSrc] = UInt64(p.be16(0))
            case TunnelAttr.tpDst: flow[.tunnelTPDst] = UInt64(p.be16(0))
            case TunnelAttr.geneveOpts, TunnelAttr.vxlanOpts, TunnelAttr.erspanOpts:
                return .error("tunnel options are not supported")
            default:
                unknown = true
            }
        }
        flow[.tunnelFlags] = flags.rawValue
        if !ttl { return .error("tunnel options missing TTL") }
        return unknown ? .tooMuch("tunnel") : .perfect
    }
}

/// Access to the tunnel-key decoder for actions (set(tunnel(…))).
public enum KeyDecoderBridge {
    public static func decodeTunnel(_ payload: [UInt8], into key: inout FlowKey) -> Result<Void, ODPError> {
        let a = Attribute(type: KeyAttr.tunnel, isNested: true, payload: payload[...])
        switch KeyDecoder().decodeTunnel(a, into: &key) {
        case .perfect: return .success(())
        case .tooMuch(let w): return .failure(ODPError(position: nil, "unexpected tunnel attributes: \(w)"))
        case .tooLittle(let w): return .failure(ODPError(position: nil, "missing tunnel attributes: \(w)"))
        case .error(let e): return .failure(ODPError(position: nil, e))
        }
    }
}
