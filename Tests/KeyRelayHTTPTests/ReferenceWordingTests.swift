import Foundation
import HTTPTypes
import KeyRelay
import Testing
@testable import KeyRelayHTTP

/// Every reason code whose wording Key Protect publishes answers with exactly that wording: the whole `message`,
/// and the whole `errorMsg` where the reference gives one for that refusal (issue #13 item 2). KeyRelay's own
/// explanations are not on the wire (they are ``KeyRelayError/hint``).
@Suite struct ReferenceWordingTests {
    /// `errorMsg` as Key Protect writes it: "<Status phrase>: <what failed>: Please see 'reasons' for more details (<CODE>)".
    static func errorMsg(_ phrase: String, _ what: String, _ code: String) -> String {
        "\(phrase): \(what): Please see 'reasons' for more details (\(code))"
    }

    static func expect(_ reply: Reply, _ status: Int, _ code: String, message: String, errorMsg: String? = nil,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(reply.status.code == status, "\(reply.text)", sourceLocation: sourceLocation)
        #expect(reply.code == code, "\(reply.text)", sourceLocation: sourceLocation)
        #expect(reply.reason["message"] as? String == message, sourceLocation: sourceLocation)
        if let errorMsg {
            #expect(reply.first["errorMsg"] as? String == errorMsg, sourceLocation: sourceLocation)
        }
    }

    static let preventMessage = "The key cannot be deleted because it's protecting a cloud resource that has a retention policy: Before you delete this key, contact an account owner to remove the retention policy on each resource that is associated with the key"

    @Test func stateRefusalsNameTheNeededState() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("toggle")["id"] as? String)
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/disable").status == .noContent)
            Self.expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/disable"), 409, "KEY_ACTION_INVALID_STATE_ERR",
                        message: "Key is not in a valid state",
                        errorMsg: Self.errorMsg("Conflict", "Key is not in active state: Key could not be disabled", "KEY_ACTION_INVALID_STATE_ERR"))
            _ = try await h.advance("31s")
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/enable").status == .noContent)
            Self.expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/enable"), 409, "KEY_ACTION_INVALID_STATE_ERR",
                        message: "Key is not in a valid state",
                        errorMsg: Self.errorMsg("Conflict", "Key is not in suspended state: Key could not be enabled", "KEY_ACTION_INVALID_STATE_ERR"))
            Self.expect(try await h.call(.post, "/api/v2/keys/\(id)/restore"), 409, "KEY_ACTION_INVALID_STATE_ERR",
                        message: "Key is not in a valid state")
        }
    }

    @Test func timingRefusals() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("timed")["id"] as? String)
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/disable").status == .noContent)
            Self.expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/enable"), 409, "REQ_TOO_EARLY_ERR",
                        message: "The key was updated recently: Please wait and try again",
                        errorMsg: Self.errorMsg("Conflict", "Key could not be enabled", "REQ_TOO_EARLY_ERR"))
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)").status == .ok)
            Self.expect(try await h.call(.post, "/api/v2/keys/\(id)/restore"), 409, "REQ_TOO_EARLY_ERR",
                        message: "The key was updated recently: Please wait and try again",
                        errorMsg: Self.errorMsg("Conflict", "Key could not be restored", "REQ_TOO_EARLY_ERR"))
            Self.expect(try await h.call(.delete, "/api/v2/keys/\(id)/purge", token: Tokens.purger), 409, "REQ_TOO_EARLY_ERR",
                        message: "The key was updated recently: Please wait and try again: Purge operation is allowed 4h0m0s after key is deleted",
                        errorMsg: Self.errorMsg("Conflict", "Key could not be purged", "REQ_TOO_EARLY_ERR"))
            _ = try await h.advance("31d")
            Self.expect(try await h.call(.post, "/api/v2/keys/\(id)/restore"), 400, "KEY_RESTORE_EXPIRED",
                        message: "Key restoration has expired")

            let rotated = try #require(try await h.createKey("rotated")["id"] as? String)
            #expect(try await h.call(.post, "/api/v2/keys/\(rotated)/actions/rotate", json: [:]).status == .noContent)
            Self.expect(try await h.call(.post, "/api/v2/keys/\(rotated)/actions/rotate", json: [:]), 409, "KEY_ROTATION_NOT_PERMITTED",
                        message: "This root key has been rotated within the last hour: Only one 'rotate' action per hour is permitted",
                        errorMsg: Self.errorMsg("Conflict", "Action could not be performed on key", "KEY_ROTATION_NOT_PERMITTED"))
        }
    }

    @Test func deleteRefusals() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("guarded")["id"] as? String)
            try await h.register(id, bucket: "wording")
            Self.expect(try await h.call(.delete, "/api/v2/keys/\(id)"), 409, "PROTECTED_RESOURCE_ERR",
                        message: "Key is protecting one or more cloud resources",
                        errorMsg: Self.errorMsg("Conflict", "Key could not be deleted", "PROTECTED_RESOURCE_ERR"))
            let retained = try #require(try await h.createKey("retained")["id"] as? String)
            try await h.register(retained, bucket: "retention", prevent: true)
            Self.expect(try await h.call(.delete, "/api/v2/keys/\(retained)?force=true"), 409, "PREV_KEY_DEL_ERR",
                        message: Self.preventMessage)
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)?force=true").status == .ok)
            Self.expect(try await h.call(.delete, "/api/v2/keys/\(id)?force=true"), 410, "KEY_DELETED_ERR",
                        message: "Key has already been deleted: Please delete references to this key",
                        errorMsg: Self.errorMsg("Gone", "Key could not be deleted", "KEY_DELETED_ERR"))

            let overrides = try await h.call(.post, "/api/v2/keys_with_policy_overrides",
                                             json: Harness.keyBody("dual2", extra: ["dualAuthDelete": ["enabled": true]]))
            let dualID = try #require(overrides.first["id"] as? String)
            Self.expect(try await h.call(.delete, "/api/v2/keys/\(dualID)"), 409, "AUTHORIZATIONS_NOT_MET",
                        message: "Number of authorizations required to delete is not met",
                        errorMsg: Self.errorMsg("Conflict", "1 prior authorization(s) are required for deletion: Key could not be deleted", "AUTHORIZATIONS_NOT_MET"))
            let plain = try #require(try await h.createKey("plain")["id"] as? String)
            for action in ["setKeyForDeletion", "unsetKeyForDeletion"] {
                Self.expect(try await h.call(.post, "/api/v2/keys/\(plain)/actions/\(action)"), 409, "NOT_DUAL_AUTH_ERR",
                            message: "The key is not dual auth enabled and cannot be set for deletion")
            }
        }
    }

    @Test func keyTypeAndMaterialRefusals() async throws {
        try await Harness.run { h in
            let standard = try #require(try await h.createKey("standard", extractable: true)["id"] as? String)
            Self.expect(try await h.call(.post, "/api/v2/keys/\(standard)/actions/rotate", json: [:]), 400, "KEY_ROOT_REQ_ERR",
                        message: "Requested action can only be completed with a root key")
            let payload = Data(repeating: 7, count: 32).base64EncodedString()
            let imported = try #require(try await h.createKey("imported", extra: ["payload": payload])["id"] as? String)
            Self.expect(try await h.call(.post, "/api/v2/keys/\(imported)/actions/rotate", json: [:]), 400, "KEY_PAYLOAD_REQ_ERR",
                        message: "This root key was created with user-supplied key material: Key material is required to perform a 'rotate' action",
                        errorMsg: Self.errorMsg("Bad Request", "Action could not be performed on key", "KEY_PAYLOAD_REQ_ERR"))
            let generated = try #require(try await h.createKey("generated")["id"] as? String)
            Self.expect(try await h.call(.post, "/api/v2/keys/\(generated)/actions/rotate", json: ["payload": payload]), 400,
                        "INVALID_QUERY_PARAM_ERR", message: "The query_param 'payload' must be: provided only if key is imported")
            Self.expect(try await h.call(.post, "/api/v2/keys/\(generated)/actions/wrap", json: ["plaintext": "q+x3Qi.../BVb8bPj....vVD;"]),
                        400, "INVALID_FIELD_ERR", message: "The field 'plaintext' must be: a base64 encoded key material",
                        errorMsg: Self.errorMsg("Bad Request", "Wrap with key could not be performed", "INVALID_FIELD_ERR"))
            Self.expect(try await h.call(.post, "/api/v2/keys/\(generated)/actions/unwrap", json: ["ciphertext": "not base64!"]),
                        400, "INVALID_FIELD_ERR", message: "The field 'ciphertext' must be: the original base64 encoded ciphertext from the wrap operation",
                        errorMsg: Self.errorMsg("Bad Request", "Unwrap with key could not be performed", "INVALID_FIELD_ERR"))
            let forged = Data(#"{"ciphertext":"AAAA","iv":"AAAA","version":"4.0.0","handle":"\#(UUID().uuidString.lowercased())"}"#.utf8)
            Self.expect(try await h.call(.post, "/api/v2/keys/\(generated)/actions/unwrap", json: ["ciphertext": forged.base64EncodedString()]),
                        422, "UNPROCESSABLE_CIPHERTEXT_ERR", message: "The provided ciphertext is invalid or corrupted")
            Self.expect(try await h.call(.post, "/api/v2/keys/\(generated)/actions/unwrap"), 400, "NO_BODY_ERR",
                        message: "Missing body in request")
            Self.expect(try await h.call(.get, "/api/v2/keys/\(UUID().uuidString.lowercased())"), 404, "KEY_NOT_FOUND_ERR",
                        message: "key does not exist",
                        errorMsg: Self.errorMsg("Not Found", "Key could not be retrieved", "KEY_NOT_FOUND_ERR"))
        }
    }

    @Test func expiredKeyRefusals() async throws {
        try await Harness.run { h in
            let expiry = h.clock.now().addingTimeInterval(60)
            let id = try #require(try await h.createKey("expiring", extra: ["expirationDate": Timestamp.format(expiry)])["id"] as? String)
            _ = try await h.advance("2m")
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)").status == .ok)
            _ = try await h.advance("31s")
            let stamp = Timestamp.format(expiry).replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: " +0000 UTC")
            Self.expect(try await h.call(.post, "/api/v2/keys/\(id)/restore"), 400, "KEY_EXPIRED_ERR",
                        message: "The action could not be performed on the key because the key is expired",
                        errorMsg: Self.errorMsg("Bad Request", "The key expired on \(stamp): Key could not be restored", "KEY_EXPIRED_ERR"))
        }
    }

    @Test func envelopeAndPolicyRefusals() async throws {
        try await Harness.run { h in
            let key: [String: Any] = ["type": MediaTypes.key, "name": "k1", "extractable": false]
            Self.expect(try await h.call(.post, "/api/v2/keys", json: Harness.envelope(MediaTypes.key, [key], total: 2)), 400,
                        "COLLECTION_TOTAL_MISMATCH_ERR", message: "Collection total does not match number of resources")
            Self.expect(try await h.call(.post, "/api/v2/keys", json: Harness.envelope(MediaTypes.key, [key, key])), 400, "BAD_BODY_ERR",
                        message: "Invalid body data was passed: Please ensure the data passed had valid formatting with no invalid characters: Only creation of one key per request is supported")
            Self.expect(try await h.call(.post, "/api/v2/keys", json: ["metadata": [:], "resources": [key]]), 400, "BAD_BODY_ERR",
                        message: "Invalid body data was passed: Please ensure the data passed had valid formatting with no invalid characters: CollectionMetadata is empty")
            Self.expect(try await h.call(.post, "/api/v2/keys", json: ["metadata": ["collectionType": MediaTypes.key, "collectionTotal": 1], "resources": "x"]),
                        400, "BAD_BODY_ERR", message: "Invalid body data was passed: Please ensure the data passed had valid formatting with no invalid characters")
            let id = try #require(try await h.createKey("policy")["id"] as? String)
            let dual: [String: Any] = ["type": MediaTypes.policy, "dualAuthDelete": ["enabled": true]]
            Self.expect(try await h.call(.put, "/api/v2/keys/\(id)/policies?policy=rotation", json: Harness.envelope(MediaTypes.policy, [dual])),
                        400, "BODY_QUERY_PARAM_MISMATCH_ERR", message: "Data in body does not match data required by query parameter")
            let twice: [String: Any] = ["policy_type": "dualAuthDelete", "policy_data": ["enabled": false]]
            Self.expect(try await h.call(.put, "/api/v2/instance/policies?policy=dualAuthDelete", json: Harness.envelope(MediaTypes.policy, [twice, twice])),
                        400, "NUM_COLLECTION_RESOURCE_ERR",
                        message: "Only a single instance policy may be created per query parameter: Please pass single resource object")
            let access: [String: Any] = ["policy_type": "keyCreateImportAccess",
                                         "policy_data": ["enabled": true, "attributes": ["create_root_key": false]]]
            #expect(try await h.call(.put, "/api/v2/instance/policies?policy=keyCreateImportAccess",
                                     json: Harness.envelope(MediaTypes.policy, [access])).status == .noContent)
            Self.expect(try await h.call(.post, "/api/v2/keys", json: Harness.keyBody("refused")), 409, "KEY_CREATE_IMPORT_ACCESS_ERR",
                        message: "KeyCreateImportAccess instance policy does not allow this action",
                        errorMsg: Self.errorMsg("Conflict", "Key could not be created", "KEY_CREATE_IMPORT_ACCESS_ERR"))
        }
    }

    @Test func accessRefusals() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("owned")["id"] as? String)
            let unauthorized = try await h.call(.get, "/api/v2/keys", token: "no-such-token-0123456789")
            #expect(unauthorized.status == .unauthorized)
            #expect(unauthorized.json["errorMsg"] as? String == "Unauthorized: The user does not have access to the specified resource")
            Self.expect(try await h.call(.post, "/api/v2/keys/\(id)/registrations/\(Harness.encode(Harness.bucketCRN("b")))",
                                         json: Harness.envelope(MediaTypes.registrationInput, [[:]])), 403, "SERVICE_ONLY_ERR",
                        message: "This action can only be done by a service (service to service)")
            Self.expect(try await h.call(.delete, "/api/v2/keys/\(id)", token: Tokens.service), 403, "RESOURCE_OWNER_ERR",
                        message: "The resource(s) queried does not belong to the service",
                        errorMsg: Self.errorMsg("Forbidden", "Key could not be deleted", "RESOURCE_OWNER_ERR"))
            // What KeyRelay does not support (the deprecated registrations?action=deactivate) is 501 with this wording.
            let deactivate = try await h.call(.post, "/api/v2/keys/\(id)/registrations?action=deactivate", json: [String: Any]())
            Self.expect(deactivate, 501, "FEATURE_RESTRICTED_ERR",
                        message: "This action is not permitted on this resource: Please contact IBM Key Protect or open a service ticket to enable this feature")
        }
    }

    @Test func registrationRefusals() async throws {
        try await Harness.run { h in
            let rotated = try #require(try await h.createKey("versions")["id"] as? String)
            #expect(try await h.register(rotated, bucket: "v").status == .created)
            let first = try #require((try await h.call(.get, "/api/v2/keys/\(rotated)").first["keyVersion"] as? [String: Any])?["id"] as? String)
            #expect(try await h.call(.post, "/api/v2/keys/\(rotated)/actions/rotate", json: [:]).status == .noContent)
            let crn = Harness.encode(Harness.bucketCRN("v"))
            let latest = try #require((try await h.call(.get, "/api/v2/keys/\(rotated)").first["keyVersion"] as? [String: Any])?["id"] as? String)
            #expect(try await h.call(.patch, "/api/v2/keys/\(rotated)/registrations/\(crn)",
                                     json: Harness.envelope(MediaTypes.registrationInput, [["keyVersionId": latest]]), token: Tokens.service).status == .ok)
            Self.expect(try await h.call(.patch, "/api/v2/keys/\(rotated)/registrations/\(crn)",
                                         json: Harness.envelope(MediaTypes.registrationInput, [["keyVersionId": first]]), token: Tokens.service),
                        422, "KEY_VERSION_INVALID", message: "This request requires that the key version is later than current registration key version")
            let standard = try #require(try await h.createKey("standard", extractable: true)["id"] as? String)
            Self.expect(try await h.register(standard, bucket: "std"), 422, "KEY_ROOT_REQ_REG_ERR",
                        message: "Requested action can only be completed with a root key")
            let id = try #require(try await h.createKey("suspended")["id"] as? String)
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/disable").status == .noContent)
            Self.expect(try await h.register(id, bucket: "sus"), 422, "KEY_INVALID_STATE_ERR", message: "Key is not in a valid state")
        }
    }
}
