import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeyRelay
import Testing
@testable import KeyRelayHTTP

/// The web console's pages and its KeyRelay-extension endpoints (the browser test is `scripts/ui-test`).
@Suite struct ConsoleTests {
    @Test func pagesAndAssetsAreServedWithAStrictPolicy() async throws {
        try await Harness.run { h in
            let root = try await h.call(.get, "/ui", token: nil, instance: nil)
            #expect(root.status == .found && root.header("Location") == "/ui/keys")
            for path in ["/ui/keys", "/ui/keys/k1/resources", "/ui/keys/k1/events"] {
                let page = try await h.call(.get, path, token: nil, instance: nil)
                #expect(page.status == .ok)
                #expect(page.contentType == "text/html; charset=utf-8")
                #expect(page.header("Content-Security-Policy")?.contains("script-src 'self'") == true)
                #expect(page.text.contains("<script src=\"/ui/assets/console.js\" defer></script>"))
                #expect(page.text.contains("id=\"signin-form\""))
            }
            let keysPage = try await h.call(.get, "/ui/keys", token: nil, instance: nil)
            #expect(keysPage.text.contains("data-page=\"keys\"") && keysPage.text.contains("id=\"keys-table\""))
            // The key id of the path is decoded, then escaped by the template.
            let hostile = try await h.call(.get, "/ui/keys/%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E/resources", token: nil, instance: nil)
            #expect(!hostile.text.contains("<script>alert"))
            #expect(hostile.text.contains("data-key-id=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\""))
            let script = try await h.call(.get, "/ui/assets/console.js", token: nil, instance: nil)
            #expect(script.status == .ok && script.contentType == "text/javascript; charset=utf-8")
            #expect(script.text.contains("sessionStorage") && !script.text.contains(".innerHTML"))
            let style = try await h.call(.get, "/ui/assets/console.css", token: nil, instance: nil)
            #expect(style.status == .ok && style.contentType == "text/css; charset=utf-8")
        }
    }

    @Test func extensionEndpointsKeepTheAccessRules() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("guarded")["id"] as? String)
            let paths = ["/api/v2/_keyrelay/keys/overview?ids=\(id)", "/api/v2/_keyrelay/keys/\(id)/associations",
                         "/api/v2/_keyrelay/keys/\(id)/events"]
            for path in paths {
                #expect(try await h.call(.get, path, token: nil).status == .unauthorized)
                #expect(try await h.call(.get, path, token: "not-a-token-at-all").status == .unauthorized)
                // A token of another instance: refused on this instance, and this key does not exist on its own.
                #expect(try await h.call(.get, path, token: Tokens.otherInstance, instance: instanceA).status == .unauthorized)
                #expect(try await h.call(.get, path, token: Tokens.otherInstance, instance: instanceB).code == "KEY_NOT_FOUND_ERR")
                #expect(try await h.call(.get, path, instance: nil).status == .badRequest)
                // Reader is enough.
                #expect(try await h.call(.get, path, token: Tokens.reader).status == .ok)
            }
            let tooMany = (0...200).map { "k\($0)" }.joined(separator: ",")
            #expect(try await h.call(.get, "/api/v2/_keyrelay/keys/overview?ids=\(tooMany)").code == "INVALID_QUERY_PARAM_ERR")
        }
    }

    @Test func driftAppearsOnDeleteAndClearsWhenAcknowledged() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("protector")["id"] as? String)
            #expect(try await h.register(id, bucket: "seed").status == .created)
            var overview = try await h.call(.get, "/api/v2/_keyrelay/keys/overview?ids=\(id)").first
            #expect(overview["registrations"] as? Int == 1 && overview["drifted"] as? Int == 0 && overview["driftSince"] == nil)

            #expect(try await h.call(.delete, "/api/v2/keys/\(id)?force=true").status == .ok)
            overview = try await h.call(.get, "/api/v2/_keyrelay/keys/overview?ids=\(id)").first
            #expect(overview["drifted"] as? Int == 1 && overview["driftSince"] is String)

            var associations = try await h.call(.get, "/api/v2/_keyrelay/keys/\(id)/associations")
            var key = try #require(associations.json["key"] as? [String: Any])
            #expect(key["state"] as? Int == 5 && key["expectedAdopterKeyState"] as? String == "DEK_DELETED")
            #expect(key["syncAllowedFrom"] is String)   // within the hour after the delete
            #expect(associations.metadata["drifted"] as? Int == 1 && associations.metadata["now"] is String)
            var row = associations.first
            #expect(row["resourceCrn"] as? String == Harness.bucketCRN("seed"))
            #expect(row["service"] as? String == "cloud-object-storage" && row["preventKeyDeletion"] as? Bool == false)
            #expect(row["drifted"] as? Bool == true && row["expectedAdopterKeyState"] as? String == "DEK_DELETED")
            #expect(row["acknowledgement"] == nil && row["driftSince"] is String)

            _ = try await h.advance("4h")
            associations = try await h.call(.get, "/api/v2/_keyrelay/keys/\(id)/associations")
            key = try #require(associations.json["key"] as? [String: Any])
            #expect(key["syncAllowedFrom"] == nil)
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
            #expect(try await h.call(.get, "/api/v2/_keyrelay/keys/\(id)/events?limit=0").code == "INVALID_QUERY_PARAM_ERR")
        }
    }

    @Test func devBusFaultsOnlyOnTheDevClock() async throws {
        try await Harness.run { h in
            let set = try await h.call(.post, "/api/v2/_dev/bus", json: ["service": "cloud-object-storage", "dropNext": 1], instance: nil)
            #expect(set.status == .ok && set.json["dropNext"] as? Int == 1)
            let read = try await h.call(.get, "/api/v2/_dev/bus?service=cloud-object-storage", instance: nil)
            #expect(read.json["dropNext"] as? Int == 1 && read.json["partitioned"] as? Bool == false)
            let cleared = try await h.call(.post, "/api/v2/_dev/bus", json: ["service": "cloud-object-storage", "clear": true], instance: nil)
            #expect(cleared.json["dropNext"] as? Int == 0)
            #expect(try await h.call(.post, "/api/v2/_dev/bus", json: ["service": "cloud-object-storage", "dropNext": -1],
                                     instance: nil).code == "INVALID_FIELD_ERR")
            #expect(try await h.call(.post, "/api/v2/_dev/bus", json: ["service": "cloud-object-storage", "dropNext": 1],
                                     token: Tokens.reader, instance: nil).status == .unauthorized)
        }
        try await Harness.run(devClock: false) { h in
            let absent = try await h.call(.post, "/api/v2/_dev/bus", json: ["service": "cloud-object-storage", "dropNext": 1], instance: nil)
            #expect(absent.status == .notFound)
        }
    }
}
