import Netlink

/// The ODP text language, end to end.
public enum ODPText {
    /// A parsed key: attribute lists as they go over the wire, and the ufid if written.
    public struct ParsedKey: Sendable {
        public var key: [UInt8]
        public var mask: [UInt8]
        public var ufid: UInt128?
    }

    public static func parseKey(_ text: String, portNames: [String: UInt32] = [:]) throws(ODPError) -> ParsedKey {
        try parseKey(utf8: Array(text.utf8), portNames: portNames)
    }

    /// The same from the text's bytes (a flow file's line, never made a String).
    public static func parseKey(utf8 text: [UInt8], portNames: [String: UInt32] = [:]) throws(ODPError) -> ParsedKey {
        var k = AttributeWriter(), m = AttributeWriter()
        let ufid = try parseKey(utf8: text, portNames: portNames, key: &k, mask: &m)
        return ParsedKey(key: k.bytes, mask: m.bytes, ufid: ufid)
    }

    /// The same into writers the caller keeps (a flow file's lines reuse theirs: no
    /// arrays made per line). Returns the ufid written in the text, if any.
    public static func parseKey(utf8 text: [UInt8], portNames: [String: UInt32], key k: inout AttributeWriter,
                                mask m: inout AttributeWriter) throws(ODPError) -> UInt128? {
        var p = KeyParser(scan: Scan(utf8: text), portNames: portNames)
        let ufid = try p.parseKey(key: &k, mask: &m)
        try checkFits(k, "the flow key is")
        try checkFits(m, "the flow mask is")
        return ufid
    }

    public static func parseActions(_ text: String) throws(ODPError) -> [UInt8] {
        try parseActions(utf8: Array(text.utf8))
    }

    public static func parseActions(utf8 text: [UInt8]) throws(ODPError) -> [UInt8] {
        var p = ActionParser(scan: Scan(utf8: text))
        var w = AttributeWriter()
        try p.parseAll(into: &w)
        try checkFits(w, "the actions are")
        return w.bytes
    }

    /// Refuses attributes that cannot travel: the list goes as one attribute's payload,
    /// and no attribute inside it may be longer than netlink's 16-bit length either.
    static func checkFits(_ w: AttributeWriter, _ subject: String) throws(ODPError) {
        if let o = w.overflow {
            throw ODPError(position: nil, "\(subject) too long: an attribute of \(o.length) bytes, at most \(AttributeWriter.maxLength)")
        }
        guard w.bytes.count <= AttributeWriter.maxPayload else {
            throw ODPError(position: nil, "\(subject) too long: \(w.bytes.count) bytes, at most \(AttributeWriter.maxPayload)")
        }
    }

    /// What `dpctl/add-flow KEY ACTIONS` followed by `dpctl/dump-flows` prints for the
    /// flow's key and actions, without a datapath: `KEY, actions:ACTIONS`.
    public static func normalize(key: String, actions: String, verbose: Bool = false, vlanLimit: Int = ODPConstants.vlanLimit) throws(ODPError) -> String {
        let k: ParsedKey
        do { k = try parseKey(key) } catch { throw ODPError(position: error.position, "flow key: " + error.message, context: error.context) }
        let a: [UInt8]
        do { a = try parseActions(actions) } catch { throw ODPError(position: error.position, "actions: " + error.message, context: error.context) }
        let match: FlowMatch
        switch FlowMatch.fromAttributes(key: k.key, mask: k.mask, vlanLimit: vlanLimit) {
        case .success(let m): match = m
        case .failure(let e): throw e
        }
        return formatKey(match, verbose: verbose, vlanLimit: vlanLimit) + ", actions:" + ActionFormatter().format(a)
    }

    /// A stored match as dump-flows prints its key.
    public static func formatKey(_ match: FlowMatch, verbose: Bool = false, portNames: [UInt32: String] = [:],
                                 vlanLimit: Int = ODPConstants.vlanLimit) -> String {
        let (k, m) = KeyEncoder(vlanLimit: vlanLimit).encode(match)
        return KeyFormatter(verbose: verbose, portNames: portNames).format(key: k, mask: m)
    }
}
