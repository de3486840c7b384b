import ArgumentParser
import ODP

struct ParseFlow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parse-flow",
        abstract: "Normalise a flow as Open vSwitch 3.1 prints it (no daemon needed).",
        discussion: "With '-', reads KEY<TAB>ACTIONS lines from stdin and prints one line per input.")

    /// Accepted and ignored: the shared options may come anywhere, before any command.
    @OptionGroup(visibility: .hidden) var connection: ConnectionOptions
    @Flag(name: [.customShort("m"), .long], help: "Print the key the way dump-flows -m does.") var more = false
    @Argument(help: "The flow key, or - to read KEY<TAB>ACTIONS lines from stdin.") var key: String
    @Argument(help: "The actions.") var actions: String?

    func run() throws {
        if key == "-" {
            while let line = readLine(strippingNewline: true) {
                let parts = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
                let k = String(parts[0]), a = parts.count > 1 ? String(parts[1]) : "drop"
                do {
                    Out.line(try ODPText.normalize(key: k, actions: a, verbose: more))
                } catch {
                    Out.line("error: \(error)")
                }
            }
            return
        }
        do {
            Out.line(try ODPText.normalize(key: key, actions: actions ?? "drop", verbose: more))
        } catch {
            Out.error("\(error)")
            throw ExitCode(1)
        }
    }
}
