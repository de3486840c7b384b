/// A rejected flow or action string: where, and what was wrong.
public struct ODPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 0-based character offset into the input, when the problem has a position.
    public let position: Int?
    public let message: String
    /// The part of the input from the failing attribute on (as OVS quotes it).
    public let context: String?

    public init(position: Int?, _ message: String, context: String? = nil) {
        self.position = position
        self.message = message
        self.context = context
    }

    public var description: String {
        var d = ""
        if let position { d += "at column \(position + 1): " }
        d += message
        if let context, !context.isEmpty { d += " (near \"\(context.prefix(60))\")" }
        return d
    }
}
