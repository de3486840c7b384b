import ArgumentParser

/// Options before the subcommand, as users type them: `esw-devlink -j -p dev show`
/// (devlink takes its options first) and `esw-dpctl -m dump-flows` (ovs-dpctl takes
/// them anywhere). ArgumentParser only accepts a leaf command's options after the
/// command's name, so the options typed before or among the subcommand names are moved
/// to just after them. Each leaf keeps its own options, so its `--help` stays exact and
/// an option it does not have fails the same way in either order.
public enum ArgumentOrder {
    /// ArgumentParser's own flags other than help: with one of these before the
    /// subcommand, the arguments are left as typed (version and completion behave as
    /// ArgumentParser means).
    static let builtIns: Set<String> = ["--version", "--experimental-dump-help", "--generate-completion-script"]
    /// The help flags, and ArgumentParser's `help` subcommand (which no tree declares).
    static let helpFlags: Set<String> = ["-h", "--help", "-help"]
    static let helpCommand = "help"

    /// `arguments` (without the program name) with the options that come before the
    /// last subcommand name moved after it. `optionsTakingValue` are the options whose
    /// next word is their value (`--control PATH`); `--control=PATH` needs no listing.
    /// Subcommands are matched by their `commandName` or aliases, so every command in
    /// the tree must set `commandName`.
    public static func optionsAfterSubcommands(_ arguments: [String], root: any ParsableCommand.Type,
                                               optionsTakingValue: Set<String>) -> [String] {
        if let help = helpRequest(arguments, root: root, optionsTakingValue: optionsTakingValue) { return help }
        var command = root
        var path: [String] = []
        var moved: [String] = []
        var i = 0
        while i < arguments.count {
            let word = arguments[i]
            if word == "--" { break }
            if word.hasPrefix("-") && word.count > 1 {
                let name = String(word.split(separator: "=", maxSplits: 1)[0])
                if builtIns.contains(name) { return arguments }
                moved.append(word)
                if optionsTakingValue.contains(word), i + 1 < arguments.count {
                    moved.append(arguments[i + 1])
                    i += 1
                }
                i += 1
                continue
            }
            guard let sub = command.configuration.subcommands.first(where: { s in
                s.configuration.commandName == word || s.configuration.aliases.contains(word)
            }) else { break }
            path.append(word)
            command = sub
            i += 1
        }
        // A word that names no subcommand where one must come: ArgumentParser would
        // report an option typed before or after it ("Unknown option '-j'", as no group
        // has options), so the word is given alone, and reported ("Unexpected argument").
        if !command.configuration.subcommands.isEmpty, i < arguments.count, arguments[i] != "--" {
            return path + [arguments[i]]
        }
        // Nothing to move, or the words do not name a leaf command: ArgumentParser
        // reports whatever is wrong with them as typed.
        if moved.isEmpty || path.isEmpty || !command.configuration.subcommands.isEmpty { return arguments }
        return path + moved + arguments[i...]
    }

    /// A request for help, wherever the options are: `--control S port show --help`,
    /// `--help port show` and `port show --help` all become `port show --help`, and
    /// `--control S help port show` becomes `help port show` (ArgumentParser's help
    /// subcommand). Help needs no option, and ArgumentParser would refuse one typed
    /// before the command's name (showing the top level's help, or failing). Nil when
    /// no help is asked for (before a `--`).
    static func helpRequest(_ arguments: [String], root: any ParsableCommand.Type,
                            optionsTakingValue: Set<String>) -> [String]? {
        var words: [String] = []
        var helpFlag: String?
        var i = 0
        while i < arguments.count {
            let word = arguments[i]
            if word == "--" { break }
            if word.hasPrefix("-") && word.count > 1 {
                let name = String(word.split(separator: "=", maxSplits: 1)[0])
                if helpFlags.contains(name) { helpFlag = helpFlag ?? word }
                if optionsTakingValue.contains(word) { i += 1 }
            } else {
                words.append(word)
            }
            i += 1
        }
        let asksHelpCommand = words.first == helpCommand && !root.configuration.subcommands.contains {
            $0.configuration.commandName == helpCommand
        }
        guard helpFlag != nil || asksHelpCommand else { return nil }
        // The command path the remaining words name (positional arguments are not help's).
        var command = root
        var path: [String] = []
        for word in words.dropFirst(asksHelpCommand ? 1 : 0) {
            guard let sub = command.configuration.subcommands.first(where: { s in
                s.configuration.commandName == word || s.configuration.aliases.contains(word)
            }) else { break }
            path.append(word)
            command = sub
        }
        return asksHelpCommand ? [helpCommand] + path : path + [helpFlag!]
    }
}
