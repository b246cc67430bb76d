import Foundation
import Hummingbird
import KeyRelay

/// HTTP figures over loopback, measured the same way: the bare Hummingbird route (the baseline) and KeyRelay's.
enum HTTPBench {
    /// Starts `app` on an ephemeral loopback port, runs `body` with the port, then stops the server.
    static func serving<App: ApplicationProtocol>(_ makeApp: (@escaping @Sendable (Int) async -> Void) throws -> App,
                                                  _ body: (Int) async throws -> Void) async throws {
        let ports = AsyncStream<Int>.makeStream()
        let app = try makeApp { port in ports.continuation.yield(port) }
        let server = Task { try await app.runService(gracefulShutdownSignals: []) }
        var port: Int?
        for await bound in ports.stream {
            port = bound
            break
        }
        defer { server.cancel() }
        guard let port else { throw BenchError("the HTTP server did not start") }
        try await body(port)
        server.cancel()
        _ = try? await server.value
    }

    static func run(path: String, seconds: Double, connections: Int) async throws -> [(String, Outcome)] {
        var results: [(String, Outcome)] = []
        let seconds = profiling.seconds ?? seconds
        // Baseline: a bare route answering a small JSON body, in this process.
        if profiling.wants("baseline") {
            let baseline = try await measureBaseline(seconds: seconds, connections: connections)
            results.append(("http_baseline_rps", .measured(baseline.rate)))
            results.append(("http_baseline_cpu_us", .measured(baseline.cpuMicrosecondsPerRequest)))
        }
        results.append(contentsOf: try await KeyRelayHTTPBench.run(path: path, seconds: seconds, connections: connections))
        return results
    }

    /// For profiling one route at a time (`valgrind --tool=callgrind`, docs/performance.md), two environment
    /// variables narrow the HTTP benchmark: `KEYRELAY_BENCH_HTTP_ROUTES` lists what runs (`baseline`, `engine`,
    /// `get_key`, `wrap`, `unwrap`, `sync`; default all) and `KEYRELAY_BENCH_HTTP_SECONDS` how long each runs.
    /// Runs of one route for two durations give the instructions of one request as a difference, without the
    /// set-up. `scripts/bench` sets neither.
    struct Profiling: Sendable {
        var routes: Set<String>?
        var seconds: Double?
        func wants(_ route: String) -> Bool { routes?.contains(route) ?? true }
    }

    static let profiling: Profiling = {
        let environment = ProcessInfo.processInfo.environment
        return Profiling(routes: environment["KEYRELAY_BENCH_HTTP_ROUTES"].map { Set($0.split(separator: ",").map(String.init)) },
                         seconds: environment["KEYRELAY_BENCH_HTTP_SECONDS"].flatMap(Double.init))
    }()

    static func measureBaseline(seconds: Double, connections: Int) async throws -> LoadGenerator.Result {
        var result = LoadGenerator.Result()
        try await serving({ onPort in
            let router = Router()
            router.get("ping") { _, _ -> Response in
                Response(status: .ok, headers: [.contentType: "application/json"],
                         body: .init(byteBuffer: ByteBuffer(string: #"{"ok":true}"#)))
            }
            return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                               onServerRunning: { channel in await onPort(channel.localAddress?.port ?? 0) })
        }) { port in
            let load = LoadGenerator.run(port: port, requests: [LoadGenerator.request("GET", "/ping")],
                                         connections: connections, seconds: seconds)
            guard load.errors == 0, load.statuses[200] == load.requests else {
                throw BenchError("baseline route answered \(load.statuses) with \(load.errors) errors")
            }
            result = load
        }
        return result
    }
}
