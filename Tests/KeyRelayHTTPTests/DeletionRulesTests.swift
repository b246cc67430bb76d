import Foundation
import HTTPTypes
import KeyRelay
import Testing
@testable import KeyRelayHTTP

/// Forced deletes, the order of Key Protect's delete and rotate refusals, who may delete, and the key states in
/// which registrations may change (issue #13 items 1 and 3).
@Suite struct DeletionRulesTests {
    @Test func aForcedDeleteEndsProtection() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("bucket-key")["id"] as? String)
            #expect(try await h.register(id, bucket: "seed").status == .created)
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)?force=true").status == .ok)
            _ = try await h.advance("31s")
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/restore").status == .created)
            // The registration is still listed (history), but it no longer protects the key.
            let listed = try await h.call(.get, "/api/v2/keys/\(id)/registrations")
            #expect(listed.resources.count == 1 && listed.first["resourceCrn"] as? String == Harness.bucketCRN("seed"))
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)").status == .ok)
            // Sync still reaches it.
            _ = try await h.advance("1h 1s")
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/sync").status == .noContent)
            let events = try await h.engine.events(keyID: id, context: KeyRelay.RequestContext(instanceID: instanceA, principal: "t"))
            let sync = try #require(events.last { $0.kind == .sync })
            let notifications = try await h.engine.notifications(keyID: id).filter { $0.event.id == sync.id }
            #expect(notifications.map(\.resourceCRN) == [Harness.bucketCRN("seed")])
        }
    }

    @Test func preventKeyDeletionEndsWithTheForcedDeleteUntilTheServiceRegistersAgain() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("retained-key")["id"] as? String)
            #expect(try await h.register(id, bucket: "plain").status == .created)
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)?force=true").status == .ok)
            _ = try await h.advance("31s")
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/restore").status == .created)
            // The service sets a retention policy on its ended registration (PATCH): that does not register again.
            let crn = Harness.encode(Harness.bucketCRN("plain"))
            let patched = try await h.call(.patch, "/api/v2/keys/\(id)/registrations/\(crn)",
                                           json: Harness.envelope(MediaTypes.registrationInput, [["preventKeyDeletion": true]]),
                                           token: Tokens.service)
            #expect(patched.status == .ok)
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)?force=true").status == .ok)
            _ = try await h.advance("31s")
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/restore").status == .created)
            // Registering again (create or replace) protects the key once more.
            #expect(try await h.register(id, bucket: "plain", prevent: true).status == .created)
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)").code == "PROTECTED_RESOURCE_ERR")
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)?force=true").code == "PREV_KEY_DEL_ERR")
        }
    }

    @Test func serviceCallersCannotDeleteKeys() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("owned")["id"] as? String)
            let refused = try await h.call(.delete, "/api/v2/keys/\(id)", token: Tokens.service)
            #expect(refused.status == .forbidden && refused.code == "RESOURCE_OWNER_ERR")
            // Other roles without Manager still get 401.
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)", token: Tokens.reader).status == .unauthorized)
            #expect(try await h.call(.get, "/api/v2/keys/\(id)").first["state"] as? Int == 1)
        }
    }

    @Test func rotateRefusesAStandardKeyBeforeLookingAtItsState() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("standard", extractable: true)["id"] as? String)
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/disable").status == .noContent)
            let refused = try await h.call(.post, "/api/v2/keys/\(id)/actions/rotate", json: [:])
            #expect(refused.status == .badRequest && refused.code == "KEY_ROOT_REQ_ERR")
        }
    }

    @Test func deleteChecksDualAuthorizationBeforeAlreadyDeleted() async throws {
        try await Harness.run { h in
            let created = try await h.call(.post, "/api/v2/keys_with_policy_overrides",
                                           json: Harness.keyBody("dual", extra: ["dualAuthDelete": ["enabled": true]]))
            let id = try #require(created.first["id"] as? String)
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/setKeyForDeletion", token: Tokens.otherManager).status == .noContent)
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)").status == .ok)
            // Deleted: the authorization was used up, and Key Protect checks it (1st) before "already deleted" (4th).
            let again = try await h.call(.delete, "/api/v2/keys/\(id)")
            #expect(again.status == .conflict && again.code == "AUTHORIZATIONS_NOT_MET")
        }
    }

    @Test func registrationsChangeOnlyInTheStatesKeyProtectAllows() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("states")["id"] as? String)
            #expect(try await h.register(id, bucket: "a").status == .created)
            #expect(try await h.register(id, bucket: "b").status == .created)
            let crnA = Harness.encode(Harness.bucketCRN("a"))
            let crnB = Harness.encode(Harness.bucketCRN("b"))
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/disable").status == .noContent)
            // Suspended: delete, get and list yes; create, replace, update no.
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)/registrations/\(crnA)", token: Tokens.service).status == .noContent)
            #expect(try await h.call(.get, "/api/v2/keys/\(id)/registrations").resources.count == 1)
            let update = try await h.call(.patch, "/api/v2/keys/\(id)/registrations/\(crnB)",
                                          json: Harness.envelope(MediaTypes.registrationInput, [["description": "x"]]), token: Tokens.service)
            #expect(update.status.code == 422 && update.code == "KEY_INVALID_STATE_ERR")
            // Destroyed: delete no (422); the registrations stay readable.
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)?force=true").status == .ok)
            let removal = try await h.call(.delete, "/api/v2/keys/\(id)/registrations/\(crnB)", token: Tokens.service)
            #expect(removal.status.code == 422 && removal.code == "KEY_INVALID_STATE_ERR")
            #expect(try await h.call(.get, "/api/v2/keys/\(id)/registrations").resources.count == 1)
        }
    }
}
