import Foundation
import KeyRelay
import KeyRelayAdapters
import KeyRelayBus
import KeyRelaySQLite

/// Notifications delivered and acknowledged per second by the in-process simulated services.
///
/// One key protects `buckets` buckets of a simulated Cloud Object Storage instance (subscribed to the service bus
/// through the engine's own ``AdopterClient``), delivered `concurrency` at a time (continuously, as `serve` runs the
/// dispatcher, unless `--delivery-scheduling rounds`). Each round advances the manual clock past the sync cooldown,
/// syncs the key (one notification per bucket) and drains the dispatcher until every notification of the round is
/// acknowledged. The figure is acknowledged notifications over the time spent in `drain()` (the sync's own fan-out
/// is measured by `sync_fanout_100k_s`). Every delivery is real: the bucket checks the key, the acknowledgement is
/// a durable engine write.
enum DeliveryBench {
    struct Result {
        var rate: Double
        var acknowledged: Int
        var rounds: Int
        var buckets: Int
        var concurrency: Int
        /// Commands per group commit while delivering: acknowledgements, outcomes and claims share commits.
        var groupCommitMeanBatch: Double
        var commitsPerDelivery: Double
        /// Process CPU (user + system) per acknowledged delivery while draining, in microseconds: the dispatcher,
        /// the buckets' unwraps and acknowledgements, and the commits. Unlike the rate, it hardly moves when other
        /// processes compete for the cores.
        var cpuMicrosecondsPerDelivery: Double
    }

    static func run(path: String, seconds: Double, buckets: Int, concurrency: Int,
                    scheduling: DeliveryPolicy.Scheduling) async throws -> Result {
        let clock = ManualClock()
        let store = try SQLiteStore(.file(path))
        defer { try? store.close() }
        let engine = try await KeyRelayEngine(storage: store, masterKey: .generate(), clock: clock, ids: RandomIdentifiers())
        let context = Bench.context
        let key = try await engine.createKey(KeySpec(name: "delivery-key"), context: context)
        let bus = ServiceBus()
        let cos = ObjectStorageService(client: engine.adopterClient(instanceID: context.instanceID), clock: clock)
        cos.subscribe(to: bus)
        let dispatcher = engine.makeDispatcher(bus: bus, policy: DeliveryPolicy(concurrency: concurrency, scheduling: scheduling), seed: 6)
        // Buckets are created concurrently (group commit) so that the setup stays short.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<32 {
                group.addTask {
                    for index in stride(from: worker, to: buckets, by: 32) {
                        try await cos.createBucket("bench-bucket-\(index)", keyID: key.id)
                    }
                }
            }
            try await group.waitForAll()
        }
        // Creating buckets emits no notifications, but drain anything scheduled before measuring.
        _ = try await dispatcher.drain()

        var acknowledged = 0
        var rounds = 0
        var elapsed = 0.0
        var batches = 0, commands = 0
        var cpu = 0.0
        while elapsed < seconds || rounds == 0 {
            clock.advance(by: 7200)
            let before = try await engine.deliveryCounts(keyID: key.id)
            let receipt = try await engine.sync(key.id, context: context)
            guard receipt.notifications == buckets else {
                throw BenchError("sync wrote \(receipt.notifications) notifications, expected \(buckets)")
            }
            let statistics = store.groupCommitStatistics
            var counts = before
            // drain() delivers everything due at this instant; loop in case acknowledgements lag a pass. Only the
            // drains are timed: the counts are the benchmark's own check, a scan of every notification of the key,
            // which grows with every round.
            for _ in 0..<100 {
                let start = now()
                let cpuStart = LoadGenerator.processCPUSeconds()
                _ = try await dispatcher.drain()
                elapsed += now() - start
                cpu += LoadGenerator.processCPUSeconds() - cpuStart
                counts = try await engine.deliveryCounts(keyID: key.id)
                if counts.pending == 0, counts.sent == 0 { break }
            }
            // The delivery's commits only (the sync's own fan-out is before `statistics`; the counts read nothing).
            batches += store.groupCommitStatistics.batches - statistics.batches
            commands += store.groupCommitStatistics.commands - statistics.commands
            guard counts.pending == 0, counts.sent == 0, counts.acknowledged - before.acknowledged == buckets else {
                throw BenchError("round \(rounds): \(counts.acknowledged - before.acknowledged) of \(buckets) notifications acknowledged (pending \(counts.pending), sent \(counts.sent), dead \(counts.dead))")
            }
            acknowledged += buckets
            rounds += 1
        }
        return Result(rate: Double(acknowledged) / elapsed, acknowledged: acknowledged, rounds: rounds, buckets: buckets,
                      concurrency: concurrency, groupCommitMeanBatch: Double(commands) / Double(max(1, batches)),
                      commitsPerDelivery: Double(batches) / Double(max(1, acknowledged)),
                      cpuMicrosecondsPerDelivery: cpu / Double(max(1, acknowledged)) * 1e6)
    }
}
