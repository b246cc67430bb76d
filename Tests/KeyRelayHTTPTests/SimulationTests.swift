import Foundation
import HTTPTypes
import Hummingbird
import KeyRelay
import KeyRelayBus
import Testing
@testable import KeyRelayHTTP

@Suite("Simulated services inside the server")
struct SimulationTests {
    /// The story of DESIGN.md entirely over HTTP: the simulated COS really keeps serving after a lost delete
    /// notification, and really stops after a sync.
    @Test func theSeedStoryOverHTTP() async throws {
        try await Harness.run(simulation: true) { h in
            let key = try await h.createKey("bucket-root-key")
            let keyID = try #require(key["id"] as? String)
            let created = try await h.call(.post, "/api/v2/_sim/buckets", json: ["name": "invoices", "keyId": keyID])
            #expect(created.status == .created)
            #expect(created.json["access"] as? String == "allowed")
            #expect(try await h.call(.put, "/api/v2/_sim/buckets/invoices/objects/q1.csv", raw: "acme,42").status == .noContent)
            #expect(try await h.call(.get, "/api/v2/keys/\(keyID)/registrations").metadata["collectionTotal"] as? Int == 1)

            // COS's next notification is lost; the key is deleted (force: it protects the bucket).
            let bus = try #require((h.api.background as? DispatcherBackground)?.dispatcher.bus)
            bus.dropNext(1, for: ServiceTopic.objectStorage)
            #expect(try await h.call(.delete, "/api/v2/keys/\(keyID)?force=true").status == .ok)
            #expect(try await h.advance("4h").status == .ok)
            let stillReadable = try await h.call(.get, "/api/v2/_sim/buckets/invoices/objects/q1.csv")
            #expect(stillReadable.status == .ok)
            #expect(stillReadable.text == "acme,42")

            // Sync: accepted, delivered, the bucket is shredded.
            #expect(try await h.call(.post, "/api/v2/keys/\(keyID)/actions/sync").status == .noContent)
            #expect(try await h.advance("0s").status == .ok)
            let denied = try await h.call(.get, "/api/v2/_sim/buckets/invoices/objects/q1.csv")
            #expect(denied.status == .forbidden)
            #expect(try await h.call(.get, "/api/v2/_sim/buckets/invoices").json["adopterKeyState"] as? String == "DEK_DELETED")

            // Again within the hour: 409; after 1 h 1 s: 204.
            let refused = try await h.call(.post, "/api/v2/keys/\(keyID)/actions/sync")
            #expect(refused.status == .conflict)
            #expect(refused.code == "REQ_TOO_EARLY_ERR")
            #expect(try await h.advance("1h 1s").status == .ok)
            #expect(try await h.call(.post, "/api/v2/keys/\(keyID)/actions/sync").status == .noContent)
        }
    }

    @Test func simulatedResourcesStayInTheirInstanceAndNeedAToken() async throws {
        try await Harness.run(simulation: true) { h in
            let keyID = try #require(try await h.createKey("root")["id"] as? String)
            #expect(try await h.call(.post, "/api/v2/_sim/deployments", json: ["name": "orders-db", "keyId": keyID]).status == .created)
            #expect((try await h.call(.get, "/api/v2/_sim/deployments").json["resources"] as? [Any])?.count == 1)
            let other = try await h.call(.get, "/api/v2/_sim/deployments", token: Tokens.otherInstance, instance: instanceB)
            #expect((other.json["resources"] as? [Any])?.count == 0)
            // Another instance cannot put a bucket on this instance's key.
            let foreign = try await h.call(.post, "/api/v2/_sim/buckets", json: ["name": "x", "keyId": keyID],
                                           token: Tokens.otherInstance, instance: instanceB)
            #expect(foreign.status == .notFound)
            #expect(try await h.call(.get, "/api/v2/_sim/buckets", token: nil).status == .unauthorized)
            #expect(try await h.call(.post, "/api/v2/_sim/buckets", json: ["keyId": keyID]).code == "INVALID_FIELD_ERR")
        }
    }

    @Test func resourcesRegisteredByOutsideAdoptersAreLeftToTheirEventAck() async throws {
        try await Harness.run(simulation: true) { h in
            let keyID = try #require(try await h.createKey("outside")["id"] as? String)
            #expect(try await h.register(keyID, bucket: "theirs").status.code < 300)
            #expect(try await h.call(.post, "/api/v2/keys/\(keyID)/actions/disable").status == .noContent)
            #expect(try await h.advance("0s").status == .ok)
            // Handed over (sent), not failed: the outside adopter acknowledges when it is ready.
            let counts = try await h.engine.deliveryCounts(keyID: keyID)
            #expect(counts.sent == 1 && counts.pending == 0 && counts.dead == 0)
        }
    }
}
