import Foundation
import HTTPTypes
import Hummingbird
import KeyRelay
@testable import KeyRelayHTTP
import Testing

@Suite struct AccessTests {
    @Test func missingOrWrongTokenIs401WithOnlyErrorMsg() async throws {
        try await Harness.run { h in
            for token in [nil, "not-a-valid-token-at-all"] as [String?] {
                let reply = try await h.call(.get, "/api/v2/keys", token: token)
                #expect(reply.status == .unauthorized)
                #expect(reply.json.count == 1)
                #expect(reply.json["errorMsg"] as? String == "Unauthorized: The user does not have access to the specified resource")
            }
        }
    }

    @Test func missingInstanceHeaderIs400() async throws {
        try await Harness.run { h in
            let reply = try await h.call(.get, "/api/v2/keys", instance: nil)
            #expect(reply.status == .badRequest)
            #expect(reply.code == "INVALID_HEADER_ERR")
            #expect((reply.reason["target"] as? [String: String])?["name"] == "Bluemix-Instance")
        }
    }

    @Test func anotherInstanceNeverSeesTheKey() async throws {
        try await Harness.run { h in
            let key = try await h.createKey("mine")
            let id = try #require(key["id"] as? String)
            let reply = try await h.call(.get, "/api/v2/keys/\(id)", token: Tokens.otherInstance, instance: instanceB)
            #expect(reply.status == .notFound)
            #expect(reply.code == "KEY_NOT_FOUND_ERR")
            let list = try await h.call(.get, "/api/v2/keys", token: Tokens.otherInstance, instance: instanceB)
            #expect(list.resources.isEmpty)
            // A token not granted on the instance gets 401.
            let denied = try await h.call(.get, "/api/v2/keys/\(id)", token: Tokens.otherInstance, instance: instanceA)
            #expect(denied.status == .unauthorized)
        }
    }

    @Test func rolesGateActions() async throws {
        try await Harness.run { h in
            let readerCreate = try await h.call(.post, "/api/v2/keys", json: Harness.keyBody("nope"), token: Tokens.reader)
            #expect(readerCreate.status == .unauthorized)
            let key = try await h.createKey("by-writer", token: Tokens.writer)
            let id = try #require(key["id"] as? String)
            #expect(try await h.call(.get, "/api/v2/keys/\(id)", token: Tokens.reader).status == .ok)
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/wrap", token: Tokens.writer).status == .ok)
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/disable", token: Tokens.writer).status == .unauthorized)
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)", token: Tokens.writer).status == .unauthorized)
            // Manager cannot purge; KeyPurge can (once allowed).
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)").status == .ok)
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)/purge").status == .unauthorized)
            _ = try await h.advance("4h")
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)/purge", token: Tokens.purger).status == .ok)
        }
    }

    @Test func accessFileLoadsAndComparesTokens() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("access-\(UUID().uuidString).json")
        try Data("""
            {"tokens": {"alice-token-0123456789": {"principal": "alice", "role": "Reader", "instances": ["i1"]},
                        "cos-token-01234567890": {"principal": "cos", "roles": ["Service", "Reader"], "instances": "*"}}}
            """.utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let access = try AccessControl.load(file: url.path)
        let alice = try #require(access.grant(forToken: "alice-token-0123456789"))
        #expect(alice.principal == "alice" && alice.roles == [.reader] && alice.covers(instance: "i1") && !alice.covers(instance: "i2"))
        let cos = try #require(access.grant(forToken: "cos-token-01234567890"))
        #expect(cos.allows(.service) && cos.covers(instance: "anything"))
        #expect(access.grant(forToken: "alice-token-012345678") == nil)
        #expect(!AccessControl.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(AccessControl.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        try Data(#"{"tokens": {"short": {"principal": "x", "role": "Reader", "instances": "*"}}}"#.utf8).write(to: url)
        #expect(throws: KeyRelayError.self) { try AccessControl.load(file: url.path) }
        try Data(#"{"tokens": {"long-enough-token-123": {"principal": "x", "role": "Boss", "instances": "*"}}}"#.utf8).write(to: url)
        #expect(throws: KeyRelayError.self) { try AccessControl.load(file: url.path) }
    }
}

@Suite struct KeyEndpointTests {
    @Test func createAnswersVendorTypeAndRepresentation() async throws {
        try await Harness.run { h in
            let reply = try await h.call(.post, "/api/v2/keys", json: Harness.keyBody("root-1", extra: ["description": "d", "tags": ["t"]]),
                                         headers: ["Correlation-Id": "corr-123"])
            #expect(reply.status == .created)
            #expect(reply.contentType == "application/vnd.ibm.kms.key+json")
            #expect(reply.metadata["collectionType"] as? String == MediaTypes.key)
            let key = reply.first
            for field in ["type", "id", "name", "aliases", "description", "tags", "state", "extractable", "crn", "imported",
                          "keyRingID", "creationDate", "createdBy", "algorithmType", "algorithmMetadata", "algorithmBitSize",
                          "algorithmMode", "lastUpdateDate", "keyVersion", "dualAuthDelete", "deleted"] {
                #expect(key[field] != nil, "missing \(field)")
            }
            #expect(key["state"] as? Int == 1)
            #expect(key["algorithmBitSize"] as? Int == 256)
            #expect((key["algorithmMetadata"] as? [String: String]) == ["bitLength": "256", "mode": "Deprecated"])
            #expect(key["keyRingID"] as? String == "default")
            let id = try #require(key["id"] as? String)
            #expect(key["crn"] as? String == "crn:v1:bluemix:public:kms:us-south:a/keyrelay:\(instanceA):key:\(id)")
            // Correlation-Id is carried into the event.
            let events = try await h.engine.events(keyID: id)
            #expect(events.first?.correlationID == "corr-123")
            // Prefer: return=minimal.
            let minimal = try await h.call(.post, "/api/v2/keys", json: Harness.keyBody("root-2"), headers: ["Prefer": "return=minimal"])
            #expect(minimal.status == .created && minimal.text.isEmpty)
        }
    }

    @Test func createRejectsBadEnvelopes() async throws {
        try await Harness.run { h in
            var body = Harness.keyBody("x1")
            body["metadata"] = ["collectionType": MediaTypes.key, "collectionTotal": 2]
            let mismatch = try await h.call(.post, "/api/v2/keys", json: body)
            #expect(mismatch.status == .badRequest && mismatch.code == "COLLECTION_TOTAL_MISMATCH_ERR")
            #expect(mismatch.reason["message"] as? String == "Collection total does not match number of resources")
            #expect(mismatch.first["errorMsg"] as? String == "Bad Request: Key could not be created: Please see 'reasons' for more details (COLLECTION_TOTAL_MISMATCH_ERR)")
            #expect(mismatch.reason["moreInfo"] as? String == "https://cloud.ibm.com/apidocs/key-protect")
            #expect(mismatch.reason["status"] as? Int == 400)
            #expect(mismatch.metadata["collectionType"] as? String == "application/vnd.ibm.kms.error+json")
            #expect(mismatch.contentType == "application/json")
            let none = try await h.call(.post, "/api/v2/keys")
            #expect(none.code == "NO_BODY_ERR")
            let notJSON = try await h.call(.post, "/api/v2/keys", raw: "{nope")
            #expect(notJSON.code == "BAD_BODY_ERR")
            let noName = try await h.call(.post, "/api/v2/keys", json: Harness.envelope(MediaTypes.key, [["extractable": false]]))
            #expect(noName.code == "INVALID_FIELD_ERR")
            let two = try await h.call(.post, "/api/v2/keys", json: Harness.envelope(MediaTypes.key, [["name": "a1"], ["name": "a2"]]))
            #expect(two.code == "BAD_BODY_ERR")
        }
    }

    @Test func createWithPolicyOverrides() async throws {
        try await Harness.run { h in
            let reply = try await h.call(.post, "/api/v2/keys_with_policy_overrides",
                                         json: Harness.keyBody("ovr", extra: ["rotation": ["enabled": true, "interval_month": 3],
                                                                              "dualAuthDelete": ["enabled": true]]))
            #expect(reply.status == .created && reply.contentType == MediaTypes.key)
            #expect((reply.first["rotation"] as? [String: Any])?["interval_month"] as? Int == 3)
            #expect((reply.first["dualAuthDelete"] as? [String: Any])?["enabled"] as? Bool == true)
            let bad = try await h.call(.post, "/api/v2/keys_with_policy_overrides",
                                       json: Harness.keyBody("ovr2", extra: ["rotation": ["enabled": true, "interval_month": 13]]))
            #expect(bad.code == "INVALID_FIELD_ERR")
        }
    }

    @Test func getListHeadMetadataVersions() async throws {
        try await Harness.run { h in
            let material = Data((0..<32).map { UInt8($0) }).base64EncodedString()
            let standard = try await h.createKey("std", extractable: true, extra: ["payload": material])
            let root = try await h.createKey("root", extra: ["aliases": ["my-root"]])
            let sid = try #require(standard["id"] as? String)
            let rid = try #require(root["id"] as? String)

            let got = try await h.call(.get, "/api/v2/keys/\(sid)")
            #expect(got.status == .ok && got.contentType == "application/json")
            #expect(got.first["payload"] as? String == material)
            let gotRoot = try await h.call(.get, "/api/v2/keys/my-root")
            #expect(gotRoot.first["id"] as? String == rid && gotRoot.first["payload"] == nil)

            let list = try await h.call(.get, "/api/v2/keys?limit=10&sort=-creationDate&state=")
            #expect(list.resources.count == 2 && list.metadata["collectionTotal"] as? Int == 2)
            #expect(list.resources.allSatisfy { $0["payload"] == nil })
            let roots = try await h.call(.get, "/api/v2/keys?extractable=false")
            #expect(roots.resources.map { $0["id"] as? String } == [rid])
            let searched = try await h.call(.get, "/api/v2/keys?search=std")
            #expect(searched.resources.map { $0["id"] as? String } == [sid])
            let badSort = try await h.call(.get, "/api/v2/keys?sort=color")
            #expect(badSort.code == "INVALID_QUERY_PARAM_ERR")
            let badLimit = try await h.call(.get, "/api/v2/keys?limit=0")
            #expect(badLimit.code == "INVALID_QUERY_PARAM_ERR")

            let head = try await h.call(.head, "/api/v2/keys")
            #expect(head.status == .ok && head.header("Key-Total") == "2" && head.text.isEmpty)

            let metadata = try await h.call(.get, "/api/v2/keys/\(sid)/metadata")
            #expect(metadata.first["name"] as? String == "std" && metadata.first["payload"] == nil)

            let versions = try await h.call(.get, "/api/v2/keys/\(rid)/versions?totalCount=true")
            #expect(versions.resources.count == 1 && versions.metadata["totalCount"] as? Int == 1)
            #expect(versions.first["id"] as? String == (root["keyVersion"] as? [String: Any])?["id"] as? String)
            #expect(try await h.call(.post, "/api/v2/keys/\(rid)/actions/disable").status == .noContent)
            let disabled = try await h.call(.get, "/api/v2/keys/\(rid)/versions")
            #expect(disabled.status == .conflict && disabled.code == "KEY_ACTION_INVALID_STATE_ERR")
            #expect(try await h.call(.get, "/api/v2/keys/\(rid)/versions?allKeyStates=true").status == .ok)

            let missing = try await h.call(.get, "/api/v2/keys/\(UUID().uuidString.lowercased())")
            #expect(missing.status == .notFound && missing.code == "KEY_NOT_FOUND_ERR")
        }
    }

    @Test func wrapUnwrapRewrapAcrossRotation() async throws {
        try await Harness.run { h in
            let key = try await h.createKey("wrapper")
            let id = try #require(key["id"] as? String)
            let v1 = try #require((key["keyVersion"] as? [String: Any])?["id"] as? String)
            let dek = Data(repeating: 7, count: 32).base64EncodedString()
            let wrap = try await h.call(.post, "/api/v2/keys/\(id)/actions/wrap", json: ["plaintext": dek, "aad": ["a"]])
            #expect(wrap.status == .ok && wrap.contentType == MediaTypes.key)
            let ciphertext = try #require(wrap.json["ciphertext"] as? String)
            #expect((wrap.json["keyVersion"] as? [String: Any])?["id"] as? String == v1)
            let generated = try await h.call(.post, "/api/v2/keys/\(id)/actions/wrap")
            #expect(generated.json["plaintext"] is String)

            let unwrap = try await h.call(.post, "/api/v2/keys/\(id)/actions/unwrap", json: ["ciphertext": ciphertext, "aad": ["a"]])
            #expect(unwrap.status == .ok && unwrap.contentType == "application/json" && unwrap.json["plaintext"] as? String == dek)
            let noBody = try await h.call(.post, "/api/v2/keys/\(id)/actions/unwrap")
            #expect(noBody.code == "NO_BODY_ERR")
            let badBase64 = try await h.call(.post, "/api/v2/keys/\(id)/actions/wrap", json: ["plaintext": "***"])
            #expect(badBase64.code == "INVALID_FIELD_ERR" && (badBase64.reason["target"] as? [String: String])?["name"] == "plaintext")
            let wrongAAD = try await h.call(.post, "/api/v2/keys/\(id)/actions/unwrap", json: ["ciphertext": ciphertext, "aad": ["b"]])
            #expect(wrongAAD.status.code == 422 && wrongAAD.code == "UNPROCESSABLE_CIPHERTEXT_ERR")

            let rotate = try await h.call(.post, "/api/v2/keys/\(id)/actions/rotate", json: [String: Any](), headers: ["Prefer": "return=representation"])
            #expect(rotate.status == .noContent)
            let again = try await h.call(.post, "/api/v2/keys/\(id)/actions/rotate")
            #expect(again.code == "KEY_ROTATION_NOT_PERMITTED")
            let old = try await h.call(.post, "/api/v2/keys/\(id)/actions/unwrap", json: ["ciphertext": ciphertext, "aad": ["a"]])
            let v2 = try #require((old.json["rewrappedKeyVersion"] as? [String: Any])?["id"] as? String)
            #expect(v2 != v1 && old.json["ciphertext"] is String)
            let rewrap = try await h.call(.post, "/api/v2/keys/\(id)/actions/rewrap", json: ["ciphertext": ciphertext, "aad": ["a"]])
            #expect((rewrap.json["keyVersion"] as? [String: Any])?["id"] as? String == v1)
            #expect((rewrap.json["rewrappedKeyVersion"] as? [String: Any])?["id"] as? String == v2)

            let standard = try await h.createKey("std", extractable: true)
            let sid = try #require(standard["id"] as? String)
            let rootOnly = try await h.call(.post, "/api/v2/keys/\(sid)/actions/wrap")
            #expect(rootOnly.code == "KEY_ROOT_REQ_ERR")
        }
    }

    @Test func disableEnableCooldownAndDeprecatedActionForm() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("toggle")["id"] as? String)
            #expect(try await h.call(.post, "/api/v2/keys/\(id)?action=disable").status == .noContent)
            let early = try await h.call(.post, "/api/v2/keys/\(id)/actions/enable")
            #expect(early.status == .conflict && early.code == "REQ_TOO_EARLY_ERR")
            #expect(try await h.advance("31s").status == .ok)
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/enable").status == .noContent)
            let twice = try await h.call(.post, "/api/v2/keys/\(id)/actions/enable")
            #expect(twice.code == "KEY_ACTION_INVALID_STATE_ERR")
            let bogus = try await h.call(.post, "/api/v2/keys/\(id)?action=explode")
            #expect(bogus.code == "INVALID_QUERY_PARAM_ERR")
            let wrap = try await h.call(.post, "/api/v2/keys/\(id)?action=wrap")
            #expect(wrap.status == .ok && wrap.json["ciphertext"] is String)
        }
    }

    @Test func deleteRestorePurge() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("doomed")["id"] as? String)
            #expect(try await h.register(id, bucket: "b1").status == .created)
            let protected = try await h.call(.delete, "/api/v2/keys/\(id)")
            #expect(protected.status == .conflict && protected.code == "PROTECTED_RESOURCE_ERR")
            #expect((protected.reason["target"] as? [String: String]) == ["type": "query_param", "name": "force"])
            let deleted = try await h.call(.delete, "/api/v2/keys/\(id)?force=true", headers: ["Prefer": "return=representation"])
            #expect(deleted.status == .ok && deleted.first["state"] as? Int == 5 && deleted.first["deleted"] as? Bool == true)
            #expect(deleted.first["deletionDate"] is String && deleted.first["purgeAllowed"] as? Bool == false)
            let gone = try await h.call(.delete, "/api/v2/keys/\(id)?force=true")
            #expect(gone.status.code == 410 && gone.code == "KEY_DELETED_ERR")
            let listed = try await h.call(.get, "/api/v2/keys")
            #expect(listed.resources.isEmpty)
            #expect(try await h.call(.get, "/api/v2/keys?state=5").resources.count == 1)

            _ = try await h.advance("31s")
            let restored = try await h.call(.post, "/api/v2/keys/\(id)/restore")
            #expect(restored.status == .created && restored.first["state"] as? Int == 1)

            #expect(try await h.call(.delete, "/api/v2/keys/\(id)?force=true", headers: ["Prefer": "return=minimal"]).status == .noContent)
            let early = try await h.call(.delete, "/api/v2/keys/\(id)/purge", token: Tokens.purger)
            #expect(early.status == .conflict && early.code == "REQ_TOO_EARLY_ERR")
            _ = try await h.advance("4h")
            let purged = try await h.call(.delete, "/api/v2/keys/\(id)/purge", token: Tokens.purger)
            #expect(purged.status == .ok && purged.first["id"] as? String == id)
            #expect(try await h.call(.get, "/api/v2/keys/\(id)").code == "KEY_NOT_FOUND_ERR")
        }
    }

    @Test func syncAnswers204Then409WithRetryAfterThen204() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("synced")["id"] as? String)
            try await h.register(id, bucket: "sync-bucket")
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/sync").status == .noContent)
            let early = try await h.call(.post, "/api/v2/keys/\(id)/actions/sync")
            #expect(early.status == .conflict)
            #expect(early.metadata["collectionType"] as? String == "application/vnd.ibm.kms.error+json")
            #expect(early.metadata["collectionTotal"] as? Int == 1)
            #expect(early.first["errorMsg"] as? String == "Conflict: Could not initiate sync requests to associated resources: Please see 'reasons' for more details (REQ_TOO_EARLY_ERR)")
            let earliest = Timestamp.format(h.clock.now().addingTimeInterval(3601))
            #expect(early.reason["message"] as? String == "The key was updated recently: Please wait and try again: Sync cannot be performed until at least \(earliest)")
            #expect(early.reason["status"] as? Int == 409)
            #expect(early.reason["target"] == nil)
            #expect(early.header("Retry-After") == "3601")
            _ = try await h.advance("30m")
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/sync").header("Retry-After") == "1801")
            let moved = try await h.advance("30m 1s")
            #expect(moved.json["now"] as? String == earliest)
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/sync").status == .noContent)
        }
    }
}
