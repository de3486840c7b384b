import Foundation
import PackagePlugin

/// Compiles the eSwitch's eBPF data plane (bpf/*.c, bpf/*.h) with the toolchain's own
/// clang (`-target bpf`) and embeds the object in the target as a generated Swift
/// source, so that `swift build` on a fresh clone builds it with no manual step.
@main
struct BPFObjectPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let bpfDir = context.package.directoryURL.appendingPathComponent("bpf")
        let script = context.package.directoryURL.appendingPathComponent("scripts/build-bpf.sh")
        let files = try FileManager.default.contentsOfDirectory(atPath: bpfDir.path)
            .filter { $0.hasSuffix(".c") || $0.hasSuffix(".h") }
            .sorted()
            .map { bpfDir.appendingPathComponent($0) }
        let output = context.pluginWorkDirectoryURL.appendingPathComponent("BPFObjectBytes.swift")
        let clang = (try? context.tool(named: "clang").url.path) ?? "clang"
        return [
            .buildCommand(
                displayName: "Compiling the eBPF data plane (clang -target bpf)",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: [script.path, clang, bpfDir.appendingPathComponent("esw.bpf.c").path, output.path],
                inputFiles: files + [script],
                outputFiles: [output]
            ),
        ]
    }
}
