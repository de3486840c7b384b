// libFuzzer target: the ODP text language (ovs-dpctl flow syntax) in Sources/ODP.
// Input: "KEY<TAB>ACTIONS" as UTF-8 (the layout of the seed corpus); without a tab the whole
// input is tried as a key and as an action list.
//
// Checks: no trap in ODPText.parseKey / parseActions / normalize. With ESW_FUZZ_STRICT=1
// also that normalize is idempotent (a round-trip property, not a crash: off by default so
// that scripts/fuzz.sh reports crashes only).
import Netlink
import ODP
import Packet

#if canImport(Glibc)
import Glibc
#endif

let strict = getenv("ESW_FUZZ_STRICT").map { String(cString: $0) == "1" } ?? false
let portNames: [String: UInt32] = ["br0": 0, "p0": 1, "pf0vf0": 2, "pf0vf1": 3, "vxlan_sys_4789": 4]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzODPText(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let keyText: String, actionText: String
    if let tab = text.firstIndex(of: "\t") {
        keyText = String(text[..<tab])
        actionText = String(text[text.index(after: tab)...])
    } else {
        keyText = text
        actionText = text
    }

    _ = try? ODPText.parseKey(keyText, portNames: portNames)
    _ = try? ODPText.parseActions(actionText)

    // vlanLimit 1 (OVS's default) and 2 (QinQ); verbose or not, from the input length so
    // that one input always takes the same path.
    let vlanLimit = 1 + size % 2
    let verbose = size % 3 == 0
    guard let out = try? ODPText.normalize(key: keyText, actions: actionText, verbose: verbose, vlanLimit: vlanLimit)
    else { return 0 }

    // Normalizing is idempotent: what normalize prints, if it parses again, normalizes to
    // itself. (It need not parse again: OVS prints forms it refuses as input, such as
    // eth_type(0/0xffff) for an empty key or ipv4(proto=6,...) without the wildcarded tcp(),
    // keys.tsv has both; nor is the verbose form meant to be read back.)
    guard strict, !verbose, let r = out.firstRange(of: ", actions:") else { return 0 }
    let k2 = String(out[..<r.lowerBound]), a2 = String(out[r.upperBound...])
    if let again = try? ODPText.normalize(key: k2, actions: a2, verbose: false, vlanLimit: vlanLimit), again != out {
        fatalError("normalize is not idempotent:\n  input: \(keyText)\t\(actionText)\n  once:  \(out)\n  twice: \(again)")
    }
    return 0
}
