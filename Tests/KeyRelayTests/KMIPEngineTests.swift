import Foundation
import KeyRelayCore
import KeyRelayStore
import Testing
@testable import KeyRelay

/// KMIP adapter management in the engine: persisted, isolated per instance, and the rules on keys and objects.
@Suite struct KMIPEngineTests {
    static let pem = """
        -----BEGIN CERTIFICATE-----
        MIIBnjCCAUOgAwIBAgIUea6pD1c3suLSoa8Nk6aGNp/AgrwwCgYIKoZIzj0EAwIw
        JDEiMCAGA1UEAwwZa2V5cmVsYXkta21pcC10ZXN0LWNsaWVudDAeFw0yNjEyMDEx
        MTMyMjVaFw0zNjExMjgxMTMyMjVaMCQxIjAgBgNVBAMMGWtleXJlbGF5LWttaXAt
        dGVzdC1jbGllbnQwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARgR/dVKEi9MGn+
        YwU8cIfJ1PY8QI6ChcOluP1me7RHXUU9dOygMcjTvDf0GuA+Y8hqpgOPx0hibPCC
        EF9/dWWXo1MwUTAdBgNVHQ4EFgQUiTHJ6sUPKYdbAXm84ejgCWQ8WzYwHwYDVR0j
        BBgwFoAUiTHJ6sUPKYdbAXm84ejgCWQ8WzYwDwYDVR0TAQH/BAUwAwEB/zAKBggq
        hkjOPQQDAgNJADBGAiEAsmkA3dXWsriG+trFfzfLE5LFbKMPuK1XQ0eef140eI0C
        IQCjBvg/cmGkP4D1weWh4+ce74QLqjG1YxvlvaCTAMoJQA==
        -----END CERTIFICATE-----
        """

    @Test func adaptersAndCertificatesOutliveTheEngineAndTakeTheInjectedIdsAndClock() async throws {
        let path = try temporaryPath()
        let (engine, clock) = try await makeEngine(path: path)
        let key = try await engine.createKey(KeySpec(name: "kmip-root"), context: alice)
        clock.advance(by: 60)
        let adapter = try await engine.createKMIPAdapter(KMIPAdapterSpec(name: "adapter", crkID: key.id), context: alice)
        #expect(adapter.createdAt == start.addingTimeInterval(60) && adapter.createdBy == "alice" && adapter.crkID == key.id)
        #expect(UUID(uuidString: adapter.id) != nil)
        let certificate = try await engine.addKMIPClientCertificate(Self.pem, name: "cert", adapter: "adapter", context: alice)

        let (reopened, _) = try await makeEngine(path: path)
        #expect(try await reopened.kmipAdapter(adapter.id, context: alice) == adapter)
        #expect(try await reopened.kmipClientCertificate("cert", adapter: adapter.id, context: alice) == certificate)
        // Another instance sees none of it.
        await expectError(.notFound) { _ = try await reopened.kmipAdapter(adapter.id, context: mallory) }
        #expect(try await reopened.kmipAdapters(context: mallory).total == 0)
    }

    @Test func aKeyUnderAnAdapterIsNeitherDeletedNorItsRingEmptied() async throws {
        let (engine, _) = try await makeEngine()
        try await engine.createKeyRing("ring-a", context: alice)
        let key = try await engine.createKey(KeySpec(name: "ringed", keyRingID: "ring-a"), context: alice)
        let adapter = try await engine.createKMIPAdapter(KMIPAdapterSpec(name: "adapter", crkID: key.id), context: alice)
        await expectError(.protectedResource) { _ = try await engine.delete(key.id, force: true, context: alice) }
        await expectError(.keyRingNotEmpty) { try await engine.deleteKeyRing("ring-a", force: true, context: alice) }
        // Scoped to the key's ring the adapter is reachable, scoped to another it is not.
        var scoped = alice
        scoped.keyRingID = "ring-a"
        #expect(try await engine.kmipAdapter("adapter", context: scoped).id == adapter.id)
        scoped.keyRingID = KeyRing.defaultID
        await expectError(.keyRingMismatch) { _ = try await engine.kmipAdapter("adapter", context: scoped) }
        #expect(try await engine.kmipAdapters(context: scoped).items.isEmpty)

        try await engine.deleteKMIPAdapter(adapter.id, context: alice)
        #expect(try await engine.delete(key.id, context: alice).state == .destroyed)
        try await engine.deleteKeyRing("ring-a", force: true, context: alice)
    }

    @Test func objectsFilterByStateAndDeletingDestroysThem() async throws {
        let (engine, clock) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "kmip-root"), context: alice)
        let adapter = try await engine.createKMIPAdapter(KMIPAdapterSpec(crkID: key.id), context: alice)
        #expect(adapter.name == adapter.id)
        // What a KMIP endpoint would write: one object in each state.
        let objects = KMIPObjectState.allCases.map {
            KMIPObject(id: "object-\($0.rawValue)", adapterID: adapter.id, state: $0, createdAt: start.addingTimeInterval(Double($0.rawValue)))
        }
        try await engine.storage.write { tx in for object in objects { try tx.saveKMIPObject(object) } }

        let listed = try await engine.kmipObjects(adapter: adapter.id, context: alice)
        #expect(listed.items.map(\.id) == ["object-1", "object-2", "object-3", "object-4"] && listed.total == 4)
        #expect(try await engine.kmipObjects(adapter: adapter.id, states: [.destroyed, .destroyedCompromised], context: alice).total == 2)
        #expect(try await engine.kmipObjects(adapter: adapter.id, states: [.active], limit: 1, context: alice).items.map(\.id) == ["object-2"])
        await expectError(.invalidQueryParam) { _ = try await engine.kmipObjects(adapter: adapter.id, limit: 5001, context: alice) }

        await expectError(.keyActionInvalidState) { try await engine.deleteKMIPObject("object-2", adapter: adapter.id, context: alice) }
        await expectError(.keyActionInvalidState) { try await engine.deleteKMIPObject("object-5", adapter: adapter.id, force: true, context: alice) }
        clock.advance(by: 30)
        let destroyed = try await engine.deleteKMIPObject("object-2", adapter: adapter.id, force: true, context: alice)
        #expect(destroyed.state == .destroyed && destroyed.destroyedAt == start.addingTimeInterval(30) && destroyed.destroyedBy == "alice")
        #expect(try await engine.kmipObject("object-2", adapter: adapter.id, context: alice) == destroyed)
        #expect(try await engine.kmipObjects(adapter: adapter.id, context: alice).total == 3)
        #expect(try await engine.deleteKMIPObject("object-4", adapter: adapter.id, context: alice).state == .destroyedCompromised)

        // The adapter takes its objects with it.
        try await engine.deleteKMIPAdapter(adapter.id, context: alice)
        let left = try await engine.storage.read { tx in try tx.countKMIPObjects(adapterID: adapter.id, states: Set(KMIPObjectState.allCases)) }
        #expect(left == 0)
    }

    @Test func certificatesMustBeOneUnexpiredPEMCertificate() async throws {
        let (engine, clock) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "kmip-root"), context: alice)
        let adapter = try await engine.createKMIPAdapter(KMIPAdapterSpec(name: "adapter", crkID: key.id), context: alice)
        for bad in ["", "garbage", Self.pem + "\n" + Self.pem, Self.pem.replacingOccurrences(of: "MIIB", with: "MIIC")] {
            await expectError(.invalidField) { _ = try await engine.addKMIPClientCertificate(bad, adapter: adapter.id, context: alice) }
        }
        clock.advance(by: 11 * 365 * 86_400)
        let expired = await expectError(.invalidField) { _ = try await engine.addKMIPClientCertificate(Self.pem, adapter: adapter.id, context: alice) }
        #expect(expired?.message.contains("expired") == true)
    }
}
