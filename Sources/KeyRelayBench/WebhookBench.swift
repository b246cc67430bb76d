import AsyncHTTPClient
import Foundation
import Hummingbird
import KeyRelay
import KeyRelayBus
import KeyRelaySQLite

/// Webhook deliveries per second to a local receiver, against a bare loop of the same HTTP client.
///
/// The receiver is a Hummingbird route in this process that answers `204` to every POST. One key protects
/// `resources` registrations of `cloud-object-storage`, whose notifications go through ``WebhookTransport`` (signed
/// CloudEvents, the transport's own `HTTPClient`). Each round moves the ManualClock past the sync cooldown, syncs the
/// key (one notification per resource) and drains the dispatcher until every notification of the round is recorded
/// sent (nobody acknowledges: the receiver only answers). `webhook_delivery_per_s` is notifications sent over the time
/// in `drain()`.
///
/// In the same run, `webhook_bare_post_per_s`: an `HTTPClient` configured as the transport's
/// (``WebhookTransport/makeHTTPClient(timeout:)``) POSTs one of the run's signed webhooks (same body, same headers) to the same
/// receiver, as many at once as the dispatcher's bound, `resources` per round. The ratio is what the dispatcher, the
/// signing and the store cost on top of the HTTP exchanges themselves.
enum WebhookBench {
    struct Result {
        var deliveryRate: Double
        var bareRate: Double
        var delivered: Int
        var rounds: Int
        var resources: Int
        var concurrency: Int
        var scheduling: DeliveryPolicy.Scheduling
        var bodyBytes: Int
        var groupCommitMeanBatch: Double
        /// One signed webhook of the run, POSTed again and again by the bare loop.
        var sampleHeaders: [String: String] = [:]
        var sampleBody = Data()
    }

    static func run(path: String, seconds: Double, resources: Int, concurrency: Int,
                    scheduling: DeliveryPolicy.Scheduling) async throws -> Result {
        var result = Result(deliveryRate: 0, bareRate: 0, delivered: 0, rounds: 0, resources: resources, concurrency: concurrency,
                            scheduling: scheduling, bodyBytes: 0, groupCommitMeanBatch: 0)
        try await HTTPBench.serving({ onPort in
            let router = Router()
            router.post("webhooks") { request, _ -> Response in
                _ = try await request.body.collect(upTo: 1 << 20)
                return Response(status: .noContent)
            }
            return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                               onServerRunning: { channel in await onPort(channel.localAddress?.port ?? 0) })
        }) { port in
            let url = URL(string: "http://127.0.0.1:\(port)/webhooks")!
            try await measureDelivery(path: path, url: url, seconds: seconds, into: &result)
            try await measureBare(url: url, seconds: seconds, into: &result)
        }
        return result
    }

    static func measureDelivery(path: String, url: URL, seconds: Double, into result: inout Result) async throws {
        let clock = ManualClock()
        let store = try SQLiteStore(.file(path))
        defer { try? store.close() }
        let engine = try await KeyRelayEngine(storage: store, masterKey: .generate(), clock: clock, ids: RandomIdentifiers())
        let context = Bench.context
        let key = try await engine.createKey(KeySpec(name: "webhook-key"), context: context)
        let service = "cloud-object-storage"
        let resources = result.resources
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<32 {
                group.addTask {
                    for index in stride(from: worker, to: resources, by: 32) {
                        let crn = CRN.bucket(account: "bench", serviceInstance: "cos-bench", bucket: "webhook-bucket-\(index)")
                        try await engine.register(keyID: key.id, resourceCRN: crn, context: context)
                    }
                }
            }
            try await group.waitForAll()
        }
        let transport = WebhookTransport(subscriptions: try WebhookSubscriptions(parsing: ["\(service)=\(url.absoluteString)"]),
                                         secret: try WebhookSecret(parsing: "whsec_" + Data(repeating: 7, count: 32).base64EncodedString()),
                                         clock: SystemClock(), connectionsPerReceiver: result.concurrency)
        let bus = ServiceBus()
        transport.subscribe(on: bus)
        // Nobody acknowledges: a window longer than the run keeps earlier rounds' notifications sent, not due again.
        let policy = DeliveryPolicy(acknowledgementWindow: 365 * 86_400, concurrency: result.concurrency, scheduling: result.scheduling)
        let dispatcher = engine.makeDispatcher(bus: bus, policy: policy, seed: 11)
        _ = try await dispatcher.drain()

        var elapsed = 0.0
        var before = store.groupCommitStatistics
        // Round 0 warms up (connections to the receiver) and is not counted.
        for round in 0... {
            clock.advance(by: 7200)
            let receipt = try await engine.sync(key.id, context: context)
            guard receipt.notifications == resources else {
                throw BenchError("sync wrote \(receipt.notifications) notifications, expected \(resources)")
            }
            if round == 1 { before = store.groupCommitStatistics }
            let start = now()
            _ = try await dispatcher.drain()
            let took = now() - start
            let counts = try await engine.deliveryCounts(keyID: key.id)
            guard counts.pending == 0, counts.sent == resources * (round + 1) else {
                throw BenchError("webhook round \(round): pending \(counts.pending), sent \(counts.sent), dead \(counts.dead)")
            }
            if round == 0 { continue }
            elapsed += took
            result.delivered += resources
            result.rounds += 1
            if elapsed >= seconds || round >= 1_000 { break }
        }
        let after = store.groupCommitStatistics
        result.groupCommitMeanBatch = Double(after.commands - before.commands) / Double(max(1, after.batches - before.batches))
        result.deliveryRate = Double(result.delivered) / elapsed
        // The size of one webhook, for the bare loop.
        let sample = try await engine.notifications(keyID: key.id, limit: 1).first
        guard let sample else { throw BenchError("no notification to take a sample webhook from") }
        let message = try transport.message(for: sample)
        result.bodyBytes = message.body.count
        result.sampleHeaders = message.headers
        result.sampleBody = message.body
        await dispatcher.stop()
        try await transport.shutdown()
    }

    static func measureBare(url: URL, seconds: Double, into result: inout Result) async throws {
        let client = WebhookTransport.makeHTTPClient(connectionsPerHost: result.concurrency)
        let body = result.sampleBody, headers = result.sampleHeaders
        let concurrency = result.concurrency, perRound = result.resources
        @Sendable func post() async throws {
            var request = HTTPClientRequest(url: url.absoluteString)
            request.method = .POST
            for (name, value) in headers.sorted(by: { $0.key < $1.key }) { request.headers.add(name: name, value: value) }
            request.body = .bytes(ByteBuffer(bytes: body))
            let response = try await client.execute(request, timeout: .seconds(10))
            _ = try await response.body.collect(upTo: 64 * 1024)
            guard response.status.code == 204 else { throw BenchError("the receiver answered \(response.status.code)") }
        }
        var posted = 0
        var elapsed = 0.0
        // One warm-up round (connections), then rounds of `perRound` POSTs, `concurrency` at a time.
        for round in 0... {
            let start = now()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<concurrency {
                    group.addTask {
                        for _ in stride(from: worker, to: perRound, by: concurrency) { try await post() }
                    }
                }
                try await group.waitForAll()
            }
            if round == 0 { continue }
            elapsed += now() - start
            posted += perRound
            if elapsed >= seconds || round >= 1_000 { break }
        }
        try await client.shutdown()
        result.bareRate = Double(posted) / elapsed
    }
}
