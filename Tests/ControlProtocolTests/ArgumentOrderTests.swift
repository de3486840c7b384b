import ArgumentParser
import Testing
@testable import ControlProtocol

/// A small command tree shaped like esw-devlink's: `tool dev show`, `tool dev param show`.
private struct Tool: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tool", subcommands: [Dev.self])
}
private struct Dev: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dev", subcommands: [Show.self, Param.self])
}
private struct Param: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "param", subcommands: [Show.self])
}
private struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", aliases: ["list"])
    @Flag(name: .short) var j = false
    @Option var control: String?
    @Argument var dev: String?
}

@Suite struct ArgumentOrderTests {
    func reorder(_ words: String) -> String {
        ArgumentOrder.optionsAfterSubcommands(words.split(separator: " ").map(String.init), root: Tool.self,
                                              optionsTakingValue: ["--control"]).joined(separator: " ")
    }

    @Test func optionsBeforeTheSubcommandGoAfterIt() {
        #expect(reorder("-j -p dev show") == "dev show -j -p")
        #expect(reorder("-j dev -s param show esw0") == "dev param show -j -s esw0")
        #expect(reorder("--control /x/y.sock dev show rp0") == "dev show --control /x/y.sock rp0")
        #expect(reorder("--control=/x dev list") == "dev list --control=/x")
    }

    @Test func argumentsAlreadyInOrderAreUntouched() {
        #expect(reorder("dev show -j esw0") == "dev show -j esw0")
        #expect(reorder("dev param show") == "dev param show")
    }

    /// The value of a valued option is not a subcommand name, even when it spells one.
    @Test func aValueIsNotTakenForASubcommand() {
        #expect(reorder("--control dev dev show") == "dev show --control dev")
    }

    @Test func completionAndIncompleteCommandsAreLeftAsTyped() {
        #expect(reorder("-j --generate-completion-script bash") == "-j --generate-completion-script bash")
        #expect(reorder("-j dev") == "-j dev")
        #expect(reorder("-j") == "-j")
        #expect(reorder("-- -j dev show") == "-- -j dev show")
    }

    /// (From a probe.) A word that names no subcommand is what gets reported, not the
    /// options typed before it: they were "Unknown option '-j'" for `-j dev shwo`.
    @Test func anUnknownSubcommandIsReportedNotTheOptionsBeforeIt() throws {
        #expect(reorder("-j dev bogus esw0") == "dev bogus")
        #expect(reorder("-m bogus") == "bogus")
        #expect(reorder("--control /s -j dev param bogus") == "dev param bogus")
        #expect(reorder("-j dev -- show") == "-j dev -- show")
        #expect(reorder("dev info -j") == "dev info")
        do {
            _ = try Tool.parseAsRoot(ArgumentOrder.optionsAfterSubcommands(["-j", "dev", "bogus"], root: Tool.self, optionsTakingValue: []))
            Issue.record("an unknown subcommand parsed")
        } catch {
            let message = Tool.message(for: error)
            #expect(message.contains("bogus") && !message.contains("-j"), "\(message)")
        }
    }

    /// Help is for the command named, whatever the order of the options around it.
    @Test func helpIsForTheCommandNamedInAnyOrder() {
        #expect(reorder("--control /s dev show --help") == "dev show --help")
        #expect(reorder("--help dev show") == "dev show --help")
        #expect(reorder("-j dev -h param show esw0") == "dev param show -h")
        #expect(reorder("dev show --control /s --help") == "dev show --help")
        #expect(reorder("--control /s --help") == "--help")
        #expect(reorder("--control /s -j dev --help") == "dev --help")
        #expect(reorder("dev show -- --help") == "dev show -- --help")
    }

    /// ArgumentParser's `help` subcommand takes the command's names, not options.
    @Test func theHelpSubcommandIgnoresTheOptions() {
        #expect(reorder("--control /s help dev show") == "help dev show")
        #expect(reorder("help --control /s dev param show -j") == "help dev param show")
        #expect(reorder("help") == "help")
    }

    /// The help shown is the leaf's own, not the top level's: ArgumentParser answers
    /// with its help command, whose stack ends with the command it will describe.
    @Test func helpAfterOptionsShowsTheLeafsHelp() throws {
        for typed in ["--control /s dev show --help", "--control /s help dev show", "-j --help dev param show"] {
            let words = typed.split(separator: " ").map(String.init)
            let reordered = ArgumentOrder.optionsAfterSubcommands(words, root: Tool.self, optionsTakingValue: ["--control"])
            let parsed = try Tool.parseAsRoot(reordered)
            let described = String(reflecting: parsed)
            #expect(described.hasPrefix("ArgumentParser.HelpCommand(") && described.contains(".Show], "),
                    "\(typed): \(described)")
        }
    }

    /// Why the reordering exists: ArgumentParser refuses a leaf's option before its name.
    @Test func argumentParserAloneRefusesOptionsFirst() {
        #expect(throws: (any Error).self) { try Tool.parseAsRoot(["-j", "dev", "show"]) }
    }

    /// The reordered words parse: ArgumentParser sees the leaf's options after its name.
    @Test func reorderedArgumentsParse() throws {
        let words = ArgumentOrder.optionsAfterSubcommands(["--control", "/s", "-j", "dev", "show", "rp0"], root: Tool.self,
                                                          optionsTakingValue: ["--control"])
        let parsed = try Tool.parseAsRoot(words)
        let show = try #require(parsed as? Show)
        #expect(show.j && show.control == "/s" && show.dev == "rp0")
    }
}
