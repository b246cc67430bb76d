import Foundation
import KeyRelay
@testable import KeyRelayAdapters
import Testing

/// How the HTTP adopter client turns Key Protect's answers into errors (the adapters branch on `KeyRelayError`).
@Suite("Key Protect adopter client")
struct KeyProtectAdopterClientTests {
    @Test("an error envelope with a known reason code becomes that KeyRelayError")
    func knownReasonCode() throws {
        let body: [String: Any] = [
            "metadata": ["collectionType": "application/vnd.ibm.kms.error+json", "collectionTotal": 1],
            "resources": [["errorMsg": "Conflict: Unwrap with key could not be performed: Please see 'reasons' for more details (KEY_ACTION_INVALID_STATE_ERR)",
                           "reasons": [["code": "KEY_ACTION_INVALID_STATE_ERR", "message": "Key is not in a valid state", "status": 409,
                                        "target": ["type": "field", "name": "ciphertext"]]]]],
        ]
        let error = try #require(KeyProtectAdopterClient.failure("unwrap with key k1", status: 409, body: body) as? KeyRelayError)
        #expect(error.code == .keyActionInvalidState)
        #expect(error.message == "Key is not in a valid state")
        #expect(error.target == ErrorTarget(.field, "ciphertext"))
    }

    @Test("a bare 401 is UNAUTHORIZED_ERR; an unknown code keeps its text; no envelope keeps the status")
    func otherAnswers() throws {
        let unauthorized = try #require(KeyProtectAdopterClient.failure("wrap", status: 401, body: ["errorMsg": "Unauthorized"]) as? KeyRelayError)
        #expect(unauthorized.code == .unauthorized)
        let unknown = try #require(KeyProtectAdopterClient.failure("wrap", status: 418, body: [
            "resources": [["reasons": [["code": "TEAPOT_ERR", "message": "short and stout"]]]],
        ]) as? KeyProtectClientError)
        #expect(unknown.reasonCode == "TEAPOT_ERR")
        #expect(unknown.status == 418)
        #expect(unknown.description.contains("short and stout"))
        let bare = try #require(KeyProtectAdopterClient.failure("wrap", status: 502, body: nil) as? KeyProtectClientError)
        #expect(bare.reasonCode == nil)
        #expect(bare.description.contains("502"))
    }

    @Test("the token is in no description; a CRN is one percent-encoded path segment")
    func noTokenAndEncodedCRN() async throws {
        let client = KeyProtectAdopterClient(baseURL: URL(string: "http://127.0.0.1:9/api/v2/")!, token: "secret-token-123", instanceID: "i-1")
        #expect(client.baseURL.absoluteString == "http://127.0.0.1:9")
        #expect(!client.description.contains("secret-token-123"))
        let path = client.registrationPath("k1", "crn:v1:bluemix:public:cloud-object-storage:global:a/acct:cos-1:bucket:b")
        #expect(path == "/api/v2/keys/k1/registrations/crn%3Av1%3Abluemix%3Apublic%3Acloud-object-storage%3Aglobal%3Aa%2Facct%3Acos-1%3Abucket%3Ab")
        // Nothing listens on port 9: a clear error, without the token.
        await #expect(throws: KeyProtectClientError.self) {
            try await client.unwrapDEK(keyID: "k1", ciphertext: "x", aad: [])
        }
        do {
            _ = try await client.unwrapDEK(keyID: "k1", ciphertext: "x", aad: [])
        } catch {
            #expect(!String(describing: error).contains("secret-token-123"))
        }
        try await client.shutdown()
    }
}
