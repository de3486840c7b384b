import Testing
@testable import ODP

/// One netlink attribute as the datapath sees it: 16-bit length and type (host
/// order), payload, padding to 4 bytes. Nested attributes are just attributes
/// whose payload is more attributes.
func nla(_ type: UInt16, _ payload: [UInt8]) -> [UInt8] {
    let len = 4 + payload.count
    var b: [UInt8] = [UInt8(len & 0xff), UInt8(len >> 8), UInt8(type & 0xff), UInt8(type >> 8)] + payload
    while b.count % 4 != 0 { b.append(0) }
    return b
}

func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
func be32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) } }

/// 0-based UTF-8 offset of the first occurrence of `needle` in `text`.
func offset(of needle: String, in text: String) -> Int? {
    let t = Array(text.utf8), n = Array(needle.utf8)
    guard n.count <= t.count else { return nil }
    for i in 0...(t.count - n.count) where Array(t[i..<(i + n.count)]) == n { return i }
    return nil
}

/// The error parsing `text` as a key, or nil when it parses.
func keyParseError(_ text: String) -> ODPError? {
    do { _ = try ODPText.parseKey(text); return nil } catch { return error }
}

/// The error parsing `text` as actions, or nil when they parse.
func actionParseError(_ text: String) -> ODPError? {
    do { _ = try ODPText.parseActions(text); return nil } catch { return error }
}

/// Text → key and mask attributes → the datapath's match (what add-flow does).
func match(_ text: String, vlanLimit: Int = ODPConstants.vlanLimit) throws -> FlowMatch {
    let p = try ODPText.parseKey(text)
    return try FlowMatch.fromAttributes(key: p.key, mask: p.mask, vlanLimit: vlanLimit).get()
}

/// The error the datapath gives for a key that parses, or nil when it is accepted.
func matchError(_ text: String, vlanLimit: Int = ODPConstants.vlanLimit) throws -> ODPError? {
    let p = try ODPText.parseKey(text)
    switch FlowMatch.fromAttributes(key: p.key, mask: p.mask, vlanLimit: vlanLimit) {
    case .success: return nil
    case .failure(let e): return e
    }
}
