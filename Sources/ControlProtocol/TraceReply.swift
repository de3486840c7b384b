import Netlink

/// The reply to `PacketCmd.trace`: a tree of values (`TraceAttr`), read into `JSON`
/// (`-j` prints it as it is) and printed as indented text otherwise.
public enum TraceReply {
    /// The trace in a reply message, or nil when there is none.
    public static func decode(_ m: GenericMessage) -> JSON? {
        guard let attrs = try? AttributeParser.parse(m.attributes), let t = attrs.first(PacketAttr.trace),
              let inner = try? t.nestedAttributes(), let first = inner.first else { return nil }
        return value(first)
    }

    static func value(_ a: Attribute) -> JSON {
        switch a.type {
        case TraceAttr.text: return .string((try? a.string()) ?? "")
        case TraceAttr.number: return .uint((try? a.u64()) ?? 0)
        case TraceAttr.flag: return .bool(((try? a.u8()) ?? 0) != 0)
        case TraceAttr.list: return .array(((try? a.nestedAttributes()) ?? []).map(value))
        case TraceAttr.record:
            var fields: [(String, JSON)] = []
            for f in (try? a.nestedAttributes()) ?? [] where f.type == TraceAttr.field {
                let parts = (try? f.nestedAttributes()) ?? []
                guard let name = parts.string(TraceAttr.name), let v = parts.first(where: { $0.type != TraceAttr.name }) else { continue }
                fields.append((name, value(v)))
            }
            return .object(fields)
        default:
            return .null
        }
    }

    /// Indented text, one field a line, in the order the daemon gave them. Long hex
    /// strings wrap at 64 characters (32 bytes), as tcpdump -x prints.
    public static func text(_ j: JSON, indent: Int = 0) -> [String] {
        let pad = String(repeating: "  ", count: indent)
        var lines: [String] = []
        guard case .object(let fields) = j else { return [pad + scalar(j)] }
        for (name, v) in fields {
            let label = name.replacingUnderscores
            switch v {
            case .object:
                lines.append(pad + label + ":")
                lines += text(v, indent: indent + 1)
            case .array(let items):
                if items.isEmpty { lines.append(pad + label + ": none"); continue }
                lines.append(pad + label + ":")
                for (i, item) in items.enumerated() {
                    if case .object = item {
                        lines.append(pad + "  [\(i + 1)]")
                        lines += text(item, indent: indent + 2)
                    } else {
                        lines.append(pad + "  - " + scalar(item))
                    }
                }
            case .string(let s) where name == "hex" && s.count > 64:
                lines.append(pad + label + ":")
                var rest = Substring(s)
                while !rest.isEmpty {
                    lines.append(pad + "  " + rest.prefix(64))
                    rest = rest.dropFirst(64)
                }
            default:
                lines.append(pad + label + ": " + scalar(v))
            }
        }
        return lines
    }

    static func scalar(_ j: JSON) -> String {
        switch j {
        case .string(let s): s
        case .bool(let b): b ? "yes" : "no"
        default: j.serialized()
        }
    }
}

extension String {
    fileprivate var replacingUnderscores: String { String(map { $0 == "_" ? " " : $0 }) }
}
