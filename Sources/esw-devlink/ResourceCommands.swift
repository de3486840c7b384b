import ArgumentParser
import ControlProtocol
import Netlink

/// One hardware resource and its children, as the daemon reports them.
struct ResourceInfo {
    var name = "", path = "", unit = ""
    var size: UInt64 = 0, sizeNew: UInt64?, sizeValid = true, occupancy: UInt64 = 0, programmed: UInt64 = 0, sizeMin: UInt64 = 0, sizeMax: UInt64 = 0, granularity: UInt64 = 1
    var children: [ResourceInfo] = []

    init(_ nested: [Attribute]) throws {
        name = nested.string(DevlinkAttr.resourceName) ?? ""
        path = nested.string(DevlinkAttr.resourcePath) ?? ""
        unit = nested.string(DevlinkAttr.resourceUnit) ?? ""
        size = nested.u64(DevlinkAttr.resourceSize)
        sizeNew = nested.first(DevlinkAttr.resourceSizeNew).flatMap { try? $0.u64() }
        sizeValid = (nested.u8(DevlinkAttr.resourceSizeValid) ?? 1) != 0
        occupancy = nested.u64(DevlinkAttr.resourceOccupancy)
        programmed = nested.u64(DevlinkAttr.resourceOccupancyProgrammed)
        sizeMin = nested.u64(DevlinkAttr.resourceSizeMin)
        sizeMax = nested.u64(DevlinkAttr.resourceSizeMax)
        granularity = nested.u64(DevlinkAttr.resourceSizeGranularity)
        children = try nested.filter { $0.type == DevlinkAttr.resource }.map { try ResourceInfo($0.nestedAttributes()) }
    }

    /// devlink's order: name size [size_new] occ unit size_min size_max size_gran; then
    /// what esw adds: of the occupancy, what rules in the data plane hold and what is
    /// only reserved (rules waiting for the firmware, the driver's credits).
    var line: String {
        var s = "name \(name) size \(size)"
        if let sizeNew, sizeNew != size { s += " size_new \(sizeNew) size_valid \(sizeValid)" }
        return s + " occ \(occupancy) unit \(unit) size_min \(sizeMin) size_max \(sizeMax) size_gran \(granularity)"
            + " occ_programmed \(programmed) occ_reserved \(occupancy - min(occupancy, programmed))"
    }

    func print(indent: Int) {
        let pad = String(repeating: " ", count: indent)
        Console.line(pad + line)
        guard !children.isEmpty else { return }
        Console.line(pad + "  resources:")
        for c in children { c.print(indent: indent + 4) }
    }

    var json: JSON {
        var f: [(String, JSON)] = [("name", .string(name)), ("size", .uint(size))]
        if let sizeNew, sizeNew != size { f += [("size_new", .uint(sizeNew)), ("size_valid", .bool(sizeValid))] }
        f += [("occ", .uint(occupancy)), ("unit", .string(unit)), ("size_min", .uint(sizeMin)),
              ("size_max", .uint(sizeMax)), ("size_gran", .uint(granularity)),
              ("occ_programmed", .uint(programmed)), ("occ_reserved", .uint(occupancy - min(occupancy, programmed)))]
        if !children.isEmpty { f.append(("resources", .array(children.map(\.json)))) }
        return .object(f)
    }
}

struct ResourceShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show table sizes and occupancy.")
    @OptionGroup var options: DevlinkOptions
    @Argument(help: "Device (default: the one the control socket serves).") var dev: String?

    func run() throws {
        try cli {
            guard let m = try options.session(dev).request(Family.devlink, DevlinkCmd.resourceDump, { $0.putDevice(dev) }).first else {
                throw CLIError("no reply")
            }
            let attributes = try AttributeParser.parse(m.attributes)
            let name = attributes.string(DevlinkAttr.devName) ?? dev ?? ""
            let top = try attributes.filter { $0.type == DevlinkAttr.resource }.map { try ResourceInfo($0.nestedAttributes()) }
            if options.json {
                options.emit(.object([("resources", .object([(name, .array(top.map(\.json)))]))]))
                return
            }
            Console.line("\(name):")
            for r in top { r.print(indent: 2) }
        }
    }
}

struct ResourceSet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set", abstract: "Set a size, applied by `dev reload`: `set DEV path /PATH size N`.")
    @OptionGroup var options: DevlinkOptions
    @Argument(help: "DEV path PATH size N") var words: [String] = []

    func run() throws {
        try cli {
            guard let dev = words.first else { throw CLIError("usage: resource set DEV path PATH size N") }
            let kw = try keywordArguments(Array(words.dropFirst()), allowed: ["path", "size"])
            guard let path = kw["path"], let sizeText = kw["size"] else { throw CLIError("path and size are required") }
            guard let size = UInt64(sizeText) else { throw CLIError("size \(sizeText): expected a number") }
            _ = try options.session(dev).request(Family.devlink, DevlinkCmd.resourceSet) {
                $0.putString(DevlinkAttr.devName, dev)
                $0.putString(DevlinkAttr.resourcePath, path.hasPrefix("/") ? path : "/" + path)
                $0.putU64(DevlinkAttr.resourceSize, size)
            }
        }
    }
}
