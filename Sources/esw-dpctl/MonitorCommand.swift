import ArgumentParser
import ControlProtocol
import Netlink
import ODP

struct Monitor: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "monitor", abstract: "Print upcalls (misses in controller mode, userspace actions).")
    @OptionGroup var connection: ConnectionOptions
    @Option(name: .customLong("count"), help: "Exit after this many upcalls.") var count: Int?
    @Argument(help: "Datapath.") var dp: String?

    func run() throws {
        try cli {
            let s = try Session(connection, dp: dp)
            let names = try s.portNames()
            _ = try s.request(Family.packet, PacketCmd.subscribe)
            var seen = 0
            while count == nil || seen < count! {
                let messages: [RawMessage]
                do { messages = try s.client.receive() } catch { throw CLIError("\(error)") }
                for raw in messages where raw.header.type == Family.packet {
                    guard let m = try? GenericMessage(header: raw.header, body: raw.body) else { continue }
                    var packet: [UInt8] = [], key: [UInt8] = [], userdata: [UInt8]?
                    for a in (try? AttributeParser.parse(m.attributes)) ?? [] {
                        switch a.type {
                        case PacketAttr.packet: packet = Array(a.payload)
                        case PacketAttr.key: key = Array(a.payload)
                        case PacketAttr.userdata: userdata = Array(a.payload)
                        default: break
                        }
                    }
                    let what = m.command == PacketCmd.miss ? "miss" : "action"
                    var line = "\(what): \(KeyFormatter(verbose: false, portNames: names).format(key: key, mask: nil))"
                    if let ud = userdata { line += " userdata:" + ud.map { String(format2hex: $0) }.joined() }
                    line += " len:\(packet.count)"
                    Out.line(line)
                    seen += 1
                    if let c = count, seen >= c { break }
                }
            }
        }
    }
}

struct Execute: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "execute", abstract: "Send a packet (hex) through actions: [DP] IN_PORT HEX ACTIONS.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "[DP] IN_PORT PACKET_HEX ACTIONS") var args: [String]

    func run() throws {
        try cli {
            let (dp, rest) = splitDP(args, needed: 3)
            guard rest.count == 3, let inPort = UInt32(rest[0]) else { throw CLIError("usage: execute [DP] IN_PORT PACKET_HEX ACTIONS") }
            var bytes: [UInt8] = []
            var hex = Array(rest[1].utf8).filter { $0 != 32 && $0 != 58 }
            guard hex.count % 2 == 0 else { throw CLIError("packet hex has an odd number of digits") }
            while !hex.isEmpty {
                guard let b = UInt8(String(decoding: hex.prefix(2), as: UTF8.self), radix: 16) else { throw CLIError("bad packet hex") }
                bytes.append(b)
                hex.removeFirst(2)
            }
            let actions = try parseActionsText(rest[2])
            let s = try Session(connection, dp: dp)
            var kw = AttributeWriter()
            kw.putU32(KeyAttr.inPort, inPort)
            let key = try kw.finished()
            _ = try s.request(Family.packet, PacketCmd.execute) { w in
                w.put(PacketAttr.packet, bytes)
                w.put(PacketAttr.key, key)
                w.put(PacketAttr.actions, actions)
            }
        }
    }
}

extension String {
    init(format2hex b: UInt8) { self = b < 16 ? "0" + String(b, radix: 16) : String(b, radix: 16) }
}
