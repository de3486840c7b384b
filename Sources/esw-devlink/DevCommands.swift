import ArgumentParser
import ControlProtocol
import Netlink

struct DevShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show the device.")
    @OptionGroup var options: DevlinkOptions
    @Flag(name: [.customShort("s"), .customLong("statistics")], help: "Also show offload-operation counters.")
    var statistics = false
    @Argument(help: "Device (default: the one the control socket serves).") var dev: String?

    func run() throws {
        try cli {
            let s = try options.session(dev)
            guard let m = try s.request(Family.devlink, DevlinkCmd.devGet, { $0.putDevice(dev) }).first else {
                throw CLIError("no reply")
            }
            let a = try AttributeParser.parse(m.attributes)
            let name = a.string(DevlinkAttr.devName) ?? dev ?? ""
            var stats: [(String, UInt64)] = [], ct: [(String, UInt64)] = []
            if statistics, let o = try s.request(Family.devlink, DevlinkCmd.offloadStats).first {
                let oa = try AttributeParser.parse(o.attributes)
                stats = [("operations", oa.u64(DevlinkAttr.offloadOperations)),
                         ("hw_accesses", oa.u64(DevlinkAttr.offloadHardwareAccesses)),
                         ("waited_us", oa.u64(DevlinkAttr.offloadWaitedNanoseconds) / 1000),
                         ("fw_accesses", oa.u64(DevlinkAttr.offloadFirmwareAccesses)),
                         ("refills", oa.u64(DevlinkAttr.offloadRefills)),
                         ("programmed", oa.u64(DevlinkAttr.offloadProgrammed)),
                         ("pending", oa.u64(DevlinkAttr.offloadPendingWrites)),
                         ("late_failures", oa.u64(DevlinkAttr.offloadLateFailures)),
                         ("wrong_predictions", oa.u64(DevlinkAttr.offloadWrongPredictions)),
                         ("coherent_at_ns", oa.u64(DevlinkAttr.offloadCoherentAt)),
                         ("last_batch_ops", oa.u64(DevlinkAttr.offloadBurstOperations)),
                         ("last_batch_caller_us", oa.u64(DevlinkAttr.offloadBurstCallerNanoseconds) / 1000)]
                if let c = oa.first(DevlinkAttr.offloadBurstCoherentNanoseconds).flatMap({ try? $0.u64() }) {
                    stats.append(("last_batch_coherent_us", c / 1000))
                }
                ct = [("connections", oa.u64(DevlinkAttr.ctConnections)), ("refused_full", oa.u64(DevlinkAttr.ctRefusedFull)),
                      ("refused_unsupported", oa.u64(DevlinkAttr.ctRefusedUnsupported)),
                      ("write_failed", oa.u64(DevlinkAttr.ctWriteFailed)), ("refused_no_rule", oa.u64(DevlinkAttr.ctRefusedNoRule)),
                      ("hits", oa.u64(DevlinkAttr.ctHits)),
                      ("misses", oa.u64(DevlinkAttr.ctMisses)), ("hand_backs", oa.u64(DevlinkAttr.ctHandBacks)),
                      ("chain_misses", oa.u64(DevlinkAttr.ctChainMisses)), ("too_deep", oa.u64(DevlinkAttr.ctTooDeep))]
            }
            if options.json {
                var fields: [(String, JSON)] = [("driver", .string(a.string(DevlinkAttr.driver) ?? "")),
                                                ("switch_id", .string(a.string(DevlinkAttr.switchID) ?? ""))]
                if !stats.isEmpty { fields.append(("offload", .object(stats.map { ($0.0, .uint($0.1)) }))) }
                if !ct.isEmpty { fields.append(("ct", .object(ct.map { ($0.0, .uint($0.1)) }))) }
                options.emit(.object([("dev", .object([(name, .object(fields))]))]))
            } else {
                Console.line(name)
                if !stats.isEmpty {
                    Console.line("  offload: " + stats.map { "\($0.0) \($0.1)" }.joined(separator: " "))
                }
                if !ct.isEmpty { Console.line("  ct: " + ct.map { "\($0.0) \($0.1)" }.joined(separator: " ")) }
            }
        }
    }
}

struct ESwitchShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show the eswitch mode.")
    @OptionGroup var options: DevlinkOptions
    @Argument(help: "Device (default: the one the control socket serves).") var dev: String?

    func run() throws {
        try cli {
            let s = try options.session(dev)
            guard let m = try s.request(Family.devlink, DevlinkCmd.eswitchGet, { $0.putDevice(dev) }).first else {
                throw CLIError("no reply")
            }
            let a = try AttributeParser.parse(m.attributes)
            let name = a.string(DevlinkAttr.devName) ?? dev ?? ""
            let mode = a.string(DevlinkAttr.mode) ?? "?"
            // esw has no inline mode to choose and always does basic (header-rewriting) encap.
            if options.json {
                options.emit(.object([("dev", .object([(name, .object([
                    ("mode", .string(mode)), ("inline-mode", .string("none")), ("encap-mode", .string("basic")),
                ]))]))]))
            } else {
                Console.line("\(name): mode \(mode) inline-mode none encap-mode basic")
            }
        }
    }
}

struct ESwitchSet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set", abstract: "Set the eswitch mode: `set DEV mode legacy|switchdev`.")
    @OptionGroup var options: DevlinkOptions
    @Argument(help: "DEV mode legacy|switchdev") var words: [String] = []

    func run() throws {
        try cli {
            guard let dev = words.first else { throw CLIError("usage: dev eswitch set DEV mode legacy|switchdev") }
            let kw = try keywordArguments(Array(words.dropFirst()), allowed: ["mode"])
            guard let mode = kw["mode"] else { throw CLIError("mode is required") }
            guard mode == "legacy" || mode == "switchdev" else { throw CLIError("mode \(mode): expected legacy or switchdev") }
            _ = try options.session(dev).request(Family.devlink, DevlinkCmd.eswitchSet) {
                $0.putString(DevlinkAttr.devName, dev)
                $0.putString(DevlinkAttr.mode, mode)
            }
        }
    }
}

struct DevReload: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload", abstract: "Reload the device: apply pending resource sizes (tables are rebuilt).")
    @OptionGroup var options: DevlinkOptions
    @Argument(help: "[DEV] [action driver_reinit] (DEV: default the one the control socket serves).")
    var words: [String] = []

    func run() throws {
        try cli {
            // devlink's syntax: `reload DEV [netns ...] [action {driver_reinit | fw_activate}]
            // [limit no_reset]`. esw's reload is a driver reinit; the rest its driver lacks,
            // refused with the kernel's words.
            let dev = words.first
            let kw = try keywordArguments(Array(words.dropFirst()), allowed: ["action", "limit", "netns"])
            if let a = kw["action"], a != "driver_reinit" {
                guard a == "fw_activate" else { throw CLIError("unknown reload action \"\(a)\" (Invalid argument)") }
                throw CLIError("Requested reload action is not supported by the driver (Operation not supported)")
            }
            if kw["limit"] != nil { throw CLIError("Requested limit is not supported by the driver (Operation not supported)") }
            if kw["netns"] != nil { throw CLIError("reload into another network namespace is not supported (Operation not supported)") }
            _ = try options.session(dev).request(Family.devlink, DevlinkCmd.reload) { $0.putDevice(dev) }
        }
    }
}

struct ParamShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show parameters: `show [DEV [name NAME]]`.")
    @OptionGroup var options: DevlinkOptions
    @Argument(help: "[DEV [name NAME]]") var words: [String] = []

    func run() throws {
        try cli {
            let kw = try keywordArguments(Array(words.dropFirst()), allowed: ["name"])
            let replies = try options.session(words.first).request(Family.devlink, DevlinkCmd.paramGet, dump: true) {
                $0.putDevice(words.first)
                if let n = kw["name"] { $0.putString(DevlinkAttr.paramName, n) }
            }
            var dev = words.first ?? ""
            var params: [(String, String)] = []
            for m in replies {
                let a = try AttributeParser.parse(m.attributes)
                if let name = a.string(DevlinkAttr.devName) { dev = name }
                params.append((a.string(DevlinkAttr.paramName) ?? "", a.string(DevlinkAttr.paramValue) ?? ""))
            }
            if options.json {
                options.emit(.object([("param", .object([(dev, .array(params.map { p in
                    .object([("name", .string(p.0)), ("type", .string("driver-specific")),
                             ("values", .array([.object([("cmode", .string("runtime")), ("value", Self.jsonValue(p.1))])]))])
                }))]))]))
                return
            }
            for (name, value) in params {
                Console.line("\(dev):")
                Console.line("  name \(name) type driver-specific")
                Console.line("    values:")
                Console.line("      cmode runtime value \(value)")
            }
        }
    }

    static func jsonValue(_ s: String) -> JSON {
        if let n = UInt64(s) { return .uint(n) }
        return .string(s)
    }
}

struct ParamSet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set", abstract: "Set a parameter: `set DEV name NAME value VALUE [cmode runtime]`.")
    @OptionGroup var options: DevlinkOptions
    @Argument(parsing: .allUnrecognized, help: "DEV name NAME value VALUE [cmode runtime]") var words: [String] = []

    func run() throws {
        try cli {
            guard let dev = words.first else { throw CLIError("usage: dev param set DEV name NAME value VALUE [cmode runtime]") }
            let kw = try keywordArguments(Array(words.dropFirst()), allowed: ["name", "value", "cmode"])
            guard let name = kw["name"], let value = kw["value"] else { throw CLIError("name and value are required") }
            if let c = kw["cmode"], c != "runtime" { throw CLIError("cmode \(c): esw parameters are runtime only") }
            _ = try options.session(dev).request(Family.devlink, DevlinkCmd.paramSet) {
                $0.putString(DevlinkAttr.devName, dev)
                $0.putString(DevlinkAttr.paramName, name)
                $0.putString(DevlinkAttr.paramValue, value)
            }
        }
    }
}
