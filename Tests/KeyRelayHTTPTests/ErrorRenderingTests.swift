import Foundation
import HTTPTypes
import Hummingbird
import KeyRelay
@testable import KeyRelayHTTP
import Testing

/// Every error path answers Key Protect's envelope, rendered by `KeyRelayError` itself.
@Suite struct ErrorRenderingTests {
    @Test func errorMsgFollowsKeyProtectsForm() {
        let error = KeyRelayError(.keyNotFound, "Key does not exist", operation: "Key could not be retrieved")
        #expect(error.errorMsg == "Not Found: Key could not be retrieved: Please see 'reasons' for more details (KEY_NOT_FOUND_ERR)")
        for code in ReasonCode.allCases { #expect(HTTPStatusPhrase.phrase(for: code.status) != "Error") }
        let kmip = KeyRelayError(.featureRestricted, "no KMIP", operation: "KMIP request could not be processed", status: 501)
        #expect(kmip.errorMsg.hasPrefix("Not Implemented: "))
        #expect(kmip.status == .notImplemented)
    }

    @Test func aBodyOverTheLimitIs413WithTheEnvelope() async throws {
        try await Harness.run { h in
            let name = String(repeating: "x", count: 3 * 1024 * 1024)
            let reply = try await h.call(.post, "/api/v2/keys", raw: #"{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1},"resources":[{"name":"\#(name)"}]}"#)
            #expect(reply.status == .contentTooLarge)
            #expect(reply.metadata["collectionType"] as? String == MediaTypes.error)
            #expect(reply.code == "BAD_BODY_ERR")
            #expect(reply.reason["status"] as? Int == 413)
            #expect(reply.first["errorMsg"] as? String == "Content Too Large: Key could not be created: Please see 'reasons' for more details (BAD_BODY_ERR)")
            #expect(reply.contentType == "application/json")
        }
    }

    @Test func aJSONNumberIsNotABooleanAndNullIsNoBody() async throws {
        try await Harness.run { h in
            let numeric = try await h.call(.post, "/api/v2/keys", json: Harness.keyBody("numeric", extra: ["extractable": 1]))
            #expect(numeric.status == .badRequest && numeric.code == "INVALID_FIELD_ERR")
            #expect(numeric.reason["message"] as? String == "The field 'extractable' must be: a boolean")
            #expect((numeric.reason["target"] as? [String: String]) == ["type": "field", "name": "extractable"])
            let nested = try await h.call(.post, "/api/v2/keys_with_policy_overrides",
                                          json: Harness.keyBody("nested", extra: ["rotation": ["enabled": true, "interval_month": "three"]]))
            #expect(nested.reason["message"] as? String == "The field 'rotation.interval_month' must be: an integer")
            let aad = try await h.call(.post, "/api/v2/keys/any/actions/wrap", json: ["aad": ["ok", 2]])
            #expect(aad.reason["message"] as? String == "The field 'aad' must be: an array of strings")
            let missing = try await h.call(.post, "/api/v2/keys", json: Harness.envelope(MediaTypes.key, [["type": MediaTypes.key]]))
            #expect(missing.reason["message"] as? String == "The field 'name' must be: a string (it is required)")
            let notJSON = try await h.call(.post, "/api/v2/keys", raw: "{not json")
            #expect(notJSON.code == "BAD_BODY_ERR")
            // IBM's Go client sends a JSON `null` body on rotate: that is no body.
            let id = try #require(try await h.createKey("go-rotated")["id"] as? String)
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/rotate", raw: "null").status == .noContent)
        }
    }

    @Test func theKeyRingScopeIsTheEnginesAndItsTargetIsTheHeader() async throws {
        try await Harness.run { h in
            #expect(try await h.call(.post, "/api/v2/key_rings/ring-1").status == .created)
            let id = try #require(try await h.createKey("ringed", headers: ["X-Kms-Key-Ring": "ring-1"])["id"] as? String)
            let wrap = try await h.call(.post, "/api/v2/keys/\(id)/actions/wrap", headers: ["X-Kms-Key-Ring": "default"])
            #expect(wrap.code == "KEY_RING_MISMATCH_ERR")
            #expect((wrap.reason["target"] as? [String: String]) == ["type": "header", "name": "X-Kms-Key-Ring"])
            let listed = try await h.call(.get, "/api/v2/keys", headers: ["X-Kms-Key-Ring": "ring-1"])
            #expect(listed.resources.compactMap { $0["id"] as? String } == [id])
        }
    }

    @Test func apiAnswersCarryHummingbirdsSecurityHeaders() async throws {
        try await Harness.run { h in
            let reply = try await h.call(.get, "/api/v2/keys")
            #expect(reply.status == .ok)
            #expect(reply.header("X-Content-Type-Options") == "nosniff")
            #expect(reply.header("Content-Security-Policy") == "default-src 'none'; frame-ancestors 'none'")
        }
    }

    @Test func anEarlyPurgeSaysWhenToRetry() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("purged")["id"] as? String)
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)").status == .ok)
            let early = try await h.call(.delete, "/api/v2/keys/\(id)/purge", token: Tokens.purger)
            #expect(early.code == "REQ_TOO_EARLY_ERR")
            #expect(early.header("Retry-After") == "14400")
        }
    }
}

/// The server failures the OpenAPI contract found (Tests/schemathesis/known-failures), each held by a test.
@Suite struct ContractFixesTests {
    @Test func aMinimalCreateAnswers201WithNoBodyAndNoContentType() async throws {
        try await Harness.run { h in
            for path in ["/api/v2/keys", "/api/v2/keys_with_policy_overrides"] {
                let reply = try await h.call(.post, path, json: Harness.keyBody("minimal"), headers: ["Prefer": "return=minimal"])
                #expect(reply.status == .created)
                #expect(reply.header("Content-Type") == nil)
            }
        }
    }

    @Test func instancePolicyAttributesMustBeAnObject() async throws {
        try await Harness.run { h in
            for attributes in [#""AAA""#, "null", "7", "true", "[1]"] {
                let body = #"{"metadata":{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":1},"resources":[{"policy_type":"metrics","policy_data":{"enabled":true,"attributes":\#(attributes)}}]}"#
                let reply = try await h.call(.put, "/api/v2/instance/policies", raw: body)
                #expect(reply.status == .badRequest, "attributes \(attributes)")
                #expect(reply.code == "INVALID_FIELD_ERR")
            }
            let object = #"{"metadata":{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":1},"resources":[{"policy_type":"metrics","policy_data":{"enabled":true,"attributes":{}}}]}"#
            #expect(try await h.call(.put, "/api/v2/instance/policies", raw: object).status == .noContent)
        }
    }

    @Test func theDevClockStopsAtTheEndOfRFC3339() async throws {
        try await Harness.run { h in
            #expect(try await h.call(.post, "/api/v2/_dev/clock", json: ["set": "9999-12-31T23:59:00Z"], instance: nil).status == .ok)
            let past = try await h.advance("2h")
            #expect(past.status == .badRequest)
            #expect(past.code == "INVALID_FIELD_ERR")
            #expect(try await h.advance("30s").status == .ok)
        }
    }
}
