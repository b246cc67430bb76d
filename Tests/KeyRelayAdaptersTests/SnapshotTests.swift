import Foundation
import KeyRelay
import KeyRelayAdapters
import KeyRelayBus
import Testing

/// A service restored from its snapshot is the same service: the cached data key still serves (the failure sync
/// exists for survives a restart), and a notification applied afterwards still shreds it.
@Suite("Simulated service snapshots")
struct SnapshotTests {
    @Test func aRestoredServiceKeepsItsCachedDataKeyUntilANotificationReachesIt() async throws {
        let w = try await World()
        let key = try await w.rootKey()
        try await w.cos.createBucket("invoices", keyID: key.id)
        try await w.cos.putObject(bucket: "invoices", key: "q1.csv", data: Data("acme,42".utf8))
        _ = try await w.engine.delete(key.id, force: true, context: w.ops)   // not delivered yet

        let snapshot = try JSONDecoder().decode(ProtectedResourceService.Snapshot.self,
                                                from: try JSONEncoder().encode(await w.cos.core.snapshot()))
        let restored = ObjectStorageService(client: w.engine.adopterClient(instanceID: w.ops.instanceID), clock: w.clock, account: "acct")
        await restored.core.restore(snapshot)
        #expect(await restored.core.snapshot() == snapshot)
        #expect(try await restored.getObject(bucket: "invoices", key: "q1.csv") == Data("acme,42".utf8))

        restored.subscribe(to: w.bus)
        try await w.dispatcher.drain()
        #expect(await isDenied(.keyDeleted) { try await restored.getObject(bucket: "invoices", key: "q1.csv") })
        #expect(try await restored.status(ofBucket: "invoices").adopterKeyState == .deleted)
    }
}
