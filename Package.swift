// swift-tools-version:6.1
import PackageDescription

// Targets and their arrows: docs/ARCHITECTURE.md §1. Arrows point one way:
// CLIs → ControlProtocol → daemon → {OVSDatapath, Tunnels} → ESwitch → Packet.
let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]
// The per-flow and per-packet modules (the CLI's flow-file path included): no run-time
// exclusivity checks (a call into the runtime at every access to a class's stored
// property, 5 % of an offloaded add).
let fast: [SwiftSetting] = strict + [.unsafeFlags(["-enforce-exclusivity=unchecked"])]
// Release binaries carry the Swift runtime: a CLI starts in about half the time (no
// dynamic loading and relocation of the runtime's libraries), which is a tenth of a
// 50k-flow add-flows; the daemon's runtime calls (retain, release) go without the PLT.
let standalone: [LinkerSetting] = [.unsafeFlags(["-static-stdlib", "-l_FoundationCollections", "-l_FoundationCShims"], .when(configuration: .release))]

let package = Package(
    name: "esw",
    products: [
        .executable(name: "eswd", targets: ["eswd"]),
        .executable(name: "esw-dpctl", targets: ["esw-dpctl"]),
        .executable(name: "esw-devlink", targets: ["esw-devlink"]),
        // Libraries for Benchmarks/ (a separate package that depends on this one by path).
        .library(name: "Packet", targets: ["Packet"]),
        .library(name: "Classifier", targets: ["Classifier"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // C: only what Swift cannot call (variadic ioctl, function-like macros).
        .target(name: "CNetLinux"),
        .systemLibrary(name: "CMnl", pkgConfig: "libmnl", providers: [.apt(["libmnl-dev"])]),
        .systemLibrary(name: "CLibBPF", pkgConfig: "libbpf", providers: [.apt(["libbpf-dev"])]),
        // Compiles bpf/ (the eBPF data plane) with the toolchain's clang during the build.
        .plugin(name: "BPFObjectPlugin", capability: .buildTool()),

        .target(name: "Packet", swiftSettings: fast),
        .target(name: "Classifier", dependencies: ["CNetLinux", "Packet"], swiftSettings: fast),
        .target(name: "Conntrack", dependencies: ["Packet"], swiftSettings: fast),
        .target(name: "NetLinux", dependencies: ["CNetLinux", "Netlink"], swiftSettings: strict),
        .target(name: "Netlink", swiftSettings: fast),
        .target(name: "ODP", dependencies: ["Packet", "Netlink"], swiftSettings: fast),
        .target(name: "ESwitch", dependencies: ["Packet", "Classifier", "NetLinux", .product(name: "Logging", package: "swift-log")], swiftSettings: fast),
        .target(name: "BPFDataPlane", dependencies: ["ESwitch", "Classifier", "CLibBPF", "NetLinux", "Packet"], swiftSettings: fast,
                plugins: ["BPFObjectPlugin"]),
        .target(name: "Representors", dependencies: ["ESwitch", "NetLinux", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .target(name: "OVSDatapath", dependencies: ["CNetLinux", "Packet", "Classifier", "Conntrack", "ODP", "ESwitch", "NetLinux", .product(name: "Logging", package: "swift-log")], swiftSettings: fast),
        .target(name: "Tunnels", dependencies: ["OVSDatapath", "CMnl", "NetLinux", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .target(name: "ControlProtocol", dependencies: [
            "CNetLinux", "NetLinux", "Netlink", "ODP", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: fast),

        .executableTarget(name: "eswd", dependencies: [
            "CNetLinux", "NetLinux", "Netlink", "ODP", "Packet", "Classifier", "Conntrack", "ESwitch", "BPFDataPlane", "Representors", "OVSDatapath", "Tunnels", "ControlProtocol",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: fast, linkerSettings: standalone),
        .executableTarget(name: "esw-dpctl", dependencies: [
            "ControlProtocol", "ODP",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: fast, linkerSettings: standalone),
        .executableTarget(name: "esw-devlink", dependencies: [
            "ControlProtocol",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: strict, linkerSettings: standalone),

        .testTarget(name: "PacketTests", dependencies: ["Packet"], swiftSettings: strict),
        .testTarget(name: "ConntrackTests", dependencies: ["Conntrack", "Packet"], swiftSettings: strict),
        .testTarget(name: "ClassifierTests", dependencies: ["Classifier", "Packet"], swiftSettings: strict),
        .testTarget(name: "ODPTests", dependencies: ["ODP", "Packet"], swiftSettings: strict),
        .testTarget(name: "ESwitchTests", dependencies: ["ESwitch", "Packet", "Classifier"], swiftSettings: strict),
        .testTarget(name: "OVSDatapathTests", dependencies: [
            "OVSDatapath", "Conntrack", "ESwitch", "ODP", "Netlink", "Packet", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        .testTarget(name: "BPFDataPlaneTests", dependencies: [
            "BPFDataPlane", "ESwitch", "Packet", "NetLinux", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        .testTarget(name: "RepresentorsTests", dependencies: ["Representors"], swiftSettings: strict),
        .testTarget(name: "NetLinuxTests", dependencies: ["NetLinux"], swiftSettings: strict),
        .testTarget(name: "ControlProtocolTests", dependencies: [
            "ControlProtocol", "Netlink", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: strict),
    ]
)
