// libFuzzer target: the daemon's whole request path for the messages that carry keys
// and actions, as Sources/eswd/FlowService.swift takes it, minus the socket:
//   OVS_FLOW_CMD_NEW/SET: framing (MessageParser, GenericMessage) → attribute framing
//     check (AttributeParser.validate, as RequestAttributes) → key/mask (KeyDecoder
//     .decodeMatch) → Datapath.putFlow (ODPAction.decode, ActionCompiler.compile,
//     offload attempt, flow table) → what a reply carries (KeyEncoder, ActionFormatter)
//     → delete.
//   OVS_PACKET_CMD_EXECUTE: key (KeyDecoder.decodeKey) → Datapath.execute (decode,
//     FlowExtractor, compile, PacketEngine.execute on the packet).
// Input that is not a message is also run as an action list on a dummy UDP packet.
// The datapath is started without packet thread or netdev (outputs go nowhere), so
// fuzzing creates no network device.
import Logging
import Netlink
import ODP
import OVSDatapath
import Packet

// Mirrors Sources/ControlProtocol/Families.swift (not built here).
let familyFlow: UInt16 = 0x22, familyPacket: UInt16 = 0x23
let flowCmdNew: UInt8 = 1, flowCmdSet: UInt8 = 4, packetCmdExecute: UInt8 = 3
let flowAttrKey: UInt16 = 1, flowAttrActions: UInt16 = 2, flowAttrMask: UInt16 = 7, flowAttrUFID: UInt16 = 10
let packetAttrPacket: UInt16 = 1, packetAttrKey: UInt16 = 2, packetAttrActions: UInt16 = 3

let datapath: Datapath = {
    let d = try! Datapath(name: "fuzz@fuzz0", eswitch: nil, logger: Logger(label: "fuzz") { _ in SwiftLogNoOpLogHandler() })
    d.startWithoutPorts()
    return d
}()

/// A 64-byte IPv4/UDP frame for action lists that come without a packet.
let dummyPacket: [UInt8] = {
    var f = [UInt8](repeating: 0, count: 64)
    f[0...5] = [0x02, 0, 0, 0, 0, 2]
    f[6...11] = [0x02, 0, 0, 0, 0, 1]
    f[12] = 0x08
    f[14] = 0x45
    f[17] = 50                                  // IPv4 total length
    f[22] = 64                                  // TTL
    f[23] = 17                                  // UDP
    f[26...29] = [198, 18, 0, 1]
    f[30...33] = [198, 18, 0, 2]
    f[34...37] = [0x30, 0x39, 0x12, 0xb5]       // ports 12345 → 4789
    f[39] = 30                                  // UDP length
    return f
}()

func flowPut(_ attrs: ArraySlice<UInt8>, modify: Bool) {
    guard (try? AttributeParser.validate(attrs)) != nil else { return }
    func payload(_ t: UInt16) -> ArraySlice<UInt8>? { ((try? AttributeParser.first(t, in: attrs)) ?? nil)?.payload }
    guard let key = payload(flowAttrKey), let actions = payload(flowAttrActions) else { return }
    var match = FlowMatch(key: FlowKey(), mask: FlowKey())
    if KeyDecoder(vlanLimit: ODPConstants.datapathVLANLimit).decodeMatch(key: key, mask: payload(flowAttrMask) ?? [], into: &match) != nil {
        return
    }
    var ufid: UInt128?
    if let u = payload(flowAttrUFID), u.count == 16 { ufid = u.reduce(0) { $0 << 8 | UInt128($1) } }
    let options = Datapath.PutOptions(create: true, modify: modify, clearStats: modify)
    guard let flow = try? datapath.putFlow(match: match, ufid: ufid, actions: Array(actions), options: options) else { return }
    _ = KeyEncoder(vlanLimit: ODPConstants.datapathVLANLimit).encode(flow.match)
    _ = ActionFormatter().format(flow.actionBytes)
    _ = flow.stats
    datapath.deleteFlow(flow)
}

func packetExecute(_ attrs: ArraySlice<UInt8>) {
    guard (try? AttributeParser.validate(attrs)) != nil else { return }
    func bytes(_ t: UInt16) -> [UInt8]? { ((try? AttributeParser.first(t, in: attrs)) ?? nil).map { Array($0.payload) } }
    guard let packet = bytes(packetAttrPacket), let actions = bytes(packetAttrActions) else { return }
    var key = FlowKey()
    if let k = bytes(packetAttrKey) {
        guard case .success(let decoded) = KeyDecoder(vlanLimit: ODPConstants.datapathVLANLimit).decodeKey(k) else { return }
        key = decoded
    }
    try? datapath.execute(packet: packet, key: key, actions: actions)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let messages = try? MessageParser.split(bytes) {
        for m in messages {
            guard let g = try? GenericMessage(header: m.header, body: m.body) else { continue }
            switch (g.header.type, g.command) {
            case (familyFlow, flowCmdNew), (familyFlow, flowCmdSet): flowPut(g.attributes, modify: g.command == flowCmdSet)
            case (familyPacket, packetCmdExecute): packetExecute(g.attributes)
            default: break
            }
        }
    } else {
        try? datapath.execute(packet: dummyPacket, key: FlowKey(), actions: bytes)
    }
    // Userspace actions queue upcalls; nobody listens here.
    datapath.processUpcalls()
    return 0
}
