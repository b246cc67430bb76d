import Foundation
import HTTPTypes
import KeyRelay
@testable import KeyRelayHTTP
import Testing

/// KMIP adapter management (reference §1.5): the eleven operations of IBM's client, their statuses, media types
/// and refusals.
@Suite struct KMIPAPITests {
    /// A self-signed P-256 client certificate valid from 2026-12-01 to 2036-11-28.
    static let certificatePEM = """
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

    static func adapterBody(_ crkID: String?, name: String? = "adapter-1", profile: String = "native_1.0") -> [String: Any] {
        var resource: [String: Any] = ["profile": profile, "description": "test adapter"]
        if let name { resource["name"] = name }
        if let crkID { resource["profile_data"] = ["crk_id": crkID] }
        return Harness.envelope(MediaTypes.kmipAdapter, [resource])
    }

    static func certificateBody(_ pem: String, name: String? = "cert-1") -> [String: Any] {
        var resource: [String: Any] = ["certificate": pem]
        if let name { resource["name"] = name }
        return Harness.envelope(MediaTypes.kmipClientCertificate, [resource])
    }

    /// A root key and an adapter on it: (key id, adapter id).
    static func adapter(_ h: Harness, name: String = "adapter-1") async throws -> (String, String) {
        let key = try #require(try await h.createKey("kmip-root-\(name)")["id"] as? String)
        let created = try await h.call(.post, "/api/v2/kmip_adapters", json: adapterBody(key, name: name))
        guard created.status == .created else { throw TestFailure("adapter: \(created.status) \(created.text)") }
        return (key, try #require(created.first["id"] as? String))
    }

    @Test func adaptersAreCreatedListedReadByIdOrNameAndDeleted() async throws {
        try await Harness.run { h in
            let key = try #require(try await h.createKey("kmip-root")["id"] as? String)
            let created = try await h.call(.post, "/api/v2/kmip_adapters", json: Self.adapterBody(key))
            #expect(created.status == .created)
            #expect(created.contentType == MediaTypes.json)
            #expect(created.metadata["collectionType"] as? String == MediaTypes.kmipAdapter)
            let adapter = created.first
            let id = try #require(adapter["id"] as? String)
            #expect(adapter["name"] as? String == "adapter-1")
            #expect(adapter["profile"] as? String == "native_1.0")
            #expect((adapter["profile_data"] as? [String: Any])?["crk_id"] as? String == key)
            #expect(adapter["created_at"] as? String == "2026-01-01T00:00:00Z")
            #expect(adapter["created_by"] as? String == "manager")
            #expect(adapter["updated_by"] as? String == "manager")

            let list = try await h.call(.get, "/api/v2/kmip_adapters?totalCount=true", token: Tokens.reader)
            #expect(list.status == .ok && list.resources.count == 1 && list.metadata["totalCount"] as? Int == 1)
            #expect(try await h.call(.get, "/api/v2/kmip_adapters?crk_id=\(key)").resources.count == 1)
            #expect(try await h.call(.get, "/api/v2/kmip_adapters?crk_id=00000000-0000-4000-8000-000000000000").resources.isEmpty)
            #expect(try await h.call(.get, "/api/v2/kmip_adapters?limit=201").code == "INVALID_QUERY_PARAM_ERR")

            #expect(try await h.call(.get, "/api/v2/kmip_adapters/\(id)").first["id"] as? String == id)
            #expect(try await h.call(.get, "/api/v2/kmip_adapters/adapter-1").first["id"] as? String == id)

            // Another instance sees none of it.
            #expect(try await h.call(.get, "/api/v2/kmip_adapters", token: Tokens.otherInstance, instance: instanceB).resources.isEmpty)
            #expect(try await h.call(.get, "/api/v2/kmip_adapters/\(id)", token: Tokens.otherInstance, instance: instanceB).status == .notFound)
            // A reader cannot create or delete.
            #expect(try await h.call(.delete, "/api/v2/kmip_adapters/\(id)", token: Tokens.reader).status == .unauthorized)

            #expect(try await h.call(.delete, "/api/v2/kmip_adapters/adapter-1").status == .noContent)
            let gone = try await h.call(.get, "/api/v2/kmip_adapters/\(id)")
            #expect(gone.status == .notFound && gone.code == "NOT_FOUND_ERR")
            #expect(try await h.call(.delete, "/api/v2/kmip_adapters/\(id)").status == .notFound)
        }
    }

    @Test func anAdapterNeedsAnActiveRootKeyAndTheNativeProfile() async throws {
        try await Harness.run { h in
            let root = try #require(try await h.createKey("root")["id"] as? String)
            let standard = try #require(try await h.createKey("standard", extractable: true)["id"] as? String)
            let expiring = try #require(try await h.createKey("expiring", extra: ["expirationDate": "2027-01-01T00:00:00Z"])["id"] as? String)

            #expect(try await h.call(.post, "/api/v2/kmip_adapters", json: Self.adapterBody(root, profile: "kmip_2.0")).code == "INVALID_FIELD_ERR")
            #expect(try await h.call(.post, "/api/v2/kmip_adapters", json: Self.adapterBody(nil)).code == "INVALID_FIELD_ERR")
            #expect(try await h.call(.post, "/api/v2/kmip_adapters", json: Self.adapterBody(standard)).code == "KEY_ROOT_REQ_ERR")
            #expect(try await h.call(.post, "/api/v2/kmip_adapters", json: Self.adapterBody("00000000-0000-4000-8000-000000000000")).code == "KEY_NOT_FOUND_ERR")
            #expect(try await h.call(.post, "/api/v2/kmip_adapters", json: Self.adapterBody(root, name: "x")).code == "INVALID_FIELD_ERR")
            #expect(try await h.call(.post, "/api/v2/kmip_adapters", json: Harness.envelope(MediaTypes.kmipAdapter, [])).code == "NUM_COLLECTION_RESOURCE_ERR")
            #expect(try await h.call(.post, "/api/v2/kmip_adapters").code == "NO_BODY_ERR")

            let refusedExpiring = try await h.call(.post, "/api/v2/kmip_adapters", json: Self.adapterBody(expiring, name: "exp"))
            #expect(refusedExpiring.status == .badRequest && refusedExpiring.code == "INVALID_FIELD_ERR")
            #expect(try await h.call(.post, "/api/v2/kmip_adapters?allowExpiringKey=true", json: Self.adapterBody(expiring, name: "exp")).status == .created)

            #expect(try await h.call(.post, "/api/v2/kmip_adapters", json: Self.adapterBody(root)).status == .created)
            let duplicate = try await h.call(.post, "/api/v2/kmip_adapters", json: Self.adapterBody(root))
            #expect(duplicate.status == .conflict && duplicate.code == "KMIP_NAME_NOT_UNIQUE_ERR")

            // A disabled key cannot take a new adapter.
            let other = try #require(try await h.createKey("other")["id"] as? String)
            #expect(try await h.call(.post, "/api/v2/keys/\(other)/actions/disable").status == .noContent)
            let suspended = try await h.call(.post, "/api/v2/kmip_adapters", json: Self.adapterBody(other, name: "on-disabled"))
            #expect(suspended.status.code == 422 && suspended.code == "KEY_INVALID_STATE_ERR")

            // Without a name the adapter is named by its id.
            let unnamed = try await h.call(.post, "/api/v2/kmip_adapters", json: Self.adapterBody(root, name: nil))
            #expect(unnamed.first["name"] as? String == unnamed.first["id"] as? String)
        }
    }

    @Test func aKeyWithAnAdapterCannotBeDeletedEvenWithForce() async throws {
        try await Harness.run { h in
            let (key, adapter) = try await Self.adapter(h)
            let refused = try await h.call(.delete, "/api/v2/keys/\(key)?force=true")
            #expect(refused.status == .conflict && refused.code == "PROTECTED_RESOURCE_ERR")
            #expect((refused.reason["message"] as? String)?.contains("adapter-1") == true)
            #expect(try await h.call(.delete, "/api/v2/kmip_adapters/\(adapter)").status == .noContent)
            #expect(try await h.call(.delete, "/api/v2/keys/\(key)").status == .ok)
        }
    }

    @Test func theKeyRingScopeReachesAdaptersThroughTheirKey() async throws {
        try await Harness.run { h in
            #expect(try await h.call(.post, "/api/v2/key_rings/ring-a").status == .created)
            let (_, adapter) = try await Self.adapter(h)
            let scoped = try await h.call(.get, "/api/v2/kmip_adapters/\(adapter)", headers: ["X-Kms-Key-Ring": "ring-a"])
            #expect(scoped.code == "KEY_RING_MISMATCH_ERR")
            #expect(try await h.call(.get, "/api/v2/kmip_adapters", headers: ["X-Kms-Key-Ring": "ring-a"]).resources.isEmpty)
            #expect(try await h.call(.get, "/api/v2/kmip_adapters", headers: ["X-Kms-Key-Ring": "default"]).resources.count == 1)
        }
    }

    @Test func clientCertificatesAreParsedAddedListedAndRemoved() async throws {
        try await Harness.run { h in
            let (_, adapter) = try await Self.adapter(h)
            let added = try await h.call(.post, "/api/v2/kmip_adapters/\(adapter)/certificates", json: Self.certificateBody(Self.certificatePEM))
            #expect(added.status == .created)
            // The client's callers call `.json()` on this answer: a vendor media type (reference §0).
            #expect(added.contentType == MediaTypes.kmipClientCertificate)
            #expect(added.metadata["collectionType"] as? String == MediaTypes.kmipClientCertificate)
            let certificate = added.first
            let id = try #require(certificate["id"] as? String)
            #expect(certificate["name"] as? String == "cert-1")
            #expect(certificate["certificate"] as? String == Self.certificatePEM)
            #expect(certificate["created_by"] as? String == "manager")

            let list = try await h.call(.get, "/api/v2/kmip_adapters/adapter-1/certificates?totalCount=true")
            #expect(list.status == .ok && list.contentType == MediaTypes.json && list.metadata["totalCount"] as? Int == 1)
            #expect(list.first["id"] as? String == id && list.first["certificate"] == nil)

            let byName = try await h.call(.get, "/api/v2/kmip_adapters/\(adapter)/certificates/cert-1")
            #expect(byName.first["id"] as? String == id && byName.first["certificate"] as? String == Self.certificatePEM)
            #expect(try await h.call(.get, "/api/v2/kmip_adapters/\(adapter)/certificates/\(id)").status == .ok)

            let duplicate = try await h.call(.post, "/api/v2/kmip_adapters/\(adapter)/certificates", json: Self.certificateBody(Self.certificatePEM))
            #expect(duplicate.status == .conflict && duplicate.code == "KMIP_NAME_NOT_UNIQUE_ERR")

            #expect(try await h.call(.delete, "/api/v2/kmip_adapters/\(adapter)/certificates/\(id)").status == .noContent)
            let gone = try await h.call(.get, "/api/v2/kmip_adapters/\(adapter)/certificates/\(id)")
            #expect(gone.status == .notFound && gone.code == "NOT_FOUND_ERR")

            // Deleting the adapter deletes its certificates.
            #expect(try await h.call(.post, "/api/v2/kmip_adapters/\(adapter)/certificates", json: Self.certificateBody(Self.certificatePEM)).status == .created)
            #expect(try await h.call(.delete, "/api/v2/kmip_adapters/\(adapter)").status == .noContent)
            #expect(try await h.call(.get, "/api/v2/kmip_adapters/\(adapter)/certificates").status == .notFound)
        }
    }

    @Test func aBadPEMIsABadRequest() async throws {
        try await Harness.run { h in
            let (_, adapter) = try await Self.adapter(h)
            let path = "/api/v2/kmip_adapters/\(adapter)/certificates"
            for pem in ["not a certificate",
                        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                        Self.certificatePEM.replacingOccurrences(of: "CERTIFICATE", with: "PUBLIC KEY"),
                        Self.certificatePEM + Self.certificatePEM] {
                let refused = try await h.call(.post, path, json: Self.certificateBody(pem))
                #expect(refused.status == .badRequest && refused.code == "INVALID_FIELD_ERR", "\(pem.prefix(40))")
                #expect((refused.reason["target"] as? [String: Any])?["name"] as? String == "certificate")
            }
            #expect(try await h.call(.post, path, json: Harness.envelope(MediaTypes.kmipClientCertificate, [["name": "no-pem"]])).code == "INVALID_FIELD_ERR")
            // An unknown adapter is 404.
            let unknown = try await h.call(.post, "/api/v2/kmip_adapters/nobody/certificates", json: Self.certificateBody(Self.certificatePEM))
            #expect(unknown.status == .notFound && unknown.code == "NOT_FOUND_ERR")
            // Expired on the engine's clock.
            #expect(try await h.call(.post, "/api/v2/_dev/clock", json: ["set": "2037-01-01T00:00:00Z"], instance: nil).status == .ok)
            let expired = try await h.call(.post, path, json: Self.certificateBody(Self.certificatePEM))
            #expect(expired.code == "INVALID_FIELD_ERR" && (expired.reason["message"] as? String)?.contains("expired") == true)
        }
    }

    @Test func objectsAreEmptyUntilAKMIPEndpointExists() async throws {
        try await Harness.run { h in
            let (_, adapter) = try await Self.adapter(h)
            let list = try await h.call(.get, "/api/v2/kmip_adapters/\(adapter)/kmip_objects?totalCount=true&state=")
            #expect(list.status == .ok && list.resources.isEmpty && list.metadata["collectionType"] as? String == MediaTypes.kmipObject)
            #expect(list.metadata["totalCount"] as? Int == 0)
            #expect(try await h.call(.get, "/api/v2/kmip_adapters/\(adapter)/kmip_objects?state=2,3").status == .ok)
            #expect(try await h.call(.get, "/api/v2/kmip_adapters/\(adapter)/kmip_objects?state=7").code == "INVALID_QUERY_PARAM_ERR")
            #expect(try await h.call(.get, "/api/v2/kmip_adapters/\(adapter)/kmip_objects?limit=5001").code == "INVALID_QUERY_PARAM_ERR")
            let object = "00000000-0000-4000-8000-000000000001"
            let missing = try await h.call(.get, "/api/v2/kmip_adapters/\(adapter)/kmip_objects/\(object)")
            #expect(missing.status == .notFound && missing.code == "NOT_FOUND_ERR")
            #expect(try await h.call(.delete, "/api/v2/kmip_adapters/\(adapter)/kmip_objects/\(object)?force=true").status == .notFound)
            #expect(try await h.call(.get, "/api/v2/kmip_adapters/nobody/kmip_objects").status == .notFound)
        }
    }
}
