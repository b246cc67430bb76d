// swift-tools-version:6.1
import PackageDescription

// One source target per layer, one test target per source target (see DESIGN.md).
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "KeyRelay",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "KeyRelay", targets: ["KeyRelay"]),
        .library(name: "KeyRelayScenario", targets: ["KeyRelayScenario"]),
        .library(name: "KeyRelayHTTP", targets: ["KeyRelayHTTP"]),
        .executable(name: "keyrelay", targets: ["keyrelay"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", exact: "2.1.1"),
    ],
    targets: [
        .target(name: "KeyRelayCore", swiftSettings: strict),
        .target(
            name: "KeyRelayStore",
            dependencies: ["KeyRelayCore", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict,
            plugins: ["EmbedSchema"]),
        .executableTarget(name: "SchemaEmbedder", path: "Sources/SchemaEmbedder"),
        .plugin(name: "EmbedSchema", capability: .buildTool(), dependencies: ["SchemaEmbedder"]),
        .target(
            name: "KeyRelayBus",
            dependencies: ["KeyRelayCore"],
            swiftSettings: strict),
        .target(
            name: "KeyRelayAdapters",
            dependencies: ["KeyRelayCore", "KeyRelayBus", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        .target(
            name: "KeyRelay",
            dependencies: [
                "KeyRelayCore", "KeyRelayStore", "KeyRelayBus",
                .product(name: "Crypto", package: "swift-crypto"),
                // RSA-OAEP for import tokens (secure import is the engine's).
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .target(name: "KeyRelayScenario", dependencies: ["KeyRelay", "KeyRelayBus", "KeyRelayAdapters"], swiftSettings: strict),
        .target(
            name: "KeyRelayHTTP",
            dependencies: [
                "KeyRelay", "KeyRelayBus", "KeyRelayAdapters",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "keyrelay",
            dependencies: [
                "KeyRelay", "KeyRelayScenario", "KeyRelayHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        // Test support: a process the crash tests SIGKILL at random moments (not shipped to users).
        .executableTarget(
            name: "KeyRelayCrashChild",
            dependencies: ["KeyRelay", "KeyRelayBus", "KeyRelayAdapters"],
            swiftSettings: strict),
        // Benchmarks (issue #6): `scripts/bench`.
        .executableTarget(
            name: "KeyRelayBench",
            dependencies: [
                "KeyRelay", "KeyRelayStore", "KeyRelayBus", "KeyRelayAdapters", "KeyRelayHTTP",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: strict),
        .executableTarget(name: "StoryExample", dependencies: ["KeyRelay"], path: "Examples/Story", swiftSettings: strict),

        .testTarget(name: "KeyRelayCoreTests", dependencies: ["KeyRelayCore"]),
        .testTarget(name: "KeyRelayStoreTests", dependencies: ["KeyRelayStore", "KeyRelayCrashChild", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "KeyRelayTests", dependencies: ["KeyRelay", "KeyRelayStore", "KeyRelayCrashChild", "StoryExample",
                                                   .product(name: "_CryptoExtras", package: "swift-crypto")]),
        .testTarget(name: "KeyRelayBusTests", dependencies: ["KeyRelayBus", "KeyRelay", "KeyRelayCrashChild"]),
        .testTarget(name: "KeyRelayAdaptersTests", dependencies: ["KeyRelayAdapters", "KeyRelay"]),
        .testTarget(name: "KeyRelayScenarioTests", dependencies: ["KeyRelayScenario"], resources: []),
        .testTarget(
            name: "KeyRelayHTTPTests",
            dependencies: ["KeyRelayHTTP", .product(name: "HummingbirdTesting", package: "hummingbird")]),
        .testTarget(name: "keyrelayTests", dependencies: ["keyrelay"]),
    ],
    swiftLanguageModes: [.v6]
)
