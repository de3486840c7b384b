/// A small JSON value for the CLIs' `-j` output (no Foundation).
public indirect enum JSON: Sendable, Equatable {
    case string(String)
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case bool(Bool)
    case null
    case array([JSON])
    /// Keys keep their order.
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool { a.serialized() == b.serialized() }

    public func serialized(pretty: Bool = false, indent: Int = 0) -> String {
        let pad = pretty ? String(repeating: "  ", count: indent + 1) : ""
        let close = pretty ? String(repeating: "  ", count: indent) : ""
        let nl = pretty ? "\n" : ""
        switch self {
        case .string(let s): return JSON.quote(s)
        case .int(let v): return String(v)
        case .uint(let v): return String(v)
        case .double(let v): return v.isFinite ? String(v) : "null"
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        case .array(let items):
            if items.isEmpty { return "[]" }
            return "[" + nl + items.map { pad + $0.serialized(pretty: pretty, indent: indent + 1) }.joined(separator: "," + nl) + nl + close + "]"
        case .object(let fields):
            if fields.isEmpty { return "{}" }
            let sep = pretty ? ": " : ":"
            return "{" + nl + fields.map { pad + JSON.quote($0.0) + sep + $0.1.serialized(pretty: pretty, indent: indent + 1) }
                .joined(separator: "," + nl) + nl + close + "}"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
