// libFuzzer target: the path the daemon takes for an OVS_FLOW_CMD_NEW/SET message
// (Sources/eswd/FlowService.swift): netlink framing (MessageParser, GenericMessage),
// the attribute splitter (Netlink.AttributeParser), then the ODP key/mask decoder
// (FlowMatch.fromAttributes → KeyDecoder) and the action decoder (ODPAction.decode),
// plus what a dump does with the result (KeyEncoder, KeyFormatter, ActionFormatter).
//
// The input is tried three ways: as a netlink message buffer, as the attribute list of
// one flow message, and directly as a key attribute stream / action attribute stream.
import Netlink
import ODP
import Packet

// OVS_FLOW_ATTR_* (mirrors Sources/ControlProtocol/Families.swift FlowAttr).
let flowAttrKey: UInt16 = 1
let flowAttrActions: UInt16 = 2
let flowAttrMask: UInt16 = 7

/// Every typed accessor on every attribute, recursing into nested payloads.
func walk(_ attrs: [Attribute], depth: Int) {
    for a in attrs {
        _ = try? a.u8()
        _ = try? a.u16()
        _ = try? a.u32()
        _ = try? a.u64()
        _ = try? a.be16()
        _ = try? a.be32()
        _ = try? a.be64()
        _ = try? a.string()
        if depth < 4, let inner = try? a.nestedAttributes() { walk(inner, depth: depth + 1) }
    }
}

func decodeKey(_ key: [UInt8], mask: [UInt8]?) {
    _ = KeyDecoder().decodeKey(key)
    _ = KeyFormatter().format(key: key, mask: mask)
    for vlanLimit in [1, 2] {
        guard case .success(let match) = FlowMatch.fromAttributes(key: key, mask: mask ?? [], vlanLimit: vlanLimit)
        else { continue }
        let (k, m) = KeyEncoder(vlanLimit: vlanLimit).encode(match)
        _ = KeyFormatter(verbose: true).format(key: k, mask: m)
        _ = ODPText.formatKey(match, vlanLimit: vlanLimit)
    }
}

func decodeActions(_ actions: [UInt8]) {
    _ = ActionFormatter().format(actions)
    if let decoded = try? ODPAction.decode(actions) {
        _ = ODPAction.encode(decoded)
        for a in decoded { _ = a.name }
    }
}

/// What FlowService.put does with a flow message's attributes (first occurrence wins, as
/// RequestAttributes does).
func flowMessage(_ bytes: [UInt8]) {
    guard let list = try? AttributeParser.parse(bytes) else { return }
    walk(list, depth: 0)
    let key = list.first { $0.type == flowAttrKey }.map { Array($0.payload) }
    let mask = list.first { $0.type == flowAttrMask }.map { Array($0.payload) }
    let actions = list.first { $0.type == flowAttrActions }.map { Array($0.payload) }
    if let key { decodeKey(key, mask: mask) }
    if let actions { decodeActions(actions) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNetlink(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let messages = try? MessageParser.split(bytes) {
        for m in messages {
            if let g = try? GenericMessage(header: m.header, body: m.body) {
                flowMessage(Array(g.attributes))
                _ = g.encoded()
            }
        }
    }
    flowMessage(bytes)
    decodeKey(bytes, mask: nil)
    decodeActions(bytes)
    return 0
}
