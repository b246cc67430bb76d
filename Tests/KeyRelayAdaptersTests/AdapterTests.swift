import Foundation
import KeyRelay
import KeyRelayAdapters
import KeyRelayBus
import Testing

/// An engine on a manual clock, a bus and dispatcher, and the two simulated services subscribed.
struct World {
    let clock = ManualClock()
    let engine: KeyRelayEngine
    let bus = ServiceBus()
    let dispatcher: Dispatcher
    let ops = RequestContext(instanceID: "instance-1", principal: "operator")
    let cos: ObjectStorageService
    let databases: DatabasesService

    init(seed: UInt64 = 1) async throws {
        engine = try await KeyRelayEngine.inMemory(clock: clock, ids: SeededIdentifiers(seed: seed))
        dispatcher = engine.makeDispatcher(bus: bus, seed: seed)
        let client = engine.adopterClient(instanceID: ops.instanceID, principal: "iam-ServiceId-cos")
        cos = ObjectStorageService(client: client, clock: clock, account: "acct")
        databases = DatabasesService(client: client, clock: clock, account: "acct")
        cos.subscribe(to: bus)
        databases.subscribe(to: bus)
    }

    func rootKey() async throws -> Key { try await engine.createKey(KeySpec(name: "bucket-root-key"), context: ops) }
}

func isDenied(_ reason: AccessDenial, _ body: () async throws -> Data) async -> Bool {
    do {
        _ = try await body()
        return false
    } catch let error as ServiceAccessError {
        if case .accessDenied(_, let actual) = error { return actual == reason }
        return false
    } catch {
        return false
    }
}

@Suite("Simulated services")
struct AdapterTests {
    let secret = Data("quarterly invoices".utf8)

    @Test func theStory() async throws {
        let w = try await World()
        let key = try await w.rootKey()
        try await w.cos.createBucket("invoices", keyID: key.id)
        try await w.cos.putObject(bucket: "invoices", key: "q1.pdf", data: secret)
        w.bus.dropNext(1, for: ServiceTopic.objectStorage)
        try await w.engine.delete(key.id, force: true, context: w.ops)
        try await w.dispatcher.advance(w.clock, by: 4 * 3600)
        // COS never heard of the deletion: the bucket is still readable.
        #expect(try await w.cos.getObject(bucket: "invoices", key: "q1.pdf") == secret)
        #expect(try await w.engine.drift(context: w.ops).map(\.expected) == [.deleted])
        let receipt = try await w.engine.sync(key.id, context: w.ops)
        #expect(receipt.notifications == 1)
        try await w.dispatcher.drain()
        #expect(await isDenied(.keyDeleted) { try await w.cos.getObject(bucket: "invoices", key: "q1.pdf") })
        #expect(try await w.cos.status(ofBucket: "invoices").access == .denied(.keyDeleted))
        #expect(try await w.engine.drift(context: w.ops).isEmpty)
        do {
            try await w.engine.sync(key.id, context: w.ops)
            Issue.record("a second sync within the hour must be refused")
        } catch let error as KeyRelayError {
            #expect(error.code == .requestTooEarly)
            #expect(error.status == 409)
        }
        try await w.dispatcher.advance(w.clock, by: DurationText.parse("1h 1s")!)
        #expect(try await w.engine.sync(key.id, context: w.ops).notifications == 1)
    }

    @Test func accessWithoutDEKIsDeniedAndWritesTooAfterDelete() async throws {
        let w = try await World()
        let key = try await w.rootKey()
        try await w.cos.createBucket("b", keyID: key.id)
        try await w.engine.delete(key.id, force: true, context: w.ops)
        try await w.dispatcher.drain()
        do {
            try await w.cos.putObject(bucket: "b", key: "x", data: secret)
            Issue.record("write after shred must be denied")
        } catch let error as ServiceAccessError {
            #expect(error == .accessDenied(resource: "b", reason: .keyDeleted))
        }
        let reg = try #require(try await w.engine.registrations(keyID: key.id, context: w.ops).items.first)
        #expect(reg.acknowledgement?.adopterKeyState == .deleted)
    }

    @Test func retentionBucketPreventsDeletion() async throws {
        let w = try await World()
        let key = try await w.rootKey()
        try await w.cos.createBucket("locked", keyID: key.id, retention: true)
        do {
            try await w.engine.delete(key.id, force: true, context: w.ops)
            Issue.record("a retention bucket must block deletion")
        } catch let error as KeyRelayError {
            #expect(error.code == .preventKeyDeletion)
        }
    }

    @Test func rotationRewrapsAndOldDataStaysReadable() async throws {
        let w = try await World()
        let key = try await w.rootKey()
        try await w.cos.createBucket("b", keyID: key.id)
        try await w.cos.putObject(bucket: "b", key: "before", data: secret)
        let before = try await w.cos.status(ofBucket: "b")
        let wrappedBefore = try await w.cos.core.wrappedDEK("b")
        let rotated = try await w.engine.rotate(key.id, context: w.ops)
        try await w.dispatcher.drain()
        let after = try await w.cos.status(ofBucket: "b")
        #expect(before.keyVersionID == key.currentVersion.id)
        #expect(after.keyVersionID == rotated.currentVersion.id)
        #expect(after.keyVersionID != before.keyVersionID)
        #expect(try await w.cos.core.wrappedDEK("b") != wrappedBefore)
        #expect(try await w.cos.getObject(bucket: "b", key: "before") == secret)
        let reg = try #require(try await w.engine.registrations(keyID: key.id, context: w.ops).items.first)
        #expect(reg.acknowledgement?.keyVersionID == rotated.currentVersion.id)
        #expect(try await w.engine.drift(context: w.ops).isEmpty)
    }

    @Test func disableThenEnable() async throws {
        let w = try await World()
        let key = try await w.rootKey()
        try await w.databases.createDeployment("orders", keyID: key.id)
        try await w.databases.insert(deployment: "orders", id: "1", record: secret)
        try await w.engine.disable(key.id, context: w.ops)
        try await w.dispatcher.drain()
        #expect(await isDenied(.keyDisabled) { try await w.databases.read(deployment: "orders", id: "1") })
        #expect(try await w.databases.status(ofDeployment: "orders").adopterKeyState == .disabled)
        try await w.dispatcher.advance(w.clock, by: 31)
        try await w.engine.enable(key.id, context: w.ops)
        try await w.dispatcher.drain()
        #expect(try await w.databases.read(deployment: "orders", id: "1") == secret)
        #expect(try await w.engine.drift(context: w.ops).isEmpty)
    }

    @Test func restoreBringsAccessBack() async throws {
        let w = try await World()
        let key = try await w.rootKey()
        try await w.cos.createBucket("b", keyID: key.id)
        try await w.cos.putObject(bucket: "b", key: "o", data: secret)
        try await w.engine.delete(key.id, force: true, context: w.ops)
        try await w.dispatcher.drain()
        #expect(await isDenied(.keyDeleted) { try await w.cos.getObject(bucket: "b", key: "o") })
        try await w.dispatcher.advance(w.clock, by: 31)
        try await w.engine.restore(key.id, context: w.ops)
        try await w.dispatcher.drain()
        #expect(try await w.cos.getObject(bucket: "b", key: "o") == secret)
        #expect(try await w.cos.status(ofBucket: "b").access == .allowed)
    }

    @Test func driftAppearsAndDisappears() async throws {
        let w = try await World()
        let key = try await w.rootKey()
        try await w.cos.createBucket("b", keyID: key.id)
        try await w.databases.createDeployment("d", keyID: key.id)
        #expect(try await w.engine.drift(context: w.ops).isEmpty)
        w.bus.failNext(100, for: ServiceTopic.postgreSQL)
        try await w.engine.disable(key.id, context: w.ops)
        try await w.dispatcher.drain()
        let drift = try await w.engine.drift(context: w.ops)
        #expect(drift.map(\.registration.resourceCRN) == [w.databases.crn(ofDeployment: "d")])
        #expect(drift.first?.expected == .disabled)
        try await w.dispatcher.advance(w.clock, by: 3 * 3600)   // retries run out: dead letter
        #expect(try await w.engine.deliveryCounts(keyID: key.id).dead == 1)
        w.bus.clearFaults(for: ServiceTopic.postgreSQL)
        try await w.engine.sync(key.id, context: w.ops)
        try await w.dispatcher.drain()
        #expect(try await w.engine.drift(context: w.ops).isEmpty)
        #expect(await isDenied(.keyDisabled) { try await w.databases.read(deployment: "d", id: "none") })
    }

    @Test func duplicatesAndStaleEventsChangeNothing() async throws {
        let w = try await World()
        let key = try await w.rootKey()
        try await w.cos.createBucket("b", keyID: key.id)
        try await w.cos.putObject(bucket: "b", key: "o", data: secret)
        w.bus.duplicateNext(1, for: ServiceTopic.objectStorage)
        try await w.engine.disable(key.id, context: w.ops)
        try await w.dispatcher.drain()
        let disabledStatus = try await w.cos.status(ofBucket: "b")
        #expect(await w.cos.core.receivedEventIDs.count == 2)
        #expect(disabledStatus.access == .denied(.keyDisabled))
        try await w.dispatcher.advance(w.clock, by: 31)
        try await w.engine.enable(key.id, context: w.ops)
        try await w.dispatcher.drain()
        // Re-deliver the old disable notification by hand: it is older than the enable, so ignored (but acked).
        let old = try #require(try await w.engine.notifications(keyID: key.id).first { $0.event.kind == .disable })
        try await w.cos.deliver(old)
        #expect(try await w.cos.getObject(bucket: "b", key: "o") == secret)
        #expect(try await w.cos.status(ofBucket: "b").adopterKeyState == .enabled)
        #expect(try await w.engine.drift(context: w.ops).isEmpty)
    }

    /// A long-running service keeps what it needs, not a record of every event: the applied events of a resource
    /// are those of its newest key sequence, and the received log keeps the most recent `receivedLogLimit` ids.
    @Test func whatAServiceKeepsDoesNotGrowWithEveryEvent() async throws {
        let w = try await World()
        let key = try await w.rootKey()
        try await w.cos.createBucket("b", keyID: key.id)
        for _ in 0..<4 {
            try await w.engine.disable(key.id, context: w.ops)
            try await w.dispatcher.advance(w.clock, by: 31)
            try await w.engine.enable(key.id, context: w.ops)
            try await w.dispatcher.advance(w.clock, by: 31)
        }
        try await w.dispatcher.drain()
        let applied = await w.cos.core.snapshot().resources.map(\.appliedEventIDs)
        let newest = try #require(try await w.engine.events(keyID: key.id).last)
        #expect(applied == [[newest.id]])
        // Older events are still recognised as stale: re-delivered, each changes nothing.
        let old = try #require(try await w.engine.notifications(keyID: key.id).first { $0.event.kind == .disable })
        let limit = ProtectedResourceService.receivedLogLimit
        for _ in 0..<(2 * limit + 5) { try await w.cos.deliver(old) }
        #expect(try await w.cos.status(ofBucket: "b").adopterKeyState == .enabled)
        let received = await w.cos.core.receivedEventIDs
        #expect(received.count == limit)
        #expect(received.last == old.event.id)
    }

    @Test func unknownBucketAndItem() async throws {
        let w = try await World()
        let key = try await w.rootKey()
        try await w.cos.createBucket("b", keyID: key.id)
        await #expect(throws: ServiceAccessError.noSuchResource("nope")) { try await w.cos.getObject(bucket: "nope", key: "x") }
        await #expect(throws: ServiceAccessError.noSuchItem(resource: "b", item: "x")) { try await w.cos.getObject(bucket: "b", key: "x") }
        await #expect(throws: ServiceAccessError.resourceExists("b")) { try await w.cos.createBucket("b", keyID: key.id) }
    }
}
