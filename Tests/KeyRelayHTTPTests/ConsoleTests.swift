import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeyRelay
import Testing
@testable import KeyRelayHTTP

/// The web console's pages and its KeyRelay-extension endpoints (the browser test is `scripts/ui-test`).
@Suite struct ConsoleTests {
    @Test func pagesAreTheEmbeddedFilesWithAStrictPolicy() async throws {
        try await Harness.run { h in
            let root = try await h.call(.get, "/ui", token: nil, instance: nil)
            #expect(root.status == .found && root.header("Location") == "/ui/keys")
            let bodies = ["/ui/keys": "id=\"keys-table\"", "/ui/keys/k1/resources": "id=\"sync-button\"",
                          "/ui/keys/k1/events": "id=\"events-table\""]
            for (path, marker) in bodies {
                let page = try await h.call(.get, path, token: nil, instance: nil)
                #expect(page.status == .ok)
                #expect(page.contentType == "text/html; charset=utf-8")
                #expect(page.header("Cache-Control") == "no-store")
                let policy = try #require(page.header("Content-Security-Policy"))
                #expect(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'") && !policy.contains("unsafe"))
                #expect(page.header("X-Content-Type-Options") == "nosniff")
                // The layout around the page's own body, with every placeholder filled.
                #expect(page.text.contains("<script src=\"/ui/assets/console.js\" defer></script>"))
                #expect(page.text.contains("id=\"signin-form\"") && page.text.contains(marker))
                #expect(!page.text.contains("{{"))
            }
            let keysPage = try await h.call(.get, "/ui/keys", token: nil, instance: nil)
            #expect(keysPage.text.contains("data-page=\"keys\"") && keysPage.text.contains("aria-current=\"page\""))
            // Synchronize starts disabled: only the API's answer enables it.
            let resources = try await h.call(.get, "/ui/keys/k1/resources", token: nil, instance: nil)
            #expect(resources.text.contains("id=\"sync-button\" type=\"button\" aria-describedby=\"sync-help\" disabled"))
            // Nothing of the path enters a page (the script reads the key id from the location).
            let hostile = try await h.call(.get, "/ui/keys/%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E/resources", token: nil, instance: nil)
            #expect(hostile.status == .ok && !hostile.text.contains("alert(1)"))
        }
    }

    /// The console's endpoints sit behind the API's own authentication middleware and pass the request's
    /// `X-Kms-Key-Ring` to the engine: a key outside the ring, and a bad token, answer as the API does.
    @Test func consoleEndpointsAuthenticateAndScopeByKeyRingLikeTheAPI() async throws {
        try await Harness.run { h in
            #expect(try await h.call(.post, "/api/v2/key_rings/ring-1").status == .created)
            let outside = try #require(try await h.createKey("in-default")["id"] as? String)
            let inside = try #require(try await h.createKey("in-ring-1", headers: ["X-Kms-Key-Ring": "ring-1"])["id"] as? String)
            let ring = ["X-Kms-Key-Ring": "ring-1"]
            let api = try await h.call(.get, "/api/v2/keys/\(outside)", headers: ring)
            #expect(api.code == "KEY_RING_MISMATCH_ERR")
            for path in ["/api/v2/_keyrelay/keys/\(outside)/associations", "/api/v2/_keyrelay/keys/\(outside)/events"] {
                let console = try await h.call(.get, path, headers: ring)
                #expect(console.status == api.status, "\(path): \(console.text)")
                #expect(console.code == api.code, "\(path)")
                #expect(console.reason["message"] as? String == api.reason["message"] as? String, "\(path)")
                #expect((console.reason["target"] as? [String: String]) == ["type": "header", "name": "X-Kms-Key-Ring"])
                #expect(try await h.call(.get, path, headers: ["X-Kms-Key-Ring": "default"]).status == .ok)
            }
            #expect(try await h.call(.get, "/api/v2/_keyrelay/keys/\(inside)/associations", headers: ring).status == .ok)
            // The overview lists the ring's keys only, as the key list does.
            for scope in [ring, ["X-Kms-Key-Ring": "default"], [:]] {
                let listed = try await h.call(.get, "/api/v2/keys", headers: scope).resources.compactMap { $0["id"] as? String }
                let overview = try await h.call(.get, "/api/v2/_keyrelay/keys/overview", headers: scope)
                #expect(overview.status == .ok)
                #expect(Set(overview.resources.compactMap { $0["keyId"] as? String }) == Set(listed), "\(scope)")
            }
            #expect(try await h.call(.get, "/api/v2/_keyrelay/keys/overview", headers: ring).resources.count == 1)
            // A bad token, or none: the API's 401 body.
            let denied = try await h.call(.get, "/api/v2/keys/\(outside)", token: "not-a-token-not-a-token")
            #expect(denied.status == .unauthorized)
            for path in ["/api/v2/_keyrelay/keys/overview", "/api/v2/_keyrelay/keys/\(outside)/associations",
                         "/api/v2/_keyrelay/keys/\(outside)/events", "/api/v2/_dev/bus?service=cloud-object-storage"] {
                for token in ["not-a-token-not-a-token", nil] {
                    let console = try await h.call(.get, path, token: token)
                    #expect(console.status == .unauthorized, "\(path)")
                    #expect(console.text == denied.text && console.contentType == denied.contentType, "\(path): \(console.text)")
                }
            }
        }
    }

    @Test func assetsAreServedByFileMiddlewareWithTypesAndRevalidation() async throws {
        try await Harness.run { h in
            let script = try await h.call(.get, "/ui/assets/console.js", token: nil, instance: nil)
            #expect(script.status == .ok && script.contentType == "text/javascript; charset=utf-8")
            #expect(script.header("Cache-Control") == "no-cache")
            #expect(script.header("Content-Security-Policy") != nil)
            #expect(script.text.contains("sessionStorage") && !script.text.contains(".innerHTML"))
            // No copy of a rule: the allowed actions and the sync time come from the API.
            #expect(script.text.contains("availability(key,") && !script.text.contains("key.state === 1"))
            #expect(!script.text.contains("earliestFrom") && !script.text.contains("\\d{4}-"))
            let etag = try #require(script.header("ETag"))
            let again = try await h.call(.get, "/ui/assets/console.js", token: nil, instance: nil, headers: ["If-None-Match": etag])
            #expect(again.status == .notModified && again.text.isEmpty)
            let style = try await h.call(.get, "/ui/assets/console.css", token: nil, instance: nil)
            #expect(style.status == .ok && style.contentType == "text/css; charset=utf-8")
            #expect(style.text.contains(".badge.drift"))
            // Only the script and the stylesheet are assets; the page bodies are not served raw.
            #expect(try await h.call(.get, "/ui/assets/keys.html", token: nil, instance: nil).status == .notFound)
            #expect(try await h.call(.get, "/ui/assets/nothing.js", token: nil, instance: nil).status == .notFound)
        }
    }

    @Test func extensionEndpointsKeepTheAccessRules() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("guarded")["id"] as? String)
            let paths = ["/api/v2/_keyrelay/keys/overview", "/api/v2/_keyrelay/keys/\(id)/associations",
                         "/api/v2/_keyrelay/keys/\(id)/events"]
            for path in paths {
                #expect(try await h.call(.get, path, token: nil).status == .unauthorized)
                #expect(try await h.call(.get, path, token: "not-a-token-at-all").status == .unauthorized)
                #expect(try await h.call(.get, path, token: Tokens.otherInstance, instance: instanceA).status == .unauthorized)
                #expect(try await h.call(.get, path, instance: nil).status == .badRequest)
                // Reader is enough.
                #expect(try await h.call(.get, path, token: Tokens.reader).status == .ok)
            }
            // A token of another instance sees none of this instance's keys on its own.
            for path in paths.dropFirst() {
                #expect(try await h.call(.get, path, token: Tokens.otherInstance, instance: instanceB).code == "KEY_NOT_FOUND_ERR")
            }
            let other = try await h.call(.get, paths[0], token: Tokens.otherInstance, instance: instanceB)
            #expect(other.status == .ok && other.resources.isEmpty && other.metadata["totalCount"] as? Int == 0)
            // Every number a caller sends is bounded, with Key Protect's error.
            for query in ["limit=0", "limit=1001", "limit=99999999999999999999", "offset=-1", "state=4", "destroyedWithDrift=yes"] {
                let reply = try await h.call(.get, "/api/v2/_keyrelay/keys/overview?\(query)")
                #expect(reply.status == .badRequest && reply.code == "INVALID_QUERY_PARAM_ERR", "\(query): \(reply.text)")
            }
            for query in ["limit=0", "limit=1001", "offset=-1"] {
                #expect(try await h.call(.get, "/api/v2/_keyrelay/keys/\(id)/events?\(query)").code == "INVALID_QUERY_PARAM_ERR")
            }
            #expect(try await h.call(.get, "/api/v2/_keyrelay/keys/\(id)/associations?limit=5001").code == "INVALID_QUERY_PARAM_ERR")
        }
    }

    @Test func theOverviewListsKeysWithWhatEachAcceptsNow() async throws {
        try await Harness.run { h in
            let root = try #require(try await h.createKey("root-one")["id"] as? String)
            let standard = try #require(try await h.createKey("standard-one", extractable: true)["id"] as? String)
            #expect(try await h.register(root, bucket: "b1").status == .created)
            #expect(try await h.register(root, bucket: "b2", prevent: true).status == .created)
            #expect(try await h.call(.post, "/api/v2/keys/\(standard)/actions/disable").status == .noContent)

            let page = try await h.call(.get, "/api/v2/_keyrelay/keys/overview?limit=10")
            #expect(page.metadata["totalCount"] as? Int == 2 && page.metadata["now"] is String)
            let byID = Dictionary(uniqueKeysWithValues: page.resources.map { ($0["keyId"] as? String ?? "", $0) })
            let rootRow = try #require(byID[root])
            #expect(rootRow["registrations"] as? Int == 2 && rootRow["preventingDeletion"] as? Int == 1 && rootRow["drifted"] as? Int == 0)
            func actions(_ row: [String: Any]) -> [String: [String: Any]] {
                let list = ((row["key"] as? [String: Any])?["actions"] as? [[String: Any]]) ?? []
                return Dictionary(uniqueKeysWithValues: list.map { ($0["action"] as? String ?? "", $0) })
            }
            // A registration with preventKeyDeletion: delete is not offered at all.
            #expect(Set(actions(rootRow).keys) == ["rotate", "disable", "sync"])
            // Just disabled: enable comes 30 s after, sync an hour after (each with its time, from the rules).
            let standardActions = actions(try #require(byID[standard]))
            #expect(Set(standardActions.keys) == ["enable", "delete", "sync"])
            #expect(standardActions["enable"]?["allowedFrom"] as? String == "2026-01-01T00:00:30Z")
            #expect(standardActions["sync"]?["allowedFrom"] as? String == "2026-01-01T01:00:01Z")
            #expect(standardActions["delete"]?["allowedFrom"] == nil)
            let standardKey = try #require(byID[standard]?["key"] as? [String: Any])
            #expect(standardKey["syncAllowedFrom"] as? String == "2026-01-01T01:00:01Z" && standardKey["state"] as? Int == 2)

            // Paging: one row per page, the same total.
            let second = try await h.call(.get, "/api/v2/_keyrelay/keys/overview?limit=1&offset=1")
            #expect(second.resources.count == 1 && second.metadata["totalCount"] as? Int == 2)
        }
    }

    @Test func aForceDeletedKeyWithDriftStaysInTheNotDeletedView() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("protector")["id"] as? String)
            let quiet = try #require(try await h.createKey("unused")["id"] as? String)
            #expect(try await h.register(id, bucket: "seed").status == .created)
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)?force=true").status == .ok)
            #expect(try await h.call(.delete, "/api/v2/keys/\(quiet)").status == .ok)

            let notDeleted = "/api/v2/_keyrelay/keys/overview?state=0,1,2,3&destroyedWithDrift=true"
            var view = try await h.call(.get, notDeleted)
            // The drifted deleted key stays, with its badge's numbers; the deleted key nobody uses does not.
            #expect(view.resources.map { $0["keyId"] as? String } == [id])
            #expect(view.first["drifted"] as? Int == 1 && view.first["driftSince"] as? String == "2026-01-01T00:00:00Z")
            #expect(view.metadata["totalCount"] as? Int == 1)
            // Without the flag, Key Protect's own filter.
            #expect(try await h.call(.get, "/api/v2/_keyrelay/keys/overview?state=0,1,2,3").resources.isEmpty)

            // COS acknowledges the delete: the key leaves the view with its drift.
            let delete = try #require(try await h.engine.events(keyID: id).last)
            let ack: [String: Any] = ["eventId": delete.id, "adopterKeyState": "DEK_DELETED", "timestamp": "2026-01-01T00:00:05Z",
                                      "resourceCrn": Harness.bucketCRN("seed")]
            #expect(try await h.call(.post, "/api/v2/event_ack", json: Harness.envelope(MediaTypes.eventAcknowledge, [ack]),
                                     token: Tokens.service).status == .noContent)
            view = try await h.call(.get, notDeleted)
            #expect(view.resources.isEmpty)
        }
    }

    @Test func theSyncTimeComesFromTheEngineOnArrivalAndAfterAnAcceptedSync() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("protector")["id"] as? String)
            #expect(try await h.register(id, bucket: "seed").status == .created)
            // A new key: sync is accepted now (creation does not start the cooldown).
            var key = try #require(try await h.call(.get, "/api/v2/_keyrelay/keys/\(id)/associations").json["key"] as? [String: Any])
            #expect(key["syncAllowedFrom"] == nil)

            #expect(try await h.call(.delete, "/api/v2/keys/\(id)?force=true").status == .ok)
            _ = try await h.advance("10m")
            // On arrival after the delete: the first accepted instant, an hour and a second after it.
            key = try #require(try await h.call(.get, "/api/v2/_keyrelay/keys/\(id)/associations").json["key"] as? [String: Any])
            #expect(key["syncAllowedFrom"] as? String == "2026-01-01T01:00:01Z")
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/sync").code == "REQ_TOO_EARLY_ERR")

            _ = try await h.advance("4h")
            key = try #require(try await h.call(.get, "/api/v2/_keyrelay/keys/\(id)/associations").json["key"] as? [String: Any])
            #expect(key["syncAllowedFrom"] == nil)
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/sync").status == .noContent)
            // After the accepted sync (at 04:10): the next one an hour and a second later.
            key = try #require(try await h.call(.get, "/api/v2/_keyrelay/keys/\(id)/associations").json["key"] as? [String: Any])
            #expect(key["syncAllowedFrom"] as? String == "2026-01-01T05:10:01Z" && key["lastSyncDate"] as? String == "2026-01-01T04:10:00Z")
        }
    }

    @Test func driftAppearsOnDeleteAndClearsWhenAcknowledged() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("protector")["id"] as? String)
            #expect(try await h.register(id, bucket: "seed").status == .created)
            var associations = try await h.call(.get, "/api/v2/_keyrelay/keys/\(id)/associations")
            #expect(associations.metadata["drifted"] as? Int == 0 && associations.metadata["totalCount"] as? Int == 1)

            #expect(try await h.call(.delete, "/api/v2/keys/\(id)?force=true").status == .ok)
            associations = try await h.call(.get, "/api/v2/_keyrelay/keys/\(id)/associations")
            var key = try #require(associations.json["key"] as? [String: Any])
            #expect(key["state"] as? Int == 5 && key["expectedAdopterKeyState"] as? String == "DEK_DELETED")
            #expect(associations.metadata["drifted"] as? Int == 1 && associations.metadata["now"] is String)
            var row = associations.first
            #expect(row["resourceCrn"] as? String == Harness.bucketCRN("seed"))
            #expect(row["service"] as? String == "cloud-object-storage" && row["preventKeyDeletion"] as? Bool == false)
            #expect(row["drifted"] as? Bool == true && row["expectedAdopterKeyState"] as? String == "DEK_DELETED")
            #expect(row["acknowledgement"] == nil && row["driftSince"] is String)
            #expect((associations.json["deliveries"] as? [String: Int])?["pending"] == 1)

            _ = try await h.advance("4h")
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/sync").status == .noContent)
            associations = try await h.call(.get, "/api/v2/_keyrelay/keys/\(id)/associations")
            key = try #require(associations.json["key"] as? [String: Any])
            #expect(key["syncAllowedFrom"] is String && key["lastSyncDate"] is String)

            // COS acknowledges the sync: the drift is gone.
            let sync = try #require(try await h.engine.events(keyID: id).last)
            #expect(sync.kind == .sync)
            let ack: [String: Any] = ["eventId": sync.id, "adopterKeyState": "DEK_DELETED", "timestamp": "2026-01-01T00:00:05Z",
                                      "resourceCrn": Harness.bucketCRN("seed")]
            #expect(try await h.call(.post, "/api/v2/event_ack", json: Harness.envelope(MediaTypes.eventAcknowledge, [ack]),
                                     token: Tokens.service).status == .noContent)
            associations = try await h.call(.get, "/api/v2/_keyrelay/keys/\(id)/associations")
            row = associations.first
            #expect(associations.metadata["drifted"] as? Int == 0 && row["drifted"] as? Bool == false)
            let acknowledgement = try #require(row["acknowledgement"] as? [String: Any])
            #expect(acknowledgement["adopterKeyState"] as? String == "DEK_DELETED" && acknowledgement["eventId"] as? String == sync.id)

            // The events, newest first, each with its delivery.
            let events = try await h.call(.get, "/api/v2/_keyrelay/keys/\(id)/events")
            #expect(events.resources.map { $0["kind"] as? String } == ["sync", "delete", "create"])
            #expect(events.metadata["totalCount"] as? Int == 3)
            let newest = try #require(events.resources.first)
            let deliveries = try #require(newest["deliveries"] as? [[String: Any]])
            #expect(deliveries.count == 1 && deliveries.first?["status"] as? String == "acknowledged")
            #expect((newest["counts"] as? [String: Int])?["acknowledged"] == 1)
            let paged = try await h.call(.get, "/api/v2/_keyrelay/keys/\(id)/events?limit=1&offset=1")
            #expect(paged.resources.map { $0["kind"] as? String } == ["delete"])
            #expect(paged.metadata["totalCount"] as? Int == 3 && paged.metadata["collectionTotal"] as? Int == 1)
        }
    }

    @Test func devBusFaultsOnlyOnTheDevClock() async throws {
        try await Harness.run { h in
            let set = try await h.call(.post, "/api/v2/_dev/bus", json: ["service": "cloud-object-storage", "dropNext": 1], instance: nil)
            #expect(set.status == .ok && set.json["dropNext"] as? Int == 1)
            let read = try await h.call(.get, "/api/v2/_dev/bus?service=cloud-object-storage", instance: nil)
            #expect(read.json["dropNext"] as? Int == 1 && read.json["partitioned"] as? Bool == false)
            let delayed = try await h.call(.post, "/api/v2/_dev/bus", json: ["service": "cloud-object-storage", "delay": "30s"], instance: nil)
            #expect(delayed.json["delay"] as? String == "30s" && delayed.json["dropNext"] as? Int == 1)
            let cleared = try await h.call(.post, "/api/v2/_dev/bus", json: ["service": "cloud-object-storage", "clear": true], instance: nil)
            #expect(cleared.json["dropNext"] as? Int == 0 && cleared.json["delay"] == nil)
            for bad in [["dropNext": -1], ["dropNext": 10_001], ["delay": "1y"], ["delay": "soon"]] as [[String: Any]] {
                var body = bad
                body["service"] = "cloud-object-storage"
                #expect(try await h.call(.post, "/api/v2/_dev/bus", json: body, instance: nil).code == "INVALID_FIELD_ERR", "\(bad)")
            }
            // Typed decoding: a number is not a boolean, nor a boolean a count.
            #expect(try await h.call(.post, "/api/v2/_dev/bus", json: ["service": "cloud-object-storage", "partition": 1],
                                     instance: nil).code == "BAD_BODY_ERR")
            #expect(try await h.call(.post, "/api/v2/_dev/bus", json: ["service": "cloud-object-storage", "dropNext": true],
                                     instance: nil).code == "BAD_BODY_ERR")
            #expect(try await h.call(.post, "/api/v2/_dev/bus", json: ["dropNext": 1], instance: nil).code == "INVALID_FIELD_ERR")
            #expect(try await h.call(.post, "/api/v2/_dev/bus", raw: "", instance: nil).code == "NO_BODY_ERR")
            #expect(try await h.call(.post, "/api/v2/_dev/bus", json: ["service": "cloud-object-storage", "dropNext": 1],
                                     token: Tokens.reader, instance: nil).status == .unauthorized)
        }
        try await Harness.run(devClock: false) { h in
            let absent = try await h.call(.post, "/api/v2/_dev/bus", json: ["service": "cloud-object-storage", "dropNext": 1], instance: nil)
            #expect(absent.status == .notFound)
        }
    }
}
