import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import KeyRelay
@testable import KeyRelayHTTP
import Testing
import _CryptoExtras

@Suite struct RegistrationEndpointTests {
    @Test func serviceToServiceCrudAndListings() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("protector")["id"] as? String)
            let notService = try await h.register(id, bucket: "b1", token: Tokens.manager)
            #expect(notService.status == .forbidden && notService.code == "SERVICE_ONLY_ERR")
            #expect(notService.reason["message"] as? String == "This action can only be done by a service (service to service)")

            let created = try await h.register(id, bucket: "b1")
            #expect(created.status == .created && created.metadata["collectionType"] as? String == MediaTypes.registration)
            let crn = Harness.bucketCRN("b1")
            #expect(created.first["resourceCrn"] as? String == crn)
            #expect(created.first["lastUpdated"] is String && created.first["keyName"] as? String == "protector")
            let dup = try await h.register(id, bucket: "b1")
            #expect(dup.status == .conflict)
            try await h.register(id, bucket: "b2", prevent: true)

            let perKey = try await h.call(.get, "/api/v2/keys/\(id)/registrations?totalCount=true")
            #expect(perKey.resources.count == 2 && perKey.metadata["totalCount"] as? Int == 2)
            #expect(perKey.resources.allSatisfy { $0["registrationMetadata"] == nil })
            // `/keys/registrations` is not mistaken for a key id.
            let prefix = Harness.encode(String(crn.dropLast(2)) + "*")
            let across = try await h.call(.get, "/api/v2/keys/registrations?urlEncodedResourceCRNQuery=\(prefix)")
            #expect(across.status == .ok && across.resources.count == 2)
            let preventing = try await h.call(.get, "/api/v2/keys/registrations?preventKeyDeletion=true")
            #expect(preventing.resources.map { $0["resourceCrn"] as? String } == [Harness.bucketCRN("b2")])

            let path = "/api/v2/keys/\(id)/registrations/\(Harness.encode(crn))"
            let patched = try await h.call(.patch, path, json: Harness.envelope(MediaTypes.registrationInput, [["description": "patched", "registrationMetadata": "m"]]),
                                           token: Tokens.service)
            #expect(patched.status == .ok && patched.first["description"] as? String == "patched")
            #expect(patched.first["registrationMetadata"] as? String == "m")
            let replaced = try await h.call(.put, path, json: Harness.envelope(MediaTypes.registrationInput, [["description": "replaced"]]),
                                            token: Tokens.service)
            #expect(replaced.status == .ok && replaced.first["description"] as? String == "replaced")
            #expect(try await h.call(.delete, path, token: Tokens.service).status == .noContent)
            #expect(try await h.call(.delete, path, token: Tokens.service).status == .notFound)

            // preventKeyDeletion blocks delete even with force.
            let prevented = try await h.call(.delete, "/api/v2/keys/\(id)?force=true")
            #expect(prevented.code == "PREV_KEY_DEL_ERR")

            let standard = try #require(try await h.createKey("std", extractable: true)["id"] as? String)
            let notRoot = try await h.register(standard, bucket: "b3")
            #expect(notRoot.status.code == 422 && notRoot.code == "KEY_ROOT_REQ_REG_ERR")
        }
    }

    @Test func eventAcknowledgement() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("acked")["id"] as? String)
            try await h.register(id, bucket: "one")
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/disable").status == .noContent)
            let events = try await h.engine.events(keyID: id)
            let disable = try #require(events.last)
            func ack(_ resource: [String: Any], token: String = Tokens.service) async throws -> Reply {
                try await h.call(.post, "/api/v2/event_ack", json: Harness.envelope(MediaTypes.eventAcknowledge, [resource]), token: token)
            }
            let base: [String: Any] = ["eventId": disable.id, "adopterKeyState": "DEK_DISABLED", "timestamp": "2026-01-01T00:00:05Z"]
            #expect(try await ack(base, token: Tokens.manager).code == "SERVICE_ONLY_ERR")
            // Without resourceCrn: the key's only registration.
            #expect(try await ack(base).status == .noContent)
            let registrations = try await h.engine.registrations(keyID: id, context: RequestContext(instanceID: instanceA, principal: "t"))
            #expect(registrations.items.first?.acknowledgement?.adopterKeyState == .disabled)
            // With two registrations, resourceCrn is needed.
            _ = try await h.advance("31s")
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/enable").status == .noContent)
            #expect(try await h.register(id, bucket: "two").status == .created)
            let enable = try #require(try await h.engine.events(keyID: id).last)
            var enabled: [String: Any] = ["eventId": enable.id, "adopterKeyState": "DEK_ENABLED", "timestamp": "2026-01-01T00:01:00Z",
                                          "keyStateData": ["rewrappedKeyVersion": enable.keyVersion.id]]
            let ambiguous = try await ack(enabled)
            #expect(ambiguous.status == .badRequest && (ambiguous.reason["target"] as? [String: String])?["name"] == "resourceCrn")
            enabled["resourceCrn"] = Harness.bucketCRN("two")
            #expect(try await ack(enabled).status == .noContent)
            var noVersion = enabled
            noVersion["keyStateData"] = nil
            #expect(try await ack(noVersion).code == "INVALID_FIELD_ERR")
            let badState = try await ack(["eventId": disable.id, "adopterKeyState": "DEK_MELTED", "timestamp": "2026-01-01T00:00:05Z"])
            #expect(badState.code == "INVALID_FIELD_ERR")
            let unknown = try await ack(["eventId": "nope", "adopterKeyState": "DEK_DISABLED", "timestamp": "2026-01-01T00:00:05Z"])
            #expect(unknown.status == .notFound)
        }
    }
}

@Suite struct OtherEndpointTests {
    @Test func aliasesKeyRingsAndRingHeader() async throws {
        try await Harness.run { h in
            #expect(try await h.call(.post, "/api/v2/key_rings/ring-1").status == .created)
            #expect(try await h.call(.post, "/api/v2/key_rings/ring-1").status == .conflict)
            #expect(try await h.call(.post, "/api/v2/key_rings/default").status == .conflict)
            let rings = try await h.call(.get, "/api/v2/key_rings?totalCount=true")
            #expect(rings.metadata["collectionType"] as? String == MediaTypes.keyRing)
            #expect(Set(rings.resources.compactMap { $0["id"] as? String }) == ["default", "ring-1"])

            let key = try await h.createKey("ringed", headers: ["X-Kms-Key-Ring": "ring-1"])
            #expect(key["keyRingID"] as? String == "ring-1")
            let id = try #require(key["id"] as? String)
            let missingRing = try await h.call(.post, "/api/v2/keys", json: Harness.keyBody("lost"), headers: ["X-Kms-Key-Ring": "ring-9"])
            #expect(missingRing.code == "KEY_RING_NOT_FOUND_ERR")
            let mismatch = try await h.call(.get, "/api/v2/keys/\(id)", headers: ["X-Kms-Key-Ring": "default"])
            #expect(mismatch.code == "KEY_RING_MISMATCH_ERR")
            #expect(try await h.call(.get, "/api/v2/keys/\(id)", headers: ["X-Kms-Key-Ring": "ring-1"]).status == .ok)
            #expect(try await h.call(.delete, "/api/v2/key_rings/ring-1").code == "KEY_RING_NOT_EMPTY_ERR")

            let alias = try await h.call(.post, "/api/v2/keys/\(id)/aliases/ringed-alias")
            #expect(alias.status == .created && alias.first["alias"] as? String == "ringed-alias" && alias.first["keyId"] as? String == id)
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/aliases/registrations").code == "INVALID_FIELD_ERR")
            #expect(try await h.call(.get, "/api/v2/keys/ringed-alias").first["id"] as? String == id)

            let wrongCurrent = try await h.call(.patch, "/api/v2/keys/\(id)", json: ["keyRingID": "default"], headers: ["X-Kms-Key-Ring": "default"])
            #expect(wrongCurrent.code == "KEY_RING_MISMATCH_ERR")
            let moved = try await h.call(.patch, "/api/v2/keys/\(id)", json: ["keyRingID": "default"], headers: ["X-Kms-Key-Ring": "ring-1"])
            #expect(moved.status == .ok && moved.first["keyRingID"] as? String == "default")
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)/aliases/ringed-alias").status == .noContent)
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)/aliases/ringed-alias").status == .notFound)
            #expect(try await h.call(.delete, "/api/v2/key_rings/ring-1").status == .noContent)
        }
    }

    @Test func keyAndInstancePolicies() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("policied")["id"] as? String)
            let empty = try await h.call(.get, "/api/v2/keys/\(id)/policies")
            #expect(empty.status == .ok && empty.metadata["collectionTotal"] as? Int == 0)
            let rotation = Harness.envelope(MediaTypes.policy, [["type": MediaTypes.policy, "rotation": ["enabled": true, "interval_month": 3]]])
            let put = try await h.call(.put, "/api/v2/keys/\(id)/policies?policy=rotation", json: rotation)
            #expect(put.status == .ok && (put.first["rotation"] as? [String: Any])?["interval_month"] as? Int == 3)
            #expect(put.first["createdBy"] as? String == "manager")
            // A JSON 1 is an integer, not a boolean (on Linux it also casts to Bool); a JSON true is not an integer.
            let monthly = Harness.envelope(MediaTypes.policy, [["type": MediaTypes.policy, "rotation": ["enabled": true, "interval_month": 1]]])
            let one = try await h.call(.put, "/api/v2/keys/\(id)/policies?policy=rotation", json: monthly)
            #expect(one.status == .ok && (one.first["rotation"] as? [String: Any])?["interval_month"] as? Int == 1)
            let boolean = Harness.envelope(MediaTypes.policy, [["type": MediaTypes.policy, "rotation": ["enabled": true, "interval_month": true]]])
            #expect(try await h.call(.put, "/api/v2/keys/\(id)/policies?policy=rotation", json: boolean).code == "INVALID_FIELD_ERR")
            #expect(try await h.call(.put, "/api/v2/keys/\(id)/policies?policy=rotation", json: rotation).status == .ok)
            let mismatch = try await h.call(.put, "/api/v2/keys/\(id)/policies?policy=dualAuthDelete", json: rotation)
            #expect(mismatch.code == "BODY_QUERY_PARAM_MISMATCH_ERR")
            let dual = Harness.envelope(MediaTypes.policy, [["type": MediaTypes.policy, "dualAuthDelete": ["enabled": true]]])
            #expect(try await h.call(.put, "/api/v2/keys/\(id)/policies", json: dual).status == .ok)
            #expect(try await h.call(.get, "/api/v2/keys/\(id)/policies").resources.count == 2)
            #expect(try await h.call(.get, "/api/v2/keys/\(id)/policies?policy=rotation").resources.count == 1)
            // Dual authorization: the deleter must differ from the authorizer.
            #expect(try await h.call(.delete, "/api/v2/keys/\(id)").code == "AUTHORIZATIONS_NOT_MET")
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/setKeyForDeletion").status == .noContent)
            #expect(try await h.call(.get, "/api/v2/keys/\(id)").first["dualAuthDelete"].flatMap { ($0 as? [String: Any])?["keySetForDeletion"] as? Bool } == true)
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/unsetKeyForDeletion").status == .noContent)

            let instancePolicy = Harness.envelope(MediaTypes.policy, [["policy_type": "keyCreateImportAccess",
                                                                        "policy_data": ["enabled": true, "attributes": ["create_standard_key": false]]]])
            #expect(try await h.call(.put, "/api/v2/instance/policies?policy=keyCreateImportAccess", json: instancePolicy).status == .noContent)
            let listed = try await h.call(.get, "/api/v2/instance/policies")
            #expect(listed.first["policy_type"] as? String == "keyCreateImportAccess" && listed.first["lastUpdated"] is String)
            let refused = try await h.call(.post, "/api/v2/keys", json: Harness.keyBody("std", extractable: true))
            #expect(refused.code == "KEY_CREATE_IMPORT_ACCESS_ERR")
            let qmismatch = try await h.call(.put, "/api/v2/instance/policies?policy=metrics", json: instancePolicy)
            #expect(qmismatch.code == "BODY_QUERY_PARAM_MISMATCH_ERR")
            let port = try await h.call(.get, "/api/v2/instance/allowed_ip_port")
            #expect(port.status == .ok && port.first["private_endpoint_port"] as? Int == 8888)
        }
    }

    @Test func importTokenAndSecureImport() async throws {
        try await Harness.run { h in
            #expect(try await h.call(.get, "/api/v2/import_token").status == .notFound)
            let created = try await h.call(.post, "/api/v2/import_token", json: ["expiration": 1200, "maxAllowedRetrievals": 2])
            #expect(created.status == .ok && created.json["remainingRetrievals"] as? Int == 2)
            let token = try await h.call(.get, "/api/v2/import_token")
            #expect(token.status == .ok && token.json["remainingRetrievals"] as? Int == 1)
            let payloadText = try #require(token.json["payload"] as? String)
            let nonceText = try #require(token.json["nonce"] as? String)
            let pem = String(decoding: try #require(Data(base64Encoded: payloadText)), as: UTF8.self)
            let nonce = try #require(Data(base64Encoded: nonceText))
            let publicKey = try _RSA.Encryption.PublicKey(pemRepresentation: pem)
            let material = SymmetricKey(size: .bits256)
            let encrypted = try publicKey.encrypt(material.withUnsafeBytes { Data($0) }, padding: .PKCS1_OAEP_SHA256)
            let iv = AES.GCM.Nonce()
            let sealed = try AES.GCM.seal(nonce, using: material, nonce: iv)
            let body: [String: Any] = ["payload": encrypted.base64EncodedString(),
                                       "encryptedNonce": (sealed.ciphertext + sealed.tag).base64EncodedString(),
                                       "iv": Data(iv).base64EncodedString(), "encryptionAlgorithm": "RSAES_OAEP_SHA_256"]
            let imported = try await h.call(.post, "/api/v2/keys", json: Harness.keyBody("secure", extra: body))
            #expect(imported.status == .created && imported.first["imported"] as? Bool == true)
            // The material really is the one sent: a wrap opens with it.
            let id = try #require(imported.first["id"] as? String)
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/wrap").status == .ok)

            var wrongNonce = body
            let other = try AES.GCM.seal(Data(repeating: 1, count: nonce.count), using: material, nonce: iv)
            wrongNonce["encryptedNonce"] = (other.ciphertext + other.tag).base64EncodedString()
            let badNonce = try await h.call(.post, "/api/v2/keys", json: Harness.keyBody("bad", extra: wrongNonce))
            #expect(badNonce.code == "INCORRECT_NONCE_ERR")
            #expect(badNonce.reason["message"] as? String == "The encrypted nonce given does not match existing record: Please ensure the correct nonce was given in the request")
            var wrongIV = body
            wrongIV["iv"] = Data(AES.GCM.Nonce()).base64EncodedString()
            let badIV = try await h.call(.post, "/api/v2/keys", json: Harness.keyBody("bad", extra: wrongIV))
            #expect(badIV.code == "INCORRECT_NONCE_IV_ERR")
            #expect(badIV.reason["message"] as? String == "The provided encrypted nonce was not encrypted with the key material given OR the provided IV does not match the encrypted nonce")

            #expect(try await h.call(.get, "/api/v2/import_token").status == .ok)
            let expired = try await h.call(.get, "/api/v2/import_token")
            #expect(expired.code == "IMPORT_TOKEN_EXPIRED_ERR" && expired.reason["message"] as? String == "The import token has expired")
            let tooShort = try await h.call(.post, "/api/v2/import_token", json: ["expiration": 10])
            #expect(tooShort.code == "INVALID_FIELD_ERR")
        }
    }

    @Test func unknownRoutesAndDevClock() async throws {
        try await Harness.run { h in
            let unknown = try await h.call(.get, "/api/v2/nothing-here")
            #expect(unknown.status == .notFound && unknown.metadata["collectionType"] as? String == "application/vnd.ibm.kms.error+json")

            let read = try await h.call(.get, "/api/v2/_dev/clock", instance: nil)
            #expect(read.json["now"] as? String == "2026-01-01T00:00:00Z")
            let set = try await h.call(.post, "/api/v2/_dev/clock", json: ["set": "2026-01-02T00:00:00Z"], instance: nil)
            #expect(set.json["now"] as? String == "2026-01-02T00:00:00Z")
            #expect(try await h.call(.post, "/api/v2/_dev/clock", json: ["set": "2025-01-01T00:00:00Z"], instance: nil).code == "INVALID_FIELD_ERR")
            #expect(try await h.call(.post, "/api/v2/_dev/clock", json: ["advance": "soon"], instance: nil).code == "INVALID_FIELD_ERR")
            #expect(try await h.call(.get, "/api/v2/_dev/clock", token: nil, instance: nil).status == .unauthorized)

            // Expiry falls due when the dev clock moves.
            let expiring = try await h.createKey("expiring", extra: ["expirationDate": "2026-01-02T01:00:00Z"])
            let id = try #require(expiring["id"] as? String)
            _ = try await h.advance("2h")
            #expect(try await h.call(.get, "/api/v2/keys/\(id)").first["state"] as? Int == 3)
        }
        try await Harness.run(devClock: false) { h in
            let absent = try await h.call(.get, "/api/v2/_dev/clock", instance: nil)
            #expect(absent.status == .notFound && absent.code == "NOT_FOUND_ERR")
        }
    }
}

@Suite struct ServerPreparationTests {
    @Test func refusesToStartWithoutMasterKeyOrAccessFile() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("serve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var options = ServeOptions(databasePath: dir.appendingPathComponent("k.sqlite").path)
        await #expect(throws: KeyRelayError.self) { _ = try await KeyRelayServer.prepare(options, environment: [:]) }
        let keyFile = dir.appendingPathComponent("master.key").path
        try Data((MasterKey.generate().base64EncodedString() + "\n").utf8).write(to: URL(fileURLWithPath: keyFile))
        options.masterKeyFile = keyFile
        await #expect(throws: KeyRelayError.self) { _ = try await KeyRelayServer.prepare(options, environment: [:]) }
        options.manualClock = true
        await #expect(throws: KeyRelayError.self) { _ = try await KeyRelayServer.prepare(options, environment: [:]) }
    }

    @Test func devModeGeneratesAPrivateMasterKeyAndAToken() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("serve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var options = ServeOptions(databasePath: dir.appendingPathComponent("k.sqlite").path)
        options.dev = true
        options.manualClock = true
        options.devToken = "dev-token-0123456789"
        let prepared = try await KeyRelayServer.prepare(options, environment: [:])
        #expect(prepared.devToken == "dev-token-0123456789")
        #expect(prepared.notices.contains { $0.hasPrefix("WARNING") })
        let attributes = try FileManager.default.attributesOfItem(atPath: options.databasePath + ".master-key")
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let grant = try #require(prepared.api.access.grant(forToken: "dev-token-0123456789"))
        #expect(grant.roles == [.manager, .keyPurge, .service] && grant.covers(instance: "any-instance"))
        #expect(prepared.api.devClock != nil)
    }
}
