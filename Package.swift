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
        // The bus (dispatcher, ServiceBus, webhook transport) and the simulated services, for embedders that
        // deliver notifications in their own process (see Examples/Embedding).
        .library(name: "KeyRelayBus", targets: ["KeyRelayBus"]),
        .library(name: "KeyRelayAdapters", targets: ["KeyRelayAdapters"]),
        .executable(name: "keyrelay", targets: ["keyrelay"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        // Webhook transport (issue #11): the HTTP client, and NIO's time and test-server types it speaks in.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // Operating `serve` (issue #14): metrics in Prometheus text format, graceful shutdown of the server and the
        // dispatcher together. swift-certificates: KMIP client certificates (issue #13), parsed and validated by the
        // engine, and the TLS test's self-signed certificate.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        // HTTP/1 parts as swift-http-types (Hummingbird's own dependency): the server's malformed-request handler.
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        // The PostgreSQL backend (issue #12): its connection pool, wire protocol and LISTEN/NOTIFY.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        .target(name: "KeyRelayCore", swiftSettings: strict),
        // The store port: what the engine needs from persistence, no backend, no database library.
        .target(name: "KeyRelayStore", dependencies: ["KeyRelayCore"], swiftSettings: strict),
        // The embedded backend: GRDB on SQLite, migrations from schema/sqlite/.
        .target(
            name: "KeyRelaySQLite",
            dependencies: ["KeyRelayCore", "KeyRelayStore", .product(name: "GRDB", package: "GRDB.swift"),
                           // SQLite's C API under GRDB, for the statement-stepping key decoder (`KeyCursor`).
                           .product(name: "GRDBSQLite", package: "GRDB.swift"),
                           // Group-commit batch sizes as a histogram (`keyrelay_group_commit_batch_size`).
                           .product(name: "Metrics", package: "swift-metrics")],
            swiftSettings: strict,
            plugins: ["EmbedSchema"]),
        // The shared backend (issue #12): postgres-nio, migrations from schema/postgres/. Its closures run on a thread
        // pool of its own (NIOPosix's NIOThreadPool), off every event loop: see PostgresStore's DocC.
        .target(
            name: "KeyRelayPostgres",
            dependencies: ["KeyRelayCore", "KeyRelayStore", .product(name: "PostgresNIO", package: "postgres-nio"),
                           .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                           // sslmode: the TLS settings of the connections.
                           .product(name: "NIOSSL", package: "swift-nio-ssl"),
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict,
            plugins: ["EmbedSchema"]),
        // The contract suite every backend's tests run (a library: it does not import a test framework).
        .target(name: "KeyRelayStoreTesting", dependencies: ["KeyRelayCore", "KeyRelayStore"], swiftSettings: strict),
        .executableTarget(name: "SchemaEmbedder", path: "Sources/SchemaEmbedder"),
        .plugin(name: "EmbedSchema", capability: .buildTool(), dependencies: ["SchemaEmbedder"]),
        .target(
            name: "KeyRelayBus",
            dependencies: [
                "KeyRelayCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                // Delivery outcomes (sent, failed, dead letter) on the dispatcher's logger.
                .product(name: "Logging", package: "swift-log"),
                // Delivery attempts and dead letters by service; the dispatcher is a Service of a ServiceGroup.
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict),
        .target(
            name: "KeyRelayAdapters",
            // async-http-client: the Key Protect API client a simulated service uses as its own process (issue #11).
            dependencies: ["KeyRelayCore", "KeyRelayBus", .product(name: "Crypto", package: "swift-crypto"),
                           .product(name: "AsyncHTTPClient", package: "async-http-client"),
                           .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict),
        .target(
            name: "KeyRelay",
            dependencies: [
                "KeyRelayCore", "KeyRelayStore", "KeyRelaySQLite", "KeyRelayPostgres", "KeyRelayBus",
                .product(name: "Crypto", package: "swift-crypto"),
                // RSA-OAEP for import tokens (secure import is the engine's).
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                // Lifecycle commands by action and outcome.
                .product(name: "Metrics", package: "swift-metrics"),
                // Client certificates of KMIP adapters are parsed and checked by the engine.
                .product(name: "X509", package: "swift-certificates"),
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
                // Operating `serve` (issue #14): TLS, /metrics, one ServiceGroup for the server and its background.
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                // The malformed-request handler sits in Hummingbird's HTTP/1 pipeline (NIO's parser errors).
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ],
            swiftSettings: strict,
            plugins: ["EmbedConsole"]),
        // The web console's files (console/) embedded at build time, like the schema.
        .executableTarget(name: "ConsoleEmbedder", path: "Sources/ConsoleEmbedder"),
        .plugin(name: "EmbedConsole", capability: .buildTool(), dependencies: ["ConsoleEmbedder"]),
        .executableTarget(
            name: "keyrelay",
            dependencies: [
                "KeyRelay", "KeyRelayScenario", "KeyRelayHTTP", "KeyRelayBus", "KeyRelayAdapters",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                // `keyrelay simulate`: each simulated service serves its webhooks and data plane with Hummingbird.
                .product(name: "Hummingbird", package: "hummingbird"),
                // `serve --log-level/--log-format`: the CLI bootstraps the logging system once.
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // Test support: a process the crash tests SIGKILL at random moments (not shipped to users).
        .executableTarget(
            name: "KeyRelayCrashChild",
            dependencies: ["KeyRelay", "KeyRelayStore", "KeyRelaySQLite", "KeyRelayBus", "KeyRelayAdapters"],
            swiftSettings: strict),
        // Benchmarks (issue #6): `scripts/bench`.
        .executableTarget(
            name: "KeyRelayBench",
            dependencies: [
                "KeyRelay", "KeyRelayStore", "KeyRelaySQLite", "KeyRelayBus", "KeyRelayAdapters", "KeyRelayHTTP",
                .product(name: "GRDB", package: "GRDB.swift"),
                // The PostgreSQL figures (issue #12): the store, and plain postgres-nio for their baselines.
                "KeyRelayPostgres", .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                // The bare POST loop beside webhook_delivery_per_s uses the webhook transport's client directly.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strict),
        // Power-cut test (issue #15), test support only: a SQLite VFS that keeps every write since the last fsync in
        // a volatile layer and loses it at a seeded moment, and the child process that runs the engine on it
        // (Tests/KeyRelayTests/PowerCutTests.swift cuts it 200+ times).
        .target(name: "CPowerCutVFS", linkerSettings: [.linkedLibrary("sqlite3")]),
        .executableTarget(name: "KeyRelayPowerCutChild", dependencies: ["KeyRelay", "KeyRelayBus", "CPowerCutVFS"],
                          swiftSettings: strict),
        .executableTarget(name: "StoryExample", dependencies: ["KeyRelay"], path: "Examples/Story", swiftSettings: strict),

        .testTarget(name: "KeyRelayCoreTests", dependencies: ["KeyRelayCore"]),
        .testTarget(name: "KeyRelayStoreTests", dependencies: ["KeyRelayStore"]),
        .testTarget(
            name: "KeyRelaySQLiteTests",
            dependencies: [
                "KeyRelaySQLite", "KeyRelayStore", "KeyRelayStoreTesting", "KeyRelayCrashChild",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]),
        // Needs a server: KEYRELAY_TEST_POSTGRES_URL (each test makes its own database there); skipped without it.
        .testTarget(name: "KeyRelayPostgresTests", dependencies: ["KeyRelayPostgres", "KeyRelayStore", "KeyRelayStoreTesting", "KeyRelay", "KeyRelayBus"]),
        .testTarget(name: "KeyRelayStoreTestingTests", dependencies: ["KeyRelayStoreTesting", "KeyRelayStore", "KeyRelaySQLite"]),
        .testTarget(
            name: "KeyRelayTests",
            dependencies: ["KeyRelay", "KeyRelayStore", "KeyRelaySQLite", "KeyRelayCrashChild", "KeyRelayPowerCutChild",
                           "CPowerCutVFS", "StoryExample",
                           // RSA-OAEP in the secure-import test.
                           .product(name: "_CryptoExtras", package: "swift-crypto")]),
        .testTarget(
            name: "KeyRelayBusTests",
            dependencies: [
                "KeyRelayBus", "KeyRelay", "KeyRelaySQLite", "KeyRelayCrashChild",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                // The dispatcher's graceful shutdown, inside a ServiceGroup.
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .testTarget(name: "KeyRelayAdaptersTests", dependencies: ["KeyRelayAdapters", "KeyRelay"]),
        .testTarget(name: "KeyRelayScenarioTests", dependencies: ["KeyRelayScenario"], resources: []),
        .testTarget(
            name: "KeyRelayHTTPTests",
            dependencies: ["KeyRelayHTTP", .product(name: "HummingbirdTesting", package: "hummingbird"),
                           // The TLS test: a self-signed certificate made in the test, and a client that trusts it.
                           .product(name: "X509", package: "swift-certificates"),
                           .product(name: "Crypto", package: "swift-crypto"),
                           .product(name: "AsyncHTTPClient", package: "async-http-client"),
                           .product(name: "NIOSSL", package: "swift-nio-ssl"),
                           .product(name: "Prometheus", package: "swift-prometheus"),
                           // Raw-socket clients for the malformed-request tests.
                           .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                           // HTTP methods of AsyncHTTPClient's requests (the network-policy test).
                           .product(name: "NIOHTTP1", package: "swift-nio")]),
        // The cross-process story runs the built `keyrelay` twice (serve + simulate cos) and talks HTTP to both.
        .testTarget(name: "keyrelayTests", dependencies: [
            "keyrelay", .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "NIOCore", package: "swift-nio"),
            // The shutdown test's webhook receiver, which holds its answer while `serve` is told to stop.
            .product(name: "Hummingbird", package: "hummingbird"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)

