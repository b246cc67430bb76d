import Foundation
import KeyRelay
import KeyRelayBus
import Synchronization
import Testing

/// Distinct resources are handed over in parallel up to the policy's bound, one resource never twice at once, and
/// claims keep several drains and several dispatchers on one database from handing the same notification over twice
/// (issue 11 items 1 and 5). No timing is asserted: the receivers below wait for a condition, bounded.
@Suite("Parallel delivery")
struct ParallelDeliveryTests {
    /// What every hand-over through any ``QuorumSubscriber`` sharing it saw.
    final class Tally: Sendable {
        struct State {
            var inFlight = 0
            var peak = 0
            var byResource: [String: Int] = [:]
            var peakPerResource = 0
            var sequences: [String: [Int]] = [:]
            var deliveries: [Int64] = []
            var quorumReached = false
        }
        let quorum: Int
        let state = Mutex(State())
        init(quorum: Int) { self.quorum = quorum }
        var snapshot: State { state.withLock { $0 } }
    }

    /// Holds every hand-over until `quorum` of them (counted over every subscriber sharing the tally) are in flight at
    /// once, or `patience` has passed (generous: the whole suite may share two cores), then acknowledges. Once the quorum has been reached, hand-overs pass at once.
    final class QuorumSubscriber: ServiceSubscriber {
        let tally: Tally
        let patience: Duration
        let client: any AdopterClient
        let clock: any KeyRelayClock

        init(_ tally: Tally, patience: Duration = .seconds(20), client: any AdopterClient, clock: any KeyRelayClock) {
            self.tally = tally
            self.patience = patience
            self.client = client
            self.clock = clock
        }

        func deliver(_ notification: ResourceNotification) async throws {
            let quorum = tally.quorum
            tally.state.withLock { s in
                s.inFlight += 1
                s.peak = max(s.peak, s.inFlight)
                if s.inFlight >= quorum { s.quorumReached = true }
                s.byResource[notification.resourceCRN, default: 0] += 1
                s.peakPerResource = max(s.peakPerResource, s.byResource[notification.resourceCRN]!)
                s.sequences[notification.resourceCRN, default: []].append(notification.event.keySequence)
                s.deliveries.append(notification.id)
            }
            let clock = ContinuousClock()
            let deadline = clock.now + patience
            while !tally.state.withLock({ $0.quorumReached }), clock.now < deadline {
                try await Task.sleep(for: .milliseconds(2))
            }
            tally.state.withLock { s in
                s.inFlight -= 1
                s.byResource[notification.resourceCRN, default: 0] -= 1
            }
            let event = notification.event
            try await client.acknowledge(EventAcknowledgement(eventID: event.id, resourceCRN: notification.resourceCRN,
                                                                adopterKeyState: .expected(for: event.keyState),
                                                                keyVersionID: event.keyVersion.id, timestamp: self.clock.now()))
        }
    }

    static func gate(_ h: Harness, quorum: Int) -> (Tally, QuorumSubscriber) {
        let tally = Tally(quorum: quorum)
        let gate = QuorumSubscriber(tally, client: h.engine.adopterClient(instanceID: h.ops.instanceID), clock: h.clock)
        h.bus.subscribe(gate, to: Harness.cosService)
        return (tally, gate)
    }

    @Test(arguments: DeliveryPolicy.Scheduling.explicit)
    func distinctResourcesAreHandedOverTogetherUpToTheBound(_ scheduling: DeliveryPolicy.Scheduling) async throws {
        let h = try await Harness(policy: DeliveryPolicy(concurrency: 4, scheduling: scheduling), subscribe: false)
        let (tally, _) = Self.gate(h, quorum: 4)
        let key = try await h.key(registering: (1...10).map { h.bucket("b\($0)") })
        try await h.engine.disable(key.id, context: h.ops)
        #expect(try await h.dispatcher.drain() == 10)
        let seen = tally.snapshot
        // Serial hand-over would never have two in flight (each would wait out its patience alone).
        #expect(seen.quorumReached)
        #expect(seen.peak == 4, "never more than the bound in flight")
        #expect(try await h.engine.deliveryCounts(keyID: key.id) == DeliveryCounts(acknowledged: 10))
    }

    @Test(arguments: DeliveryPolicy.Scheduling.explicit)
    func oneResourceIsNeverHandedOverTwiceAtOnceAndKeepsItsOrder(_ scheduling: DeliveryPolicy.Scheduling) async throws {
        let h = try await Harness(policy: DeliveryPolicy(concurrency: 8, scheduling: scheduling), subscribe: false)
        let (tally, _) = Self.gate(h, quorum: 3)
        let key = try await h.key(registering: (1...3).map { h.bucket("b\($0)") })
        try await h.engine.rotate(key.id, context: h.ops)
        try await h.engine.disable(key.id, context: h.ops)   // a second event per resource, due at the same instant
        try await h.dispatcher.advance(h.clock, by: 60)
        let seen = tally.snapshot
        #expect(seen.quorumReached)
        #expect(seen.peakPerResource == 1)
        for (crn, sequences) in seen.sequences {
            #expect(sequences == sequences.sorted(), "events to \(crn) out of order: \(sequences)")
            #expect(sequences.count == 2)
        }
        #expect(try await h.engine.deliveryCounts(keyID: key.id) == DeliveryCounts(acknowledged: 6))
    }

    /// Acknowledges after a pause that depends on the resource (real time), so that hand-overs finish in another
    /// order than they started.
    final class StaggeredSubscriber: ServiceSubscriber {
        let client: any AdopterClient
        let clock: any KeyRelayClock
        let pause: @Sendable (String) -> Duration
        init(client: any AdopterClient, clock: any KeyRelayClock, pause: @escaping @Sendable (String) -> Duration) {
            self.client = client
            self.clock = clock
            self.pause = pause
        }
        func deliver(_ notification: ResourceNotification) async throws {
            try await Task.sleep(for: pause(notification.resourceCRN))
            let event = notification.event
            try await client.acknowledge(EventAcknowledgement(eventID: event.id, resourceCRN: notification.resourceCRN,
                                                                adopterKeyState: .expected(for: event.keyState),
                                                                keyVersionID: event.keyVersion.id, timestamp: clock.now()))
        }
    }

    @Test func theLogAndTheRetryInstantsDoNotDependOnWhichHandOverFinishesFirst() async throws {
        // The same writes, faults and seed; hand-overs that finish in their order, then in the reverse order.
        func run(reversed: Bool) async throws -> [String] {
            let h = try await Harness(seed: 11, policy: DeliveryPolicy(concurrency: 16), subscribe: false)
            let buckets = (1...12).map { h.bucket("b\($0)") }
            let subscriber = StaggeredSubscriber(client: h.engine.adopterClient(instanceID: h.ops.instanceID), clock: h.clock) { crn in
                guard reversed, let index = buckets.firstIndex(of: crn) else { return .zero }
                return .milliseconds(3 * (buckets.count - index))
            }
            h.bus.subscribe(subscriber, to: Harness.cosService)
            let key = try await h.key(registering: buckets)
            h.bus.failNext(5, for: Harness.cosService)
            h.bus.duplicateNext(2, for: Harness.cosService)
            try await h.engine.rotate(key.id, context: h.ops)
            try await h.engine.disable(key.id, context: h.ops)
            try await h.dispatcher.advance(h.clock, by: 120)
            #expect(try await h.engine.deliveryCounts(keyID: key.id).acknowledged == 24)
            return await h.dispatcher.log.map(\.description)
        }
        let inOrder = try await run(reversed: false)
        let reversed = try await run(reversed: true)
        #expect(inOrder.count == 29)
        #expect(reversed == inOrder)
    }

    /// Holds the first hand-over until released; later ones pass at once. Counts hand-overs per notification.
    final class FirstHeldSubscriber: ServiceSubscriber {
        private let state = Mutex((deliveries: [Int64](), released: false))
        var deliveries: [Int64] { state.withLock { $0.deliveries } }
        func release() { state.withLock { $0.released = true } }
        func deliver(_ notification: ResourceNotification) async throws {
            let first = state.withLock { s -> Bool in
                s.deliveries.append(notification.id)
                return s.deliveries.count == 1
            }
            guard first else { return }
            for _ in 0..<3000 where !state.withLock({ $0.released }) { try await Task.sleep(for: .milliseconds(20)) }
        }
    }

    @Test(arguments: DeliveryPolicy.Scheduling.explicit)
    func aClockAdvanceWhileTheBackgroundLoopDeliversDoesNotHandTheSameNotificationOverAgain(_ scheduling: DeliveryPolicy.Scheduling) async throws {
        let h = try await Harness(policy: DeliveryPolicy(scheduling: scheduling), subscribe: false)
        let holder = FirstHeldSubscriber()
        h.bus.subscribe(holder, to: Harness.cosService)
        let key = try await h.key(registering: [h.bucket("b1")])
        try await h.engine.disable(key.id, context: h.ops)
        await h.dispatcher.start()
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while holder.deliveries.isEmpty, clock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(holder.deliveries.count == 1)
        // The dev clock endpoint's path: advance (past the claim's lease, too) while the loop's hand-over is in flight.
        let advancing = Task { try await h.dispatcher.advance(h.clock, by: 60) }
        try await Task.sleep(for: .milliseconds(100))
        holder.release()
        try await advancing.value
        await h.dispatcher.stop()
        #expect(holder.deliveries.count == 1, "handed over \(holder.deliveries.count) times")
        let statuses = try await h.notifications(key.id).map(\.status)
        #expect(statuses == [.sent])
    }

    @Test(arguments: DeliveryPolicy.Scheduling.explicit)
    func twoDispatchersOfOneEngineNeverClaimTheSameNotification(_ scheduling: DeliveryPolicy.Scheduling) async throws {
        let h = try await Harness(policy: DeliveryPolicy(concurrency: 4, scheduling: scheduling), subscribe: false)
        let (tally, _) = Self.gate(h, quorum: 8)
        let other = h.engine.makeDispatcher(bus: h.bus, policy: DeliveryPolicy(concurrency: 4, scheduling: scheduling), seed: 8)
        let key = try await h.key(registering: (1...16).map { h.bucket("b\($0)") })
        try await h.engine.disable(key.id, context: h.ops)
        async let first = h.dispatcher.drain()
        async let second = other.drain()
        let steps = try await first + second
        let seen = tally.snapshot
        #expect(steps == 16)
        #expect(seen.quorumReached, "both dispatchers had hand-overs in flight together")
        #expect(Set(seen.deliveries).count == seen.deliveries.count, "a notification handed over twice")
        #expect(try await h.engine.deliveryCounts(keyID: key.id) == DeliveryCounts(acknowledged: 16))
    }

    @Test(arguments: DeliveryPolicy.Scheduling.explicit)
    func twoDispatchersOnOneSQLiteFileNeverHandTheSameNotificationOverTwice(_ scheduling: DeliveryPolicy.Scheduling) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keyrelay-claims-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("keyrelay.sqlite").path
        let master = MasterKey.generate()
        let clock = ManualClock()
        let ops = RequestContext(instanceID: "instance-1", principal: "operator")
        // Two engines (two connections, as two processes would have) on one file, each with its own dispatcher.
        let one = try await KeyRelayEngine.open(path: path, masterKey: master, clock: clock)
        let two = try await KeyRelayEngine.open(path: path, masterKey: master, clock: clock)
        let tally = Tally(quorum: 8)
        let policy = DeliveryPolicy(concurrency: 4, scheduling: scheduling)
        var dispatchers: [Dispatcher] = []
        for engine in [one, two] {
            let bus = ServiceBus()
            bus.subscribe(QuorumSubscriber(tally, client: engine.adopterClient(instanceID: ops.instanceID), clock: clock),
                          to: Harness.cosService)
            dispatchers.append(engine.makeDispatcher(bus: bus, policy: policy))
        }
        let key = try await one.createKey(KeySpec(name: "root"), context: ops)
        for b in 1...24 {
            try await one.register(keyID: key.id, resourceCRN: CRN.bucket(account: "acct", serviceInstance: "cos-1", bucket: "b\(b)"), context: ops)
        }
        try await one.rotate(key.id, context: ops)
        try await two.disable(key.id, context: ops)
        // Both drain at once, on a clock that does not move: a notification handed over and not yet acknowledged falls
        // due again at its acknowledgement timeout, so a dispatcher moving the shared clock past it (`advance`) would
        // rightly hand it over again — at-least-once, not the double claim this test is about. Rounds until every
        // notification is acknowledged (a disable's waits for the same bucket's rotate to be acknowledged), bounded.
        var rounds = 0
        while try await one.deliveryCounts(keyID: key.id).acknowledged < 48, rounds < 100 {
            async let first = dispatchers[0].drain()
            async let second = dispatchers[1].drain()
            _ = try await (first, second)
            rounds += 1
        }
        let seen = tally.snapshot
        #expect(seen.quorumReached, "the two dispatchers had hand-overs in flight together")
        #expect(seen.deliveries.count == 48)
        #expect(Set(seen.deliveries).count == seen.deliveries.count, "a notification handed over twice")
        #expect(seen.peakPerResource == 1)
        #expect(try await one.deliveryCounts(keyID: key.id) == DeliveryCounts(acknowledged: 48))
    }
}
