import Foundation
import KeyRelay
import KeyRelayBus
import Synchronization
import Testing

@Suite("Delivery policy")
struct DeliveryPolicyTests {
    @Test func backoffIsCappedExponential() {
        let policy = DeliveryPolicy()
        #expect((1...6).map { policy.backoff(afterAttempt: $0) } == [1, 2, 4, 8, 16, 32])
        #expect(policy.backoff(afterAttempt: 11) == 900)
        #expect(policy.backoff(afterAttempt: 30) == 900)
    }

    @Test func equalJitterStaysWithinHalfAndWhole() {
        let policy = DeliveryPolicy(jitter: .equal)
        var generator = SeededGenerator(seed: 42)
        for attempt in 1...12 {
            let d = policy.backoff(afterAttempt: attempt)
            let delay = policy.retryDelay(afterAttempt: attempt, using: &generator)
            #expect(delay >= d / 2 && delay <= d)
        }
    }

    @Test func fullJitterIsNeverZeroAndNeverAboveTheBackoff() {
        let policy = DeliveryPolicy(jitter: .full)
        var generator = SeededGenerator(seed: 3)
        for attempt in 1...12 {
            let delay = policy.retryDelay(afterAttempt: attempt, using: &generator)
            #expect(delay >= 0.001 && delay <= policy.backoff(afterAttempt: attempt))
        }
    }

    @Test func ackTimeoutMessageUsesGoDurations() {
        #expect(DeliveryPolicy().acknowledgementTimeoutMessage == "Lifecycle action on a key with registrations did not complete: not acknowledged within 4h0m0s (408)")
    }
}

@Suite("Dispatcher")
struct DispatcherTests {
    @Test func deliversAndAcknowledges() async throws {
        let h = try await Harness()
        let key = try await h.key(registering: [h.bucket("b1"), h.deployment("d1")])
        try await h.engine.disable(key.id, context: h.ops)
        #expect(try await h.dispatcher.drain() == 2)
        #expect(h.cos.received.map(\.event.kind) == [.disable])
        #expect(h.db.received.map(\.event.kind) == [.disable])
        #expect(try await h.engine.deliveryCounts(keyID: key.id) == DeliveryCounts(acknowledged: 2))
        #expect(try await h.dispatcher.nextDueDate() == nil)
    }

    @Test(arguments: DeliveryPolicy.Scheduling.explicit)
    func retriesWithExactBackoffInstantsWithoutJitter(_ scheduling: DeliveryPolicy.Scheduling) async throws {
        let h = try await Harness(policy: DeliveryPolicy(jitter: .none, scheduling: scheduling))
        let key = try await h.key(registering: [h.bucket("b1")])
        h.bus.failNext(4, for: Harness.cosService)
        try await h.engine.delete(key.id, force: true, context: h.ops)
        try await h.dispatcher.advance(h.clock, by: 60)
        let log = await h.dispatcher.log
        #expect(log.map(\.date) == [h.at(0), h.at(1), h.at(3), h.at(7), h.at(15)])
        #expect(log.map(\.attempt) == [1, 2, 3, 4, 5])
        #expect(log.last?.result == .delivered(times: 1))
        #expect(try await h.engine.deliveryCounts(keyID: key.id) == DeliveryCounts(acknowledged: 1))
        #expect(h.clock.now() == h.at(60))
    }

    @Test func retriesWithSeededJitterAtReproducibleInstants() async throws {
        let seed: UInt64 = 99
        let policy = DeliveryPolicy(jitter: .equal)
        let h = try await Harness(seed: seed, policy: policy)
        let key = try await h.key(registering: [h.bucket("b1")])
        h.bus.failNext(5, for: Harness.cosService)
        try await h.engine.disable(key.id, context: h.ops)
        try await h.dispatcher.advance(h.clock, by: 3600)
        // The instants the policy gives for this seed, attempt after attempt.
        var generator = SeededGenerator(seed: seed)
        var expected: [Int64] = [0]
        for attempt in 1...5 {
            expected.append(expected.last! + policy.retryDelayMilliseconds(afterAttempt: attempt, using: &generator))
        }
        let log = await h.dispatcher.log
        #expect(log.map { Int64(($0.date.timeIntervalSince(h.start) * 1000).rounded()) } == expected)
        // Equal jitter: each gap is between half the backoff and the backoff.
        for i in 1..<expected.count {
            let gap = TimeInterval(expected[i] - expected[i - 1]) / 1000
            #expect(gap >= policy.backoff(afterAttempt: i) / 2 && gap <= policy.backoff(afterAttempt: i))
        }
    }

    @Test(arguments: DeliveryPolicy.Scheduling.explicit)
    func deadLetterAfterMaxAttempts(_ scheduling: DeliveryPolicy.Scheduling) async throws {
        let h = try await Harness(policy: DeliveryPolicy(maxAttempts: 3, jitter: .none, scheduling: scheduling))
        let key = try await h.key(registering: [h.bucket("b1")])
        h.bus.failNext(100, for: Harness.cosService)
        try await h.engine.disable(key.id, context: h.ops)
        try await h.dispatcher.advance(h.clock, by: 3600)
        let n = try #require(try await h.notifications(key.id).last)
        #expect(n.status == .dead)
        #expect(await h.dispatcher.log.map(\.attempt) == [1, 2, 3])
        #expect(n.lastError?.hasPrefix("delivery failed after 3 attempts: ") == true)
        #expect(await h.dispatcher.log.map(\.date) == [h.at(0), h.at(1), h.at(3)])
        #expect(h.cos.received.isEmpty)
    }

    @Test func serviceWithoutSubscriberFailsThenDies() async throws {
        let h = try await Harness(policy: DeliveryPolicy(maxAttempts: 2, jitter: .none), subscribe: false)
        let key = try await h.key(registering: [h.bucket("b1")])
        try await h.engine.disable(key.id, context: h.ops)
        try await h.dispatcher.advance(h.clock, by: 10)
        let n = try #require(try await h.notifications(key.id).last)
        #expect(n.status == .dead)
        #expect(n.lastError?.contains("no subscriber for service 'cloud-object-storage'") == true)
    }

    @Test func droppedNotificationDiesAfterTheAcknowledgementWindowAndSyncRepairsIt() async throws {
        let h = try await Harness()
        let key = try await h.key(registering: [h.bucket("b1")])
        h.bus.dropNext(1, for: Harness.cosService)
        try await h.engine.delete(key.id, force: true, context: h.ops)
        try await h.dispatcher.drain()
        #expect(try await h.notifications(key.id).last?.status == .sent)
        #expect(h.cos.received.isEmpty)
        try await h.dispatcher.advance(h.clock, by: 4 * 3600 - 1)
        #expect(try await h.notifications(key.id).last?.status == .sent)
        try await h.dispatcher.advance(h.clock, by: 1)
        let dead = try #require(try await h.notifications(key.id).last)
        #expect(dead.status == .dead)
        #expect(dead.lastError == "Lifecycle action on a key with registrations did not complete: not acknowledged within 4h0m0s (408)")
        #expect(dead.incomplete == .notAcknowledged)
        #expect(try await h.engine.drift(context: h.ops).count == 1)
        // Sync re-emits to the registration whose notification is dead.
        let receipt = try await h.engine.sync(key.id, context: h.ops)
        #expect(receipt.notifications == 1)
        try await h.dispatcher.drain()
        #expect(h.cos.received.map(\.event.kind) == [.sync])
        #expect(try await h.engine.deliveryCounts(keyID: key.id) == DeliveryCounts(acknowledged: 1, dead: 1))
        #expect(try await h.engine.drift(context: h.ops).isEmpty)
    }

    @Test func aFailingEarlierEventHoldsBackLaterOnesForItsResourceOnly() async throws {
        let h = try await Harness(policy: DeliveryPolicy(jitter: .none))
        let key = try await h.key(registering: [h.bucket("b1"), h.deployment("d1")])
        h.bus.failNext(1, for: Harness.cosService)
        try await h.engine.rotate(key.id, context: h.ops)
        try await h.engine.disable(key.id, context: h.ops)
        try await h.dispatcher.drain()
        // The deployment got both events; the bucket none: its rotate failed and holds back its disable.
        #expect(h.db.received.map(\.event.kind) == [.rotate, .disable])
        #expect(h.cos.received.isEmpty)
        try await h.dispatcher.advance(h.clock, by: 1)
        #expect(h.cos.received.map(\.event.kind) == [.rotate, .disable])
        let bucketLog = await h.dispatcher.log.filter { $0.resourceCRN == h.bucket("b1") }
        #expect(bucketLog.map(\.eventKind) == [.rotate, .rotate, .disable])
        #expect(bucketLog.map(\.date) == [h.at(0), h.at(1), h.at(1)])
    }

    @Test func duplicatesAreHarmless() async throws {
        let h = try await Harness()
        let key = try await h.key(registering: [h.bucket("b1")])
        h.bus.duplicateNext(1, for: Harness.cosService)
        try await h.engine.disable(key.id, context: h.ops)
        try await h.dispatcher.drain()
        #expect(h.cos.received.count == 2)
        #expect(Set(h.cos.received.map(\.event.id)).count == 1)
        #expect(try await h.engine.deliveryCounts(keyID: key.id) == DeliveryCounts(acknowledged: 1))
        #expect(await h.dispatcher.log.last?.result == .delivered(times: 2))
    }

    @Test func partitionThenHeal() async throws {
        let h = try await Harness(policy: DeliveryPolicy(jitter: .none))
        let key = try await h.key(registering: [h.bucket("b1"), h.deployment("d1")])
        h.bus.partition(Harness.cosService)
        try await h.engine.disable(key.id, context: h.ops)
        try await h.dispatcher.advance(h.clock, by: 10)
        #expect(h.cos.received.isEmpty)
        #expect(h.db.received.count == 1)
        let pending = try #require(try await h.notifications(key.id).first { $0.resourceCRN == h.bucket("b1") })
        #expect(pending.status == .pending)
        #expect(pending.lastError?.contains("unreachable (network partition)") == true)
        h.bus.heal(Harness.cosService)
        try await h.dispatcher.advance(h.clock, by: 10)   // attempts at 0, 1, 3, 7: next at 15
        #expect(h.cos.received.count == 1)
        #expect(await h.dispatcher.log.last?.date == h.at(15))
        #expect(try await h.engine.deliveryCounts(keyID: key.id) == DeliveryCounts(acknowledged: 2))
    }

    @Test func partitionUntilAnInstantHealsByItself() async throws {
        let h = try await Harness(policy: DeliveryPolicy(jitter: .none))
        let key = try await h.key(registering: [h.bucket("b1")])
        h.bus.partition(Harness.cosService, until: h.at(5))
        try await h.engine.disable(key.id, context: h.ops)
        try await h.dispatcher.advance(h.clock, by: 60)
        #expect(await h.dispatcher.log.map(\.date) == [h.at(0), h.at(1), h.at(3), h.at(7)])
        #expect(h.cos.received.count == 1)
        #expect(h.bus.faults(for: Harness.cosService).partitioned == false)
    }

    @Test func delayPostponesTheHandOverOnce() async throws {
        let h = try await Harness()
        let key = try await h.key(registering: [h.bucket("b1")])
        h.bus.delay(30, for: Harness.cosService)
        try await h.engine.disable(key.id, context: h.ops)
        try await h.dispatcher.advance(h.clock, by: 29)
        #expect(h.cos.received.isEmpty)
        try await h.dispatcher.advance(h.clock, by: 1)
        #expect(h.cos.received.count == 1)
        #expect(await h.dispatcher.log.map(\.result) == [.delayed(until: h.at(30)), .delivered(times: 1)])
    }

    @Test func expiryIsVisitedByAdvance() async throws {
        let h = try await Harness()
        var spec = KeySpec(name: "expiring")
        spec.expirationDate = h.at(600)
        let key = try await h.engine.createKey(spec, context: h.ops)
        #expect(try await h.dispatcher.nextDueDate() == h.at(600))
        try await h.dispatcher.advance(h.clock, by: 3600)
        let events = try await h.engine.events(keyID: key.id)
        #expect(events.map(\.kind) == [.create, .expire])
        #expect(events.last?.date == h.at(600))
    }

    @Test func sameSeedSameLogDifferentSeedDifferentTimings() async throws {
        func run(seed: UInt64) async throws -> [String] {
            let h = try await Harness(seed: seed, policy: DeliveryPolicy(maxAttempts: 5, jitter: .full))
            let key = try await h.key(registering: [h.bucket("b1"), h.bucket("b2"), h.deployment("d1")])
            h.bus.failNext(4, for: Harness.cosService)
            h.bus.duplicateNext(1, for: Harness.dbService)
            try await h.engine.rotate(key.id, context: h.ops)
            try await h.engine.disable(key.id, context: h.ops)
            try await h.dispatcher.advance(h.clock, by: 120)
            h.bus.dropNext(1, for: Harness.dbService)
            try await h.engine.enable(key.id, context: h.ops)
            try await h.dispatcher.advance(h.clock, by: 5 * 3600)
            return await h.dispatcher.log.map(\.description)
        }
        let first = try await run(seed: 11)
        let second = try await run(seed: 11)
        #expect(first == second)
        #expect(first.count > 8)
        let other = try await run(seed: 12)
        #expect(other != first)
    }
}

@Suite("Background loop")
struct BackgroundLoopTests {
    /// A subscriber that reports each delivery on a stream (no sleeping: the test waits for the event itself).
    final class Signalling: ServiceSubscriber {
        let continuation: AsyncStream<String>.Continuation
        init(_ continuation: AsyncStream<String>.Continuation) { self.continuation = continuation }
        func deliver(_ notification: ResourceNotification) async throws { continuation.yield(notification.event.id) }
    }

    @Test func deliversWhenPokedAndStopsCleanly() async throws {
        let engine = try await KeyRelayEngine.inMemory(clock: SystemClock())
        let ops = RequestContext(instanceID: "i", principal: "p")
        let bus = ServiceBus()
        let (stream, continuation) = AsyncStream.makeStream(of: String.self)
        bus.subscribe(Signalling(continuation), to: ServiceTopic.objectStorage)
        let dispatcher = engine.makeDispatcher(bus: bus)
        await dispatcher.start()
        let key = try await engine.createKey(KeySpec(name: "loop-key"), context: ops)
        try await engine.register(keyID: key.id, resourceCRN: CRN.bucket(account: "a", serviceInstance: "s", bucket: "b"), context: ops)
        let disabled = try await engine.disable(key.id, context: ops)
        dispatcher.poke()
        var iterator = stream.makeAsyncIterator()
        let delivered = await iterator.next()
        let event = try #require(try await engine.events(keyID: disabled.id).last)
        #expect(delivered == event.id)
        await dispatcher.stop()
        #expect(try await engine.deliveryCounts(keyID: key.id).sent == 1)
    }
}

/// An outbox in memory: `count` pending notifications to distinct resources, all due now; outcomes end them.
private final class MemoryOutbox: Outbox {
    private let pending: Mutex<[ResourceNotification]>

    init(count: Int, at date: Date) {
        pending = Mutex((1...count).map { n in
            let event = LifecycleEvent(sequence: Int64(n), id: "e\(n)", instanceID: "i1", keyID: "k1", keySequence: n, kind: .sync,
                                       keyState: .active, keyVersion: KeyVersion(id: "v1", creationDate: date), date: date,
                                       principal: "p", correlationID: nil)
            return ResourceNotification(id: Int64(n), event: event, resourceCRN: "crn:r\(n)", serviceName: "svc", status: .pending,
                                        attempts: 0, nextAttemptDate: date, lastError: nil, sentDate: nil, acknowledgedDate: nil)
        })
    }

    func dueNotifications(at date: Date, limit: Int) async throws -> [ResourceNotification] {
        pending.withLock { Array($0.prefix(limit)) }
    }
    func claimDueNotifications(at date: Date, limit: Int, leaseUntil: Date) async throws -> [ResourceNotification] {
        pending.withLock { p in
            let claimed = Array(p.prefix(limit))
            p.removeFirst(claimed.count)
            return claimed
        }
    }
    func recordDelivery(notificationID: Int64, _ outcome: DeliveryOutcome) async throws {}
    func nextDeliveryDueDate() async throws -> Date? { pending.withLock { $0.first?.nextAttemptDate } }
}

@Suite("Dispatcher log")
struct DispatcherLogTests {
    /// The log keeps the latest `logLimit` records, oldest first, however many steps were taken (it is trimmed in
    /// chunks, never returned longer than its limit).
    @Test func theLogKeepsTheLatestRecordsUpToItsLimit() async throws {
        let clock = ManualClock()
        let bus = ServiceBus()
        bus.subscribe(ReceivingSubscriber(), to: "svc")
        let dispatcher = Dispatcher(outbox: MemoryOutbox(count: 25, at: clock.now()), bus: bus, clock: clock,
                                    policy: DeliveryPolicy(concurrency: 4), logLimit: 7)
        #expect(try await dispatcher.drain() == 25)
        #expect(await dispatcher.log.map(\.eventID) == (19...25).map { "e\($0)" })
        await dispatcher.clearLog()
        #expect(await dispatcher.log.isEmpty)
    }

    /// Any limit an embedder passes is taken, the largest included (the trimming never doubles it).
    @Test func theLargestLimitKeepsEverything() async throws {
        let clock = ManualClock()
        let bus = ServiceBus()
        bus.subscribe(ReceivingSubscriber(), to: "svc")
        let dispatcher = Dispatcher(outbox: MemoryOutbox(count: 3, at: clock.now()), bus: bus, clock: clock,
                                    policy: DeliveryPolicy(concurrency: 4), logLimit: .max)
        #expect(try await dispatcher.drain() == 3)
        #expect(await dispatcher.log.count == 3)
    }
}

/// Receives and does nothing else (the outbox above ends a notification with its outcome).
private struct ReceivingSubscriber: ServiceSubscriber {
    func deliver(_ notification: ResourceNotification) async throws {}
}
