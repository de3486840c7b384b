/// dump-flows `type=`: a comma list of flow types, parsed and applied as OVS 3.1's
/// dpctl does (populate_dump_types and flow_passes_type_filter in lib/dpctl.c), so
/// that both the CLI (which refuses a bad list before asking) and the daemon (which
/// filters) read it one way.
public struct FlowDumpTypes: Equatable, Sendable {
    public var ovs = false
    public var tc = false
    public var dpdk = false
    public var offloaded = false
    public var nonOffloaded = false
    public var partiallyOffloaded = false

    public static let all = FlowDumpTypes(ovs: true, tc: true, dpdk: true, offloaded: true, nonOffloaded: true,
                                          partiallyOffloaded: true)

    /// The names OVS 3.1 accepts, in its order (for help texts).
    public static let names = ["ovs", "tc", "dpdk", "offloaded", "non-offloaded", "partially-offloaded", "all"]

    /// A word of the list that names no type.
    public struct UnknownType: Error, CustomStringConvertible {
        public let word: String
        /// OVS's message (dpctl prints it with " (Invalid argument)").
        public var description: String { "Failed to parse type (\(word))" }
    }

    /// Parses a list such as `offloaded,partially-offloaded`; an empty list selects
    /// nothing, as in OVS.
    public init(parsing list: String) throws(UnknownType) {
        // As populate_dump_types reads the list: one trailing comma ends it, any other
        // empty word is an unknown type; an empty list selects nothing (as OVS's).
        var words = list.split(separator: ",", omittingEmptySubsequences: false)
        if words.last?.isEmpty == true { words.removeLast() }
        for word in words {
            switch word {
            case "ovs": ovs = true
            case "tc": tc = true
            case "dpdk": dpdk = true
            case "offloaded": offloaded = true
            case "non-offloaded": nonOffloaded = true
            case "partially-offloaded": partiallyOffloaded = true
            case "all": self = .all
            default: throw UnknownType(word: String(word))
            }
        }
    }

    public init(ovs: Bool = false, tc: Bool = false, dpdk: Bool = false, offloaded: Bool = false,
                nonOffloaded: Bool = false, partiallyOffloaded: Bool = false) {
        self.ovs = ovs
        self.tc = tc
        self.dpdk = dpdk
        self.offloaded = offloaded
        self.nonOffloaded = nonOffloaded
        self.partiallyOffloaded = partiallyOffloaded
    }

    /// OVS's attrs.offloaded and attrs.dp_layer for a flow in esw's offload state
    /// (FlowAttr.offloaded: 0 software, 1 hardware, 2 pending, 3 failed, 4 partial), as
    /// `dump-flows -m` shows them and `type=` selects by them: only a rule in hardware
    /// is dp:esw. A partial flow is offloaded (the hardware matches and marks) with its
    /// actions in software; a pending or failed rule is not in hardware, so its packets
    /// run in software (OVS shows a flow whose tc offload failed as dp:ovs).
    public static func attributes(offloadState: UInt8) -> (offloaded: Bool, dpLayer: String) {
        switch offloadState {
        case 1: (true, "esw")
        case 4: (true, "ovs")
        default: (false, "ovs")
        }
    }

    /// Whether a flow with these attributes is dumped. `offloaded` is OVS's
    /// attrs.offloaded (in hardware, wholly or partially: a partial flow is offloaded
    /// with dp layer "ovs"); `dpLayer` is what `dp:` shows ("esw" for esw's hardware,
    /// "ovs" for software): "tc" and "dpdk" select nothing here, as in OVS with no
    /// flow of those layers.
    public func passes(offloaded isOffloaded: Bool, dpLayer: String) -> Bool {
        if ovs && dpLayer == "ovs" { return true }
        if tc && dpLayer == "tc" { return true }
        if dpdk && dpLayer == "dpdk" { return true }
        if offloaded && isOffloaded && dpLayer != "ovs" { return true }
        if partiallyOffloaded && isOffloaded && dpLayer == "ovs" { return true }
        if nonOffloaded && !isOffloaded { return true }
        return false
    }
}
