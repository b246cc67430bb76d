import AsyncHTTPClient
import Foundation
import Hummingbird
import NIOCore
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The PostgreSQL server the replica tests run on (`KEYRELAY_TEST_POSTGRES_URL`, set by scripts/test), or nil.
let replicaServer: String? = ProcessInfo.processInfo.environment["KEYRELAY_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }

/// Two `keyrelay serve` processes on one PostgreSQL database (issue #12 item 4): the same master key, the same dev
/// token, each its own manual dev clock (moved together by ``advance(_:)``), both sending COS webhooks to one
/// receiver. Every process started is stopped by ``stop()``.
struct ReplicaPair {
    static let token = "replica-dev-token"
    static let instance = "replica-instance"

    let directory: URL
    let replicas: [KeyrelayChild]
    let api: ReplicaAPI

    /// A new database on the test server, named `kr_replica_<random>`; returns its URL.
    static func freshDatabase() throws -> String {
        guard let server = replicaServer, let serverURL = URL(string: server), let host = serverURL.host else {
            throw CrossProcessFailure("KEYRELAY_TEST_POSTGRES_URL is not a postgres:// URL")
        }
        let name = "kr_replica_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        let psql = Process()
        psql.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        psql.arguments = ["psql", server, "-v", "ON_ERROR_STOP=1", "-qc", "CREATE DATABASE \(name)"]
        try psql.run()
        psql.waitUntilExit()
        guard psql.terminationStatus == 0 else { throw CrossProcessFailure("psql could not create \(name) on \(host)") }
        var components = URLComponents(url: serverURL, resolvingAgainstBaseURL: false)!
        components.path = "/" + name
        return components.string!
    }

    static func start(database: String, receiverPort: Int) async throws -> ReplicaPair {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keyrelay-replicas-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let secretFile = directory.appendingPathComponent("webhook-secret")
        try (makeWebhookSecret() + "\n").write(to: secretFile, atomically: true, encoding: .utf8)
        var bytes = [UInt8](repeating: 0, count: 32)
        for index in bytes.indices { bytes[index] = UInt8.random(in: .min ... .max) }
        let environment = ["KEYRELAY_MASTER_KEY": Data(bytes).base64EncodedString()]
        var replicas: [KeyrelayChild] = []
        var urls: [String] = []
        do {
            for name in ["replica A", "replica B"] {
                let child = try KeyrelayChild(name, [
                    "serve", "--dev", "--manual-clock", "--dev-token", token, "--db", database, "--port", "0",
                    "--webhook", "cloud-object-storage=http://127.0.0.1:\(receiverPort)/webhooks",
                    "--webhook-secret-file", secretFile.path, "--webhook-timeout", "5s",
                ], environment: environment)
                replicas.append(child)
                urls.append(try await child.waitForURL(after: "KeyRelay listening on "))
            }
        } catch {
            replicas.forEach { $0.stop() }
            throw error
        }
        return ReplicaPair(directory: directory, replicas: replicas, api: ReplicaAPI(urls: urls))
    }

    func stop() {
        replicas.forEach { $0.stop() }
        try? FileManager.default.removeItem(at: directory)
    }

    static var headers: [String: String] { ["authorization": "Bearer \(token)", "bluemix-instance": instance] }
}

/// The replicas' Key Protect APIs, by index (what concurrent requests capture).
struct ReplicaAPI: Sendable {
    let urls: [String]

    /// Calls replica `index`'s Key Protect API.
    func call(_ index: Int, _ method: String, _ path: String, json: Any? = nil) async throws -> Answer {
        try await send(method, urls[index] + path, headers: ReplicaPair.headers, json: json)
    }

    func createRootKey(_ index: Int, _ name: String) async throws -> String {
        let answer = try await call(index, "POST", "/api/v2/keys", json: [
            "metadata": ["collectionType": "application/vnd.ibm.kms.key+json", "collectionTotal": 1],
            "resources": [["type": "application/vnd.ibm.kms.key+json", "name": name, "extractable": false]],
        ])
        guard answer.status == 201, let id = (answer.json["resources"] as? [[String: Any]])?.first?["id"] as? String else {
            throw CrossProcessFailure("key creation on replica \(index) answered \(answer.status): \(answer.text)")
        }
        return id
    }

    /// Moves the dev clock of every replica still running by the same amount.
    func advance(_ duration: String, replicas indices: [Int] = [0, 1]) async throws {
        for index in indices {
            let answer = try await call(index, "POST", "/api/v2/_dev/clock", json: ["advance": duration])
            guard answer.status == 200 else { throw CrossProcessFailure("dev clock of replica \(index) answered \(answer.status): \(answer.text)") }
        }
    }

    /// The key's events, oldest first, with their kinds.
    func eventKinds(_ index: Int, _ keyID: String) async throws -> [String] {
        let answer = try await call(index, "GET", "/api/v2/_keyrelay/keys/\(keyID)/events?limit=100")
        guard answer.status == 200 else { throw CrossProcessFailure("events answered \(answer.status): \(answer.text)") }
        return ((answer.json["resources"] as? [[String: Any]]) ?? []).compactMap { $0["kind"] as? String }.reversed()
    }
}

/// Runs `count` async jobs with at most `width` in flight; returns their results in job order.
func concurrently<T: Sendable>(_ count: Int, width: Int, _ job: @escaping @Sendable (Int) async throws -> T) async throws -> [T] {
    try await withThrowingTaskGroup(of: (Int, T).self) { group in
        var results = [T?](repeating: nil, count: count)
        var next = 0
        while next < min(width, count) {
            let index = next
            group.addTask { (index, try await job(index)) }
            next += 1
        }
        while let (index, value) = try await group.next() {
            results[index] = value
            if next < count {
                let index = next
                group.addTask { (index, try await job(index)) }
                next += 1
            }
        }
        return results.map { $0! }
    }
}

/// A webhook receiver that records, per resource, the global sequence of each event it is handed, and acknowledges
/// it through one replica's `event_ack` before answering 204 (as a COS that applied the event would).
final class AcknowledgingReceiver: Sendable {
    private struct State {
        var received: [String: [Int64]] = [:]
        var task: Task<Void, any Error>?
    }
    private let state = Mutex(State())
    private let acknowledgeVia = Mutex<String?>(nil)
    /// The last refused acknowledgement, for a failure's message.
    let lastAckFailure = Mutex<String?>(nil)

    /// Event sequences received, by resource CRN, in arrival order.
    var received: [String: [Int64]] { state.withLock { $0.received } }
    var total: Int { state.withLock { $0.received.values.reduce(0) { $0 + $1.count } } }

    func acknowledge(via url: String) { acknowledgeVia.withLock { $0 = url } }

    func start() async throws -> Int {
        let router = Router()
        router.post("/webhooks") { [self] request, _ -> HTTPResponse.Status in
            let body = try await request.body.collect(upTo: 1 << 20)
            guard let event = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
                  let id = event["id"] as? String, let crn = event["resourcecrn"] as? String,
                  let data = event["data"] as? [String: Any],
                  let sequence = (data["eventSequence"] as? NSNumber)?.int64Value,
                  let code = (data["keyStateCode"] as? NSNumber)?.intValue, let version = data["keyVersion"] as? String
            else { return .badRequest }
            state.withLock { $0.received[crn, default: []].append(sequence) }
            guard let url = acknowledgeVia.withLock({ $0 }) else { return .noContent }
            let adopterState = code == 2 ? "DEK_DISABLED" : code == 5 ? "DEK_DELETED" : "DEK_ENABLED"
            let media = "application/vnd.ibm.kms.event_acknowledge+json"
            let ackBody = try JSONSerialization.data(withJSONObject: [
                "metadata": ["collectionType": media, "collectionTotal": 1],
                "resources": [["eventId": id, "adopterKeyState": adopterState, "timestamp": "2026-01-01T00:00:00Z",
                               "resourceCrn": crn, "keyStateData": ["rewrappedKeyVersion": version]]],
            ] as [String: Any])
            let ack = try await send("POST", url + "/api/v2/event_ack", headers: ReplicaPair.headers.merging(["content-type": media]) { $1 },
                                     body: ackBody)
            if ack.status >= 300 { lastAckFailure.withLock { $0 = "\(ack.status): \(ack.text.prefix(300))" } }
            return ack.status < 300 ? .noContent : .serviceUnavailable
        }
        let (port, task) = try await startLocalReceiver(router)
        state.withLock { $0.task = task }
        return port
    }

    func stop() { state.withLock { $0.task?.cancel() } }
}

@Suite("two serve replicas on one PostgreSQL database", .serialized,
       .enabled(if: replicaServer != nil, "set KEYRELAY_TEST_POSTGRES_URL (scripts/test starts a throwaway server) to run the replica tests"))
struct ReplicaTests {
    @Test("1,000 concurrent lifecycle commands spread over both replicas: no state lost or doubled, one winner per contested action")
    func concurrentCommands() async throws {
        let receiver = AcknowledgingReceiver()
        let pair = try await ReplicaPair.start(database: try ReplicaPair.freshDatabase(), receiverPort: try await receiver.start())
        defer { pair.stop(); receiver.stop() }
        let api = pair.api

        // 200 creations, alternating replicas.
        let ids = try await concurrently(200, width: 32) { index in try await api.createRootKey(index % 2, "replica-key-\(index)") }
        #expect(Set(ids).count == 200)
        // Every key disabled on both replicas at once (400 commands): exactly one of each pair is accepted.
        let disables = try await concurrently(400, width: 32) { index in
            try await api.call(index % 2, "POST", "/api/v2/keys/\(ids[index / 2])/actions/disable").status
        }
        // Past the enable cooldown, every key enabled on both at once (400 more): again one winner each.
        try await api.advance("1m")
        let enables = try await concurrently(400, width: 32) { index in
            try await api.call(index % 2, "POST", "/api/v2/keys/\(ids[index / 2])/actions/enable").status
        }
        for key in 0..<200 {
            let disabled = [disables[2 * key], disables[2 * key + 1]], enabled = [enables[2 * key], enables[2 * key + 1]]
            #expect(disabled.filter { $0 == 204 }.count == 1 && disabled.allSatisfy { $0 == 204 || $0 == 409 || $0 == 400 }, "disable \(key): \(disabled)")
            #expect(enabled.filter { $0 == 204 }.count == 1, "enable \(key): \(enabled)")
        }
        // Both replicas see the same 200 keys, each with exactly create, disable, enable, and active.
        let listed = try await api.call(1, "GET", "/api/v2/keys?limit=500")
        #expect(((listed.json["metadata"] as? [String: Any])?["collectionTotal"] as? NSNumber)?.intValue == 200, "\(listed.text.prefix(300))")
        for (index, id) in ids.enumerated() where index % 20 == 0 {
            #expect(try await api.eventKinds(index % 2, id) == ["create", "disable", "enable"])
            let key = try await api.call((index + 1) % 2, "GET", "/api/v2/keys/\(id)")
            #expect(((key.json["resources"] as? [[String: Any]])?.first?["state"] as? NSNumber)?.intValue == 1)
        }
    }

    @Test("the same sync sent to both replicas at the same instant: exactly one 204, the others 409 with Retry-After")
    func concurrentSyncs() async throws {
        let receiver = AcknowledgingReceiver()
        let pair = try await ReplicaPair.start(database: try ReplicaPair.freshDatabase(), receiverPort: try await receiver.start())
        defer { pair.stop(); receiver.stop() }
        let api = pair.api
        let id = try await api.createRootKey(0, "synced-twice")
        try await api.advance("2h")
        let answers = try await concurrently(16, width: 16) { index in
            try await api.call(index % 2, "POST", "/api/v2/keys/\(id)/actions/sync")
        }
        #expect(answers.filter { $0.status == 204 }.count == 1, "\(answers.map(\.status))")
        #expect(answers.filter { $0.status == 409 }.count == 15)
        #expect(answers.filter { $0.status == 409 }.allSatisfy { $0.headers["retry-after"] != nil })
        #expect(try await api.eventKinds(1, id) == ["create", "sync"])
    }

    @Test("a replica killed (SIGKILL) while delivering a 1,000-resource sync loses nothing: the other delivers the rest, in order per resource, and keeps serving")
    func killedReplicaLosesNothing() async throws {
        let receiver = AcknowledgingReceiver()
        let pair = try await ReplicaPair.start(database: try ReplicaPair.freshDatabase(), receiverPort: try await receiver.start())
        defer { pair.stop(); receiver.stop() }
        let api = pair.api
        receiver.acknowledge(via: api.urls[1])
        let id = try await api.createRootKey(1, "protects-a-thousand")
        let crns = (0..<1000).map { "crn:v1:bluemix:public:cloud-object-storage:global:a/replica:cos-1:bucket:b\($0)" }
        _ = try await concurrently(crns.count, width: 32) { index in
            let encoded = crns[index].addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let answer = try await api.call(1, "POST", "/api/v2/keys/\(id)/registrations/\(encoded)", json: [
                "metadata": ["collectionType": "application/vnd.ibm.kms.registration_input+json", "collectionTotal": 1],
                "resources": [["preventKeyDeletion": false]],
            ])
            guard answer.status == 201 else { throw CrossProcessFailure("registration answered \(answer.status): \(answer.text)") }
        }
        try await api.advance("2h")
        // Two events per resource: the sync, then a disable, so per-resource order is visible at the receiver.
        let sync = try await api.call(0, "POST", "/api/v2/keys/\(id)/actions/sync")
        #expect(sync.status == 204, "\(sync.text)")
        let disable = try await api.call(0, "POST", "/api/v2/keys/\(id)/actions/disable")
        #expect(disable.status == 204, "\(disable.text)")
        // Kill replica A while the deliveries are under way.
        _ = try await eventually("deliveries to start", timeout: .seconds(60)) { receiver.total >= 50 ? true : nil }
        pair.replicas[0].send(signal: SIGKILL)
        #expect(try await pair.replicas[0].waitForExit(timeout: .seconds(10)) != nil)
        let killedAt = receiver.total
        #expect(killedAt < 2000, "the kill came after every delivery: the test proves nothing")
        // Replica B keeps serving; past the dead replica's lease (2 × 5 s + 1 s) its claims fall due again.
        #expect(try await api.call(1, "GET", "/api/v2/keys/\(id)").status == 200)
        try await api.advance("1m", replicas: [1])
        // Time passes on the survivor's dev clock too (a minute per probe), so retries fall due as they would.
        let last = Mutex<[String: Int]>([:])
        let counts: [String: Int]
        do {
          counts = try await eventually("every notification acknowledged", timeout: .seconds(240)) { () -> [String: Int]? in
            let page = try await api.call(1, "GET", "/api/v2/_keyrelay/keys/\(id)/associations?limit=1")
            let deliveries = (page.json["deliveries"] as? [String: Any])?.compactMapValues { ($0 as? NSNumber)?.intValue } ?? [:]
            last.withLock { $0 = deliveries }
            if deliveries["acknowledged"] == 2000 { return deliveries }
            try await Task.sleep(for: .seconds(1))
            try await api.advance("1m", replicas: [1])
            return nil
          }
        } catch {
            throw CrossProcessFailure("\(error); the key's deliveries were \(last.withLock { $0 }), \(receiver.total) webhooks received, last refused ack: \(receiver.lastAckFailure.withLock { $0 } ?? "none")\n\(pair.replicas[1].printed.suffix(3000))")
        }
        #expect(counts["pending"] ?? 0 == 0 && counts["dead"] ?? 0 == 0, "\(counts)")
        let received = receiver.received
        #expect(received.count == 1000)
        for crn in crns {
            let sequences = received[crn] ?? []
            // Each resource got both events, the sync's before the disable's (a redelivery of one the killed replica
            // handed over without recording it is allowed, never a step back).
            #expect(Set(sequences).count == 2 && sequences == sequences.sorted(), "\(crn): \(sequences)")
        }
    }
}
