import ArgumentParser
import ODP

#if canImport(Glibc)
import Glibc
#endif

struct ParseFlow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parse-flow",
        abstract: "Normalise a flow as Open vSwitch 3.1 prints it (no daemon needed).",
        discussion: "With '-', reads KEY<TAB>ACTIONS lines from stdin and prints one line per input.")

    @Argument(help: "The flow key, or - to read KEY<TAB>ACTIONS lines from stdin.") var key: String
    @Argument(help: "The actions.") var actions: String?

    func run() throws {
        if key == "-" {
            while let line = readLine(strippingNewline: true) {
                let parts = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
                let k = String(parts[0]), a = parts.count > 1 ? String(parts[1]) : "drop"
                do {
                    print(try ODPText.normalize(key: k, actions: a))
                } catch {
                    print("error: \(error)")
                }
            }
            return
        }
        do {
            print(try ODPText.normalize(key: key, actions: actions ?? "drop"))
        } catch {
            FileHandleStderr.write("esw-dpctl: \(error)\n")
            throw ExitCode(1)
        }
    }
}

enum FileHandleStderr {
    static func write(_ s: String) {
        var bytes = Array(s.utf8)
        _ = Glibc.write(2, &bytes, bytes.count)
    }
}

struct DPCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "esw-dpctl",
        abstract: "Administer the esw datapath (ovs-dpctl's commands).",
        subcommands: [ParseFlow.self])
}

DPCtl.main()
