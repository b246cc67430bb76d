import Foundation
import KeyRelay
import KeyRelayBus
import Testing
@testable import KeyRelayPostgres

/// The engine on two replicas of one PostgreSQL database (DESIGN.md: "with two serve replicas on one PostgreSQL
/// database"): the store's row locks are what makes the engine's rules hold across processes.
@Suite("Engine replicas on PostgreSQL", .enabled(if: hasServer, serverMissing))
struct ReplicaEngineTests {
    let master = MasterKey.generate()
    let context = RequestContext(instanceID: "instance-a", principal: "alice")

    /// A scratch database as an operator names it (a URL through StoreLocation), with its own user and host.
    func location(_ database: PostgresStore.Configuration) throws -> StoreLocation {
        try StoreLocation.postgres("postgres://\(database.username)@\(database.host):\(database.port)/\(database.database)?sslmode=disable&pool_size=4")
    }

    /// The engine's commands and time-driven work on PostgreSQL, end to end: every statement they issue runs there.
    @Test func aKeysWholeLifecycleRunsOnPostgreSQL() async throws {
        try await withScratch { scratch in
            let clock = ManualClock()
            let engine = try await KeyRelayEngine.open(try location(try await scratch.database()), masterKey: master, clock: clock)
            let key = try await engine.createKey(KeySpec(name: "story"), context: context)
            let bucket = CRN.bucket(account: "acct", serviceInstance: "cos", bucket: "photos")
            _ = try await engine.register(keyID: key.id, resourceCRN: bucket, context: context)
            _ = try await engine.rotate(key.id, context: context)
            clock.advance(by: 2 * 3600)
            let receipt = try await engine.sync(key.id, context: context)
            #expect(receipt.notifications == 1)
            _ = try await engine.delete(key.id, force: true, context: context)
            #expect(try await engine.key(key.id, context: context).state == .destroyed)
            clock.advance(by: 91 * 86_400)
            #expect(try await engine.purgeKeysPastRetention() == 1)
            let kinds = try await engine.events(keyID: key.id, context: context).map(\.kind)
            #expect(kinds.first == .create && kinds.contains(.rotate) && kinds.contains(.sync) && kinds.contains(.delete))
            #expect(kinds.last == .purge)
            #expect(try await engine.notifications(keyID: key.id).allSatisfy { $0.status != .pending })
            await #expect(throws: KeyRelayError.self) { _ = try await engine.key(key.id, context: context) }
        }
    }

    /// An idle replica's dispatcher starts on what another replica wrote when that commit is announced (LISTEN/NOTIFY),
    /// well before its 30 s poll: the writer here has no dispatcher at all.
    @Test func anIdleReplicasDispatcherWakesOnAnotherReplicasCommit() async throws {
        try await withScratch { scratch in
            let location = try location(try await scratch.database())
            let writer = try await KeyRelayEngine.open(location, masterKey: master, clock: SystemClock())
            let deliverer = try await KeyRelayEngine.open(location, masterKey: master, clock: SystemClock())
            let bus = ServiceBus()
            let (delivered, continuation) = AsyncStream.makeStream(of: String.self)
            bus.subscribe(Recording(continuation), to: ServiceTopic.objectStorage)
            let dispatcher = deliverer.makeDispatcher(bus: bus)
            let running = Task { await deliverer.run(dispatcher) }
            defer { running.cancel() }
            // Let the dispatcher find nothing due and go idle (its next poll is 30 s away).
            try await Task.sleep(for: .milliseconds(500))
            let key = try await writer.createKey(KeySpec(name: "written-elsewhere"), context: context)
            _ = try await writer.register(keyID: key.id, resourceCRN: CRN.bucket(account: "a", serviceInstance: "s", bucket: "b"),
                                          context: context)
            let disabled = try await writer.disable(key.id, context: context)
            let first = await withTaskGroup(of: String?.self) { group in
                group.addTask { var iterator = delivered.makeAsyncIterator(); return await iterator.next() }
                group.addTask { try? await Task.sleep(for: .seconds(15)); return nil }
                let first = await group.next() ?? nil
                group.cancelAll()
                return first
            }
            let event = try #require(try await writer.events(keyID: disabled.id, context: context).last)
            #expect(first == event.id, "the idle replica did not deliver within 15 s of the other's commit")
        }
    }

    @Test func twoReplicasSyncingOneKeyAtOnceAcceptOneAndRefuseTheOther() async throws {
        try await withScratch { scratch in
            let database = try await scratch.database()
            let clock = ManualClock()
            let location = try location(database)
            let first = try await KeyRelayEngine.open(location, masterKey: master, clock: clock)
            let second = try await KeyRelayEngine.open(location, masterKey: master, clock: clock)
            let key = try await first.createKey(KeySpec(name: "shared"), context: context)
            for round in 1...3 {
                async let a = failure { _ = try await first.sync(key.id, context: context) }
                async let b = failure { _ = try await second.sync(key.id, context: context) }
                let outcomes = await [a, b]
                let accepted = outcomes.filter { $0 == nil }.count
                let refused = outcomes.filter { ($0 as? KeyRelayError)?.code == .requestTooEarly }.count
                #expect(accepted == 1 && refused == 1, "round \(round): \(outcomes)")
                clock.advance(by: 3601)
            }
        }
    }
}

/// The error `body` throws, or nil when it returns.
private func failure(_ body: () async throws -> Void) async -> (any Error)? {
    do {
        try await body()
        return nil
    } catch {
        return error
    }
}

/// A subscriber that reports each delivered event's id on a stream.
private final class Recording: ServiceSubscriber {
    let continuation: AsyncStream<String>.Continuation
    init(_ continuation: AsyncStream<String>.Continuation) { self.continuation = continuation }
    func deliver(_ notification: ResourceNotification) async throws { continuation.yield(notification.event.id) }
}
