// swift-tools-version:6.1
// A service that embeds KeyRelay as a package dependency, exactly as the README's snippet shows. CI builds and
// runs it (scripts/test), so the snippet stays true. Outside this repository, replace the path dependency with
// the URL you fetch KeyRelay from: `.package(url: "<your KeyRelay git URL>", from: "0.9.0")`.
import PackageDescription

let package = Package(
    name: "Embedding",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "KeyRelay", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "Embedding",
            dependencies: [
                .product(name: "KeyRelay", package: "KeyRelay"),          // the engine
                .product(name: "KeyRelayBus", package: "KeyRelay"),       // the dispatcher and the service bus
                .product(name: "KeyRelayAdapters", package: "KeyRelay"),  // the simulated COS and Cloud Databases
            ]),
    ],
    swiftLanguageModes: [.v6]
)
