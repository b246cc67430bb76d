import Foundation
import KeyRelay
import KeyRelayBus
import Synchronization
import Testing

/// Continuous scheduling (issue 11): the dispatcher keeps up to its bound of hand-overs in flight instead of waiting
/// for a round's slowest, and still never hands a resource's next notification over while an earlier one of it is
/// in flight. No timing is asserted: receivers block on latches the test opens, and every wait on the dispatcher's
/// progress is bounded (60 s: the full suite on two cores stretches everything).
@Suite("Continuous delivery")
struct ContinuousDeliveryTests {
    /// Opens once; every `wait()`, before or after, then returns.
    final class Latch: Sendable {
        private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
        func open() {
            let waiters = state.withLock { s in
                s.open = true
                defer { s.waiters = [] }
                return s.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
        func wait() async {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.open { return true }
                    s.waiters.append(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        }
    }

    /// A subscriber whose behaviour per hand-over the test decides: `before` runs first (it may block), then the
    /// acknowledgement, then `after`; every hand-over's start and end are reported on `events`.
    final class ScriptedSubscriber: ServiceSubscriber {
        struct Seen: Sendable {
            var inFlight: [String: Int] = [:]
            var peakPerResource = 0
            var sequences: [String: [Int]] = [:]
        }
        let client: any AdopterClient
        let clock: any KeyRelayClock
        let seen = Mutex(Seen())
        let events: AsyncStream<String>
        private let sink: AsyncStream<String>.Continuation
        /// Runs during each hand-over with the notification and how many its resource has had (1 for the first):
        /// before the acknowledgement, or after it for the resources in `ackFirst`.
        let before: @Sendable (ResourceNotification, Int) async -> Void
        /// Resources whose receiver acknowledges first, then runs `before` (the hand-over is still running).
        let ackFirst: Set<String>

        init(client: any AdopterClient, clock: any KeyRelayClock, ackFirst: Set<String> = [],
             before: @escaping @Sendable (ResourceNotification, Int) async -> Void) {
            self.client = client
            self.clock = clock
            self.ackFirst = ackFirst
            self.before = before
            (events, sink) = AsyncStream.makeStream(of: String.self)
        }

        func deliver(_ notification: ResourceNotification) async throws {
            let crn = notification.resourceCRN
            let count = seen.withLock { s -> Int in
                s.inFlight[crn, default: 0] += 1
                s.peakPerResource = max(s.peakPerResource, s.inFlight[crn]!)
                s.sequences[crn, default: []].append(notification.event.keySequence)
                return s.sequences[crn]!.count
            }
            defer { seen.withLock { $0.inFlight[crn, default: 0] -= 1 } }
            if ackFirst.contains(crn) {
                try await acknowledge(notification)
                sink.yield("acked \(crn) #\(count)")
                await before(notification, count)
            } else {
                await before(notification, count)
                try await acknowledge(notification)
                sink.yield("acked \(crn) #\(count)")
            }
        }

        private func acknowledge(_ notification: ResourceNotification) async throws {
            let event = notification.event
            try await client.acknowledge(EventAcknowledgement(eventID: event.id, resourceCRN: notification.resourceCRN,
                                                                adopterKeyState: .expected(for: event.keyState),
                                                                keyVersionID: event.keyVersion.id, timestamp: clock.now()))
        }
    }

    struct TimedOut: Error, CustomStringConvertible {
        var description: String
    }

    /// Reads `events` until `done` says so, for at most 60 s.
    static func await(_ events: AsyncStream<String>, _ what: String, until done: @escaping @Sendable ([String]) -> Bool) async throws -> [String] {
        try await withThrowingTaskGroup(of: [String]?.self) { group in
            group.addTask {
                var got: [String] = []
                for await event in events {
                    got.append(event)
                    if done(got) { return got }
                }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: .seconds(60))
                return nil
            }
            let first = try await group.next()!
            group.cancelAll()
            guard let got = first else { throw TimedOut(description: "timed out waiting for \(what)") }
            return got
        }
    }

    @Test func aSlowHandOverDoesNotHoldBackTheOtherResources() async throws {
        let h = try await Harness(policy: DeliveryPolicy(concurrency: 4, scheduling: .continuous), subscribe: false)
        let slow = h.bucket("b1")
        let release = Latch()
        defer { release.open() }
        let subscriber = ScriptedSubscriber(client: h.engine.adopterClient(instanceID: h.ops.instanceID), clock: h.clock) { n, _ in
            if n.resourceCRN == slow { await release.wait() }
        }
        h.bus.subscribe(subscriber, to: Harness.cosService)
        let key = try await h.key(registering: (1...10).map { h.bucket("b\($0)") })
        try await h.engine.disable(key.id, context: h.ops)
        let drain = Task { try await h.dispatcher.drain() }
        // b1 is first in due order and its receiver does not answer: in rounds, the other three of its round would be
        // handed over and then everything would wait for it. Here the window refills around it.
        let got = try await Self.await(subscriber.events, "the nine other resources") { $0.count == 9 }
        #expect(!got.contains { $0.hasPrefix("acked \(slow) ") })
        let mid = try await h.engine.deliveryCounts(keyID: key.id)
        #expect(mid.acknowledged == 9)
        release.open()
        #expect(try await drain.value == 10)
        #expect(try await h.engine.deliveryCounts(keyID: key.id) == DeliveryCounts(acknowledged: 10))
        #expect(subscriber.seen.withLock { $0.peakPerResource } == 1)
    }

    @Test func aLaterEventWaitsForTheHandOverOfItsResourceStillRunning() async throws {
        let h = try await Harness(policy: DeliveryPolicy(concurrency: 4, scheduling: .continuous), subscribe: false)
        let b1 = h.bucket("b1"), b2 = h.bucket("b2")
        let releaseB1 = Latch(), releaseB2 = Latch()
        defer {
            releaseB1.open()
            releaseB2.open()
        }
        // b1's receiver acknowledges its first event at once and then keeps the hand-over open: its later event is due
        // (nothing pending ahead of it) while the hand-over of the earlier one still runs.
        let subscriber = ScriptedSubscriber(client: h.engine.adopterClient(instanceID: h.ops.instanceID), clock: h.clock,
                                            ackFirst: [b1]) { n, count in
            guard count == 1 else { return }
            if n.resourceCRN == b1 { await releaseB1.wait() }
            if n.resourceCRN == b2 { await releaseB2.wait() }
        }
        h.bus.subscribe(subscriber, to: Harness.cosService)
        let key = try await h.key(registering: [b1, b2])
        try await h.engine.rotate(key.id, context: h.ops)
        let drain = Task { try await h.dispatcher.drain() }
        _ = try await Self.await(subscriber.events, "b1's first acknowledgement") { $0.contains("acked \(b1) #1") }
        try await h.engine.disable(key.id, context: h.ops)   // a second event to both, due now
        // b2's first hand-over ends: its outcome is recorded and the same call claims both second events.
        releaseB2.open()
        _ = try await Self.await(subscriber.events, "b2's second event") { $0.contains("acked \(b2) #2") }
        #expect(subscriber.seen.withLock { $0.sequences[b1]?.count } == 1, "b1's second event handed over during its first")
        releaseB1.open()
        #expect(try await drain.value == 4)
        let seen = subscriber.seen.withLock { $0 }
        #expect(seen.peakPerResource == 1)
        #expect(seen.sequences[b1] == seen.sequences[b1]?.sorted())
        #expect(seen.sequences[b1]?.count == 2)
        #expect(try await h.engine.deliveryCounts(keyID: key.id) == DeliveryCounts(acknowledged: 4))
    }

    @Test func retriesAndDeadLettersKeepTheirInstants() async throws {
        let h = try await Harness(policy: DeliveryPolicy(maxAttempts: 3, jitter: .none, scheduling: .continuous))
        let key = try await h.key(registering: [h.bucket("b1"), h.bucket("b2")])
        h.bus.failNext(5, for: Harness.cosService)
        try await h.engine.disable(key.id, context: h.ops)
        try await h.dispatcher.advance(h.clock, by: 3600)
        // The bus's plans are taken in claim order (due time, then id): both fail at 0 and at 1; at 3, b1 fails a third
        // time (dead) and b2, the fifth failure spent, is delivered. Same instants as in rounds.
        let log = await h.dispatcher.log
        #expect(log.map(\.date) == [h.at(0), h.at(0), h.at(1), h.at(1), h.at(3), h.at(3)])
        #expect(log.map(\.attempt) == [1, 1, 2, 2, 3, 3])
        #expect(log.suffix(2).map(\.resourceCRN) == [h.bucket("b1"), h.bucket("b2")])
        #expect(log.last?.result == .delivered(times: 1))
        let counts = try await h.engine.deliveryCounts(keyID: key.id)
        #expect(counts == DeliveryCounts(acknowledged: 1, dead: 1))
    }
}
