import ArgumentParser
import ControlProtocol
import Netlink
import ODP

struct Trace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Show what the hardware and the datapath would do with a packet: [DP] IN_PORT PACKET.",
        discussion: """
            IN_PORT is a datapath port (name or number: a representor such as pf0vf0, or vxlan_sys_4789), \
            or a representor that is not in the datapath (p0). PACKET is hex (bare or with --hex), or a \
            flow description such as 'eth(src=…,dst=…),eth_type(0x0800),ipv4(src=…,dst=…,proto=6),tcp(dst=80)', \
            built into a frame (a packet on a vxlan port takes its metadata from tunnel(…)). Nothing is sent \
            and no counter changes.
            """)
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .short, help: "JSON.") var json = false
    @Option(name: .customLong("hex"), help: "The packet as hex digits.") var hex: String?
    @Argument(help: "[DP] IN_PORT PACKET") var args: [String]

    func run() throws {
        try cli {
            let (dp, rest) = splitDP(args, needed: hex == nil ? 2 : 1)
            guard rest.count == (hex == nil ? 2 : 1) else { throw CLIError("usage: trace [DP] IN_PORT PACKET|--hex HEX") }
            let s = try Session(connection, dp: dp)
            let packetText = hex ?? rest[1]
            // (Empty, it was read as a key with no attribute, which the daemon refused
            // for an in_port of 4294967295.)
            guard packetText.contains(where: { $0 != " " && $0 != "\t" }) else {
                throw CLIError("the packet is empty: give its bytes as hex or a flow description")
            }
            var attributes = AttributeWriter()
            attributes.putString(PacketAttr.inPortName, rest[0])
            if hex != nil || Self.looksLikeHex(packetText) {
                attributes.put(PacketAttr.packet, try Self.bytes(fromHex: packetText))
            } else {
                let k = try parseFlowText(packetText, session: s)
                attributes.put(PacketAttr.key, k.key)
                attributes.put(PacketAttr.mask, k.mask)
            }
            let request = try attributes.finished()
            guard let m = try s.request(Family.packet, PacketCmd.trace, { $0.append(raw: request) }).first,
                  let trace = TraceReply.decode(m) else { throw CLIError("the daemon sent no trace") }
            if json {
                Out.line(trace.serialized(pretty: true))
            } else {
                for line in TraceReply.text(trace) { Out.line(line) }
            }
        }
    }

    /// Hex digits only (spaces and colons allowed between bytes, an optional 0x).
    static func looksLikeHex(_ s: String) -> Bool {
        let digits = digitsOf(s)
        return !digits.isEmpty && digits.allSatisfy { $0.isHexDigit }
    }

    static func digitsOf(_ s: String) -> [Character] {
        var t = Substring(s)
        if t.hasPrefix("0x") { t = t.dropFirst(2) }
        return t.filter { $0 != " " && $0 != ":" }.map { $0 }
    }

    static func bytes(fromHex s: String) throws -> [UInt8] {
        let digits = digitsOf(s)
        guard digits.count % 2 == 0 else { throw CLIError("packet hex has an odd number of digits") }
        var out: [UInt8] = []
        var i = 0
        while i < digits.count {
            guard let b = UInt8(String(digits[i..<i + 2]), radix: 16) else { throw CLIError("packet hex: '\(String(digits[i..<i + 2]))' is not a byte") }
            out.append(b)
            i += 2
        }
        return out
    }
}
