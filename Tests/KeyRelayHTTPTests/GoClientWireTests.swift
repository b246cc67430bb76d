import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeyRelay
import Testing
@testable import KeyRelayHTTP

/// Requests exactly as IBM's Go client (`keyprotect-go-client`) puts them on the wire (reference §6): no
/// `Content-Type`, only `accept: application/json`, JSON `null` bodies on the key actions, a PATCH body spelled
/// `{"KeyRingID": …}`, `search` with a trailing comma, and `X-Kms-Key-Ring` on every request (issue #13 item 8).
@Suite struct GoClientWireTests {
    /// One request with the Go client's headers and nothing else.
    static func goCall(_ h: Harness, _ method: HTTPRequest.Method, _ path: String, body: String? = nil,
                       ring: String? = nil) async throws -> Reply {
        var headers = HTTPFields()
        headers[.authorization] = "Bearer \(Tokens.manager)"
        headers[HTTPField.Name("bluemix-instance")!] = instanceA
        headers[HTTPField.Name("accept")!] = "application/json"
        if let ring { headers[HTTPField.Name("x-kms-key-ring")!] = ring }
        let response = try await h.client.execute(uri: path, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
        return Reply(status: response.status, headers: response.headers, text: String(buffer: response.body))
    }

    @Test func keyLifecycleAsTheGoClientSendsIt() async throws {
        try await Harness.run { h in
            #expect(try await Self.goCall(h, .post, "/api/v2/key_rings/go-ring", ring: "go-ring").status == .created)
            let create = #"{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1},"resources":[{"type":"application/vnd.ibm.kms.key+json","name":"go-key","extractable":false}]}"#
            let created = try await Self.goCall(h, .post, "/api/v2/keys", body: create, ring: "go-ring")
            #expect(created.status == .created, "\(created.text)")
            let id = try #require(created.first["id"] as? String)
            for action in ["rotate", "disable"] {
                let reply = try await Self.goCall(h, .post, "/api/v2/keys/\(id)/actions/\(action)", body: "null", ring: "go-ring")
                #expect(reply.status == .noContent, "\(action): \(reply.text)")
            }
            _ = try await h.advance("31s")
            #expect(try await Self.goCall(h, .post, "/api/v2/keys/\(id)/actions/enable", body: "null", ring: "go-ring").status == .noContent)
            let searched = try await Self.goCall(h, .get, "/api/v2/keys?search=go-key,", ring: "go-ring")
            #expect(searched.status == .ok && searched.resources.count == 1, "\(searched.text)")
            #expect(try await Self.goCall(h, .post, "/api/v2/key_rings/other-ring", ring: "go-ring").status == .created)
            let moved = try await Self.goCall(h, .patch, "/api/v2/keys/\(id)", body: #"{"KeyRingID":"other-ring"}"#, ring: "go-ring")
            #expect(moved.status == .ok && moved.first["keyRingID"] as? String == "other-ring", "\(moved.text)")
            #expect(try await Self.goCall(h, .get, "/api/v2/key_rings", ring: "other-ring").status == .ok)
            #expect(try await Self.goCall(h, .get, "/api/v2/instance/policies", ring: "other-ring").status == .ok)
            let policy = #"{"metadata":{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":1},"resources":[{"policy_type":"dualAuthDelete","policy_data":{"enabled":false}}]}"#
            #expect(try await Self.goCall(h, .put, "/api/v2/instance/policies?policy=dualAuthDelete", body: policy, ring: "other-ring").status == .noContent)
            let dual = try await h.call(.post, "/api/v2/keys_with_policy_overrides",
                                        json: Harness.keyBody("go-dual", extra: ["dualAuthDelete": ["enabled": true]]))
            let dualID = try #require(dual.first["id"] as? String)
            for action in ["setKeyForDeletion", "unsetKeyForDeletion"] {
                let reply = try await Self.goCall(h, .post, "/api/v2/keys/\(dualID)/actions/\(action)", body: "null", ring: "default")
                #expect(reply.status == .noContent, "\(action): \(reply.text)")
            }
            #expect(try await Self.goCall(h, .delete, "/api/v2/keys/\(id)", ring: "other-ring").status == .ok)
        }
    }

    @Test func unsupportedRequestsAnswer501() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("deactivate")["id"] as? String)
            let deactivate = try await Self.goCall(h, .post, "/api/v2/keys/\(id)/registrations?action=deactivate", body: "null")
            #expect(deactivate.status.code == 501 && deactivate.code == "FEATURE_RESTRICTED_ERR", "\(deactivate.text)")
            // KMIP adapter management is served now (Routes+KMIP.swift): the Go client's list call gets a 200.
            #expect(try await Self.goCall(h, .get, "/api/v2/kmip_adapters").status.code == 200)
        }
    }
}
