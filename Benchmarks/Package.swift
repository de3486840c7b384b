// swift-tools-version:6.1
import PackageDescription

// Micro-benchmarks for the hot paths (ordo-one/benchmark, formerly package-benchmark):
//   cd Benchmarks && swift package benchmark
// Static thresholds (mallocs per packet must be 0) live in Thresholds/ and are checked with
//   cd Benchmarks && swift package benchmark thresholds check --path Thresholds
//
// The root package is a path dependency; its identity is the name of the directory it is
// cloned into, so derive it instead of hard-coding "main".
let root = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "esw"

let package = Package(
    name: "esw-benchmarks",
    platforms: [.macOS("14")],
    dependencies: [
        .package(path: "../"),
        // Only the malloc interposer trait: mallocCountTotal comes from it (no jemalloc needed
        // on Swift 6.3). The default RuntimeInterposer trait is left off.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "PacketBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Packet", package: root),
            ],
            path: "Benchmarks/PacketBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "ClassifierBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Packet", package: root),
                .product(name: "Classifier", package: root),
            ],
            path: "Benchmarks/ClassifierBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
