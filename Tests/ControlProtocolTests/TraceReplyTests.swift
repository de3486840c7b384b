import ControlProtocol
import Netlink
import Testing

/// A trace reply's attribute tree reads back as JSON in order, and prints as text.
struct TraceReplyTests {
    static func reply() -> GenericMessage {
        var w = AttributeWriter()
        w.nested(PacketAttr.trace) { t in
            t.nested(TraceAttr.record) { r in
                r.nested(TraceAttr.field) { f in
                    f.putString(TraceAttr.name, "hardware")
                    f.nested(TraceAttr.record) { h in
                        h.nested(TraceAttr.field) { $0.putString(TraceAttr.name, "result"); $0.putString(TraceAttr.text, "hit") }
                        h.nested(TraceAttr.field) { $0.putString(TraceAttr.name, "port_index"); $0.putU64(TraceAttr.number, 1) }
                    }
                }
                r.nested(TraceAttr.field) { f in
                    f.putString(TraceAttr.name, "steps")
                    f.nested(TraceAttr.list) { $0.putString(TraceAttr.text, "drop") }
                }
                r.nested(TraceAttr.field) { $0.putString(TraceAttr.name, "offloaded"); $0.putU8(TraceAttr.flag, 1) }
            }
        }
        return GenericMessage(family: Family.packet, command: PacketCmd.trace, flags: 0, sequence: 0, attributes: w.bytes)
    }

    @Test func decodesInOrder() throws {
        let j = try #require(TraceReply.decode(Self.reply()))
        #expect(j.serialized() == #"{"hardware":{"result":"hit","port_index":1},"steps":["drop"],"offloaded":true}"#)
    }

    @Test func printsIndentedText() throws {
        let lines = TraceReply.text(try #require(TraceReply.decode(Self.reply())))
        #expect(lines == ["hardware:", "  result: hit", "  port index: 1", "steps:", "  - drop", "offloaded: yes"])
    }

    @Test func noTraceIsNil() {
        #expect(TraceReply.decode(GenericMessage(family: Family.packet, command: PacketCmd.trace, flags: 0, sequence: 0, attributes: [])) == nil)
    }
}
