import ArgumentParser

/// Options before the subcommand, as users type them: `esw-devlink -j -p dev show`
/// (devlink takes its options first) and `esw-dpctl -m dump-flows` (ovs-dpctl takes
/// them anywhere). ArgumentParser only accepts a leaf command's options after the
/// command's name, so the options typed before or among the subcommand names are moved
/// to just after them. Each leaf keeps its own options, so its `--help` stays exact and
/// an option it does not have fails the same way in either order.
public enum ArgumentOrder {
    /// ArgumentParser's own flags: with one of these before the subcommand, the
    /// arguments are left as typed (help and completion behave as ArgumentParser means).
    static let builtIns: Set<String> = ["-h", "--help", "-help", "--version", "--experimental-dump-help",
                                        "--generate-completion-script"]

    /// `arguments` (without the program name) with the options that come before the
    /// last subcommand name moved after it. `optionsTakingValue` are the options whose
    /// next word is their value (`--control PATH`); `--control=PATH` needs no listing.
    /// Subcommands are matched by their `commandName` or aliases, so every command in
    /// the tree must set `commandName`.
    public static func optionsAfterSubcommands(_ arguments: [String], root: any ParsableCommand.Type,
                                               optionsTakingValue: Set<String>) -> [String] {
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
        // Nothing to move, or the words do not name a leaf command: ArgumentParser
        // reports whatever is wrong with them as typed.
        if moved.isEmpty || path.isEmpty || !command.configuration.subcommands.isEmpty { return arguments }
        return path + moved + arguments[i...]
    }
}
