import Foundation
import Hummingbird
import KeyRelay
import KeyRelayHTTP
import KeyRelaySQLite

/// KeyRelay's own routes over loopback, measured exactly like the bare baseline route (same load generator, same
/// connections, same process): `GET /api/v2/keys/{id}`, `POST …/actions/wrap` (a 32-byte DEK), `POST
/// …/actions/unwrap` (its ciphertext, current version) and `POST …/actions/sync` on its 409 path (a sync inside
/// the cooldown: authentication, lookup, the rule's refusal rendered as Key Protect's error body with
/// `Retry-After`).
enum KeyRelayHTTPBench {
    static let token = "bench-token-0123456789abcdef"

    static func run(path: String, seconds: Double, connections: Int) async throws -> [(String, Outcome)] {
        let clock = ManualClock()
        let engine = try await KeyRelayEngine.open(path: path, masterKey: .generate(), clock: clock, ids: RandomIdentifiers())
        let context = Bench.context
        let key = try await engine.createKey(KeySpec(name: "http-bench-key"), context: context)
        // One accepted sync now: every later sync inside the cooldown is refused with 409 (the clock never moves).
        clock.advance(by: 7200)
        _ = try await engine.sync(key.id, context: context)
        let dek = Data((0..<32).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) })
        let wrapped = try await engine.wrap(key.id, plaintext: dek, context: context)
        let access = AccessControl(grants: [
            token: AccessGrant(principal: "bench", roles: [.manager], instances: [context.instanceID]),
        ])
        let api = KeyProtectAPI(engine: engine, access: access)
        let headers = [("Authorization", "Bearer \(token)"), ("Bluemix-Instance", context.instanceID)]
        let json = headers + [("Content-Type", "application/vnd.ibm.kms.key_action_wrap+json")]
        let wrapBody = Data(#"{"plaintext":"\#(dek.base64EncodedString())"}"#.utf8)
        let unwrapBody = Data(#"{"ciphertext":"\#(wrapped.ciphertext)"}"#.utf8)

        var results: [(String, Outcome)] = []
        // The engine's own read, without HTTP: the same GET from `connections` concurrent tasks, as CPU per read.
        // What a route costs above this is the HTTP edge's (Hummingbird, NIO, the load generator, the JSON).
        if HTTPBench.profiling.wants("engine") {
            results.append(("engine_get_key_cpu_us", .measured(try await engineReadCPU(engine, keyID: key.id, tasks: connections,
                                                                                       seconds: seconds))))
        }
        let routes: [(String, Data, Int)] = [
            ("http_get_key_rps", LoadGenerator.request("GET", "/api/v2/keys/\(key.id)", headers: headers), 200),
            ("http_wrap_rps", LoadGenerator.request("POST", "/api/v2/keys/\(key.id)/actions/wrap", headers: json, body: wrapBody), 200),
            ("http_unwrap_rps", LoadGenerator.request("POST", "/api/v2/keys/\(key.id)/actions/unwrap", headers: json, body: unwrapBody), 200),
            ("http_sync_rps", LoadGenerator.request("POST", "/api/v2/keys/\(key.id)/actions/sync", headers: headers), 409),
        ].filter { HTTPBench.profiling.wants(String($0.0.dropFirst("http_".count).dropLast("_rps".count))) }
        try await HTTPBench.serving({ onPort in
            // The server `serve` runs (its malformed-request handler included).
            try KeyRelayServer.makeApplication(api: api, host: "127.0.0.1", port: 0,
                                           onServerRunning: { channel in await onPort(channel.localAddress?.port ?? 0) })
        }) { port in
            for (name, request, expected) in routes {
                let load = LoadGenerator.run(port: port, requests: [request], connections: connections, seconds: seconds)
                guard load.errors == 0, load.statuses[expected] == load.requests else {
                    throw BenchError("\(name): expected only \(expected), got \(load.statuses) with \(load.errors) errors")
                }
                results.append((name, .measured(load.rate)))
                results.append((name.replacingOccurrences(of: "_rps", with: "_cpu_us"), .measured(load.cpuMicrosecondsPerRequest)))
            }
        }
        return results
    }

    /// Process CPU per `keyWithPayload` call, `tasks` callers at once for `seconds`.
    static func engineReadCPU(_ engine: KeyRelayEngine, keyID: String, tasks: Int, seconds: Double) async throws -> Double {
        let context = Bench.context
        let cpuStart = LoadGenerator.processCPUSeconds()
        let deadline = Date().addingTimeInterval(seconds)
        let reads = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<tasks {
                group.addTask {
                    var count = 0
                    while Date() < deadline {
                        _ = try await engine.keyWithPayload(keyID, context: context)
                        count += 1
                    }
                    return count
                }
            }
            return try await group.reduce(0, +)
        }
        return reads > 0 ? (LoadGenerator.processCPUSeconds() - cpuStart) / Double(reads) * 1e6 : 0
    }
}
