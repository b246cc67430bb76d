import Foundation
import KeyRelay

// The request bodies' wire types, one per Key Protect media type. Decoding is strict about types (a JSON `1` is
// not a boolean, `true` is not an integer); every refusal is Key Protect's (see `WireJSON.decode`).

/// `POST /keys` and `/keys_with_policy_overrides` (`application/vnd.ibm.kms.key+json`, reference §1.1a).
struct KeyCreateRequest: WireRequest {
    static let operation = "Key could not be created"
    struct Resource: Decodable, Sendable {
        struct Enabled: Decodable, Sendable { var enabled: WireBool? }
        struct Rotation: Decodable, Sendable {
            var enabled: WireBool?
            var intervalMonth: WireInt?
            enum CodingKeys: String, CodingKey {
                case enabled
                case intervalMonth = "interval_month"
            }
        }
        var name: String
        var description: String?
        var tags: [String]?
        var aliases: [String]?
        var extractable: WireBool?
        var expirationDate: String?
        var payload: String?
        var encryptedNonce: String?
        var iv: String?
        var encryptionAlgorithm: String?
        var dualAuthDelete: Enabled?
        var rotation: Rotation?
    }
    var envelope: WireCollection<Resource>

    init(from decoder: any Decoder) throws {
        envelope = try WireCollection<Resource>(from: decoder)
    }

    /// The one key to create: Key Protect creates one key per request.
    func resource() throws -> Resource {
        guard envelope.resources.count == 1, let resource = envelope.resources.first else {
            throw KeyRelayError(.badBody, "Invalid body data was passed: Please ensure the data passed had valid formatting with no invalid characters: Only creation of one key per request is supported",
                                operation: Self.operation)
        }
        return resource
    }
}

/// Key material in a create or rotate body: plain `payload`, or with `encryptedNonce` and `iv` a payload
/// encrypted to the instance's import token.
struct KeyMaterialFields: Sendable {
    var payload: String?
    var encryptedNonce: String?
    var iv: String?
    var encryptionAlgorithm: String?

    enum Material {
        case none
        case plain(Data)
        case encrypted(EncryptedKeyMaterial)
    }

    func material(operation: String) throws -> Material {
        guard let text = payload else { return .none }
        let payload = try base64(text, field: "payload", requirement: "a base64 encoded key material", operation: operation)
        guard encryptedNonce != nil || iv != nil else { return .plain(payload) }
        guard let nonceText = encryptedNonce else {
            throw KeyRelayError(.invalidField, "The field 'encryptedNonce' must be: a string (it is required)", operation: operation,
                                target: ErrorTarget(.field, "encryptedNonce"))
        }
        guard let ivText = iv else {
            throw KeyRelayError(.invalidField, "The field 'iv' must be: a string (it is required)", operation: operation,
                                target: ErrorTarget(.field, "iv"))
        }
        let nonce = try base64(nonceText, field: "encryptedNonce", requirement: "the base64 encoded nonce encrypted with the key material (AES-GCM)",
                               operation: operation)
        let vector = try base64(ivText, field: "iv", requirement: "the base64 encoded initialization vector used to encrypt the nonce",
                                operation: operation)
        let name = encryptionAlgorithm ?? ImportEncryptionAlgorithm.rsaOAEPSHA256.rawValue
        guard let algorithm = ImportEncryptionAlgorithm(rawValue: name) else {
            throw KeyRelayError(.invalidField, "The field 'encryptionAlgorithm' must be: RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1",
                                operation: operation, target: ErrorTarget(.field, "encryptionAlgorithm"))
        }
        return .encrypted(EncryptedKeyMaterial(payload: payload, encryptedNonce: nonce, iv: vector, algorithm: algorithm))
    }
}

/// Base64 text of a field, or `INVALID_FIELD_ERR` naming it.
func base64(_ text: String, field: String, requirement: String = "a base64 encoded key material", operation: String) throws(KeyRelayError) -> Data {
    guard let data = Data(base64Encoded: text) else {
        throw KeyRelayError(.invalidField, "The field '\(field)' must be: \(requirement)", operation: operation, target: ErrorTarget(.field, field))
    }
    return data
}

/// An RFC 3339 date field, or `INVALID_FIELD_ERR` naming it.
func date(_ text: String, field: String, operation: String) throws(KeyRelayError) -> Date {
    guard let date = Timestamp.parse(text) else {
        throw KeyRelayError(.invalidField, "The field '\(field)' must be: an RFC 3339 date, e.g. 2030-01-01T00:00:00Z", operation: operation,
                            target: ErrorTarget(.field, field))
    }
    return date
}

/// `PATCH /keys/{id}`: `{"keyRingID": "<ring>"}`, plain as the official client sends it, or in an envelope. IBM's Go
/// client spells the field `KeyRingID` (its struct field has no json tag): both are accepted.
struct KeyPatchRequest: WireRequest {
    static let operation = "Key could not be patched"
    struct Resource: Decodable, Sendable {
        var keyRingID: String
        enum CodingKeys: String, CodingKey {
            case keyRingID
            case goSpelling = "KeyRingID"
        }
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            if container.contains(.keyRingID) || !container.contains(.goSpelling) {
                keyRingID = try container.decode(String.self, forKey: .keyRingID)
            } else {
                keyRingID = try container.decode(String.self, forKey: .goSpelling)
            }
        }
    }
    var keyRingID: String

    enum CodingKeys: String, CodingKey { case resources }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if container.contains(.resources) {
            keyRingID = try WireCollection<Resource>(from: decoder).single().keyRingID
        } else {
            keyRingID = try Resource(from: decoder).keyRingID
        }
    }
}

/// `POST …/actions/wrap` (`application/vnd.ibm.kms.key_action_wrap+json`).
struct WrapRequest: WireRequest {
    static let operation = "Wrap with key could not be performed"
    var plaintext: String?
    var aad: [String]?
}

/// `POST …/actions/unwrap` (`application/vnd.ibm.kms.key_action_unwrap+json`).
struct UnwrapRequest: WireRequest {
    static let operation = "Unwrap with key could not be performed"
    var ciphertext: String
    var aad: [String]?
}

/// `POST …/actions/rewrap` (`application/vnd.ibm.kms.key_action_rewrap+json`).
struct RewrapRequest: WireRequest {
    static let operation = "Rewrap with key could not be performed"
    var ciphertext: String
    var aad: [String]?
}

/// `POST …/actions/rotate` (`application/vnd.ibm.kms.key_action_rotate+json`): `{}`, or an imported key's new
/// material.
struct RotateRequest: WireRequest {
    static let operation = KeyAction.rotate.operation
    var payload: String?
    var encryptedNonce: String?
    var iv: String?
    var encryptionAlgorithm: String?
    var material: KeyMaterialFields {
        KeyMaterialFields(payload: payload, encryptedNonce: encryptedNonce, iv: iv, encryptionAlgorithm: encryptionAlgorithm)
    }
}

/// `PUT /keys/{id}/policies` (`application/vnd.ibm.kms.policy+json`).
struct KeyPolicyRequest: WireRequest {
    static let operation = "Key policies could not be set"
    struct Resource: Decodable, Sendable {
        var rotation: KeyCreateRequest.Resource.Rotation?
        var dualAuthDelete: KeyCreateRequest.Resource.Enabled?
    }
    var envelope: WireCollection<Resource>
    init(from decoder: any Decoder) throws { envelope = try WireCollection<Resource>(from: decoder) }
}

/// `PUT /instance/policies` (`application/vnd.ibm.kms.policy+json`).
struct InstancePolicyRequest: WireRequest {
    static let operation = "Instance policy could not be created"
    struct Resource: Decodable, Sendable {
        struct PolicyData: Decodable, Sendable {
            var enabled: WireBool?
            /// An object when present: a string, number, array or null is refused (400 `INVALID_FIELD_ERR`).
            var attributes: JSONValue?
            enum CodingKeys: String, CodingKey { case enabled, attributes }
            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                enabled = try container.decodeIfPresent(WireBool.self, forKey: .enabled)
                guard container.contains(.attributes) else { return }
                let value = try container.decode(JSONValue.self, forKey: .attributes)
                guard case .object = value else { throw WireFailure.field("attributes", "an object") }
                attributes = value
            }
        }
        var policyType: String
        var policyData: PolicyData?
        enum CodingKeys: String, CodingKey {
            case policyType = "policy_type"
            case policyData = "policy_data"
        }
    }
    var envelope: WireCollection<Resource>
    init(from decoder: any Decoder) throws { envelope = try WireCollection<Resource>(from: decoder) }
}

/// Service-to-service registration create/replace/update (`application/vnd.ibm.kms.registration_input+json`).
struct RegistrationInputRequest: WireRequest {
    static let operation = KeyRelayEngine.registrationOperation
    struct Resource: Decodable, Sendable {
        var description: String?
        var registrationMetadata: String?
        var preventKeyDeletion: WireBool?
        var keyVersionId: String?
    }
    var envelope: WireCollection<Resource>
    init(from decoder: any Decoder) throws { envelope = try WireCollection<Resource>(from: decoder) }
}

/// `POST /event_ack` (`application/vnd.ibm.kms.event_acknowledge+json`, reference §1.6).
struct EventAcknowledgeRequest: WireRequest {
    static let operation = "Event could not be acknowledged"
    struct Resource: Decodable, Sendable {
        struct KeyStateData: Decodable, Sendable {
            var rewrappedKeyVersion: String?
            var keyVersion: String?
        }
        var eventId: String
        var adopterKeyState: String
        var timestamp: String?
        var keyStateData: KeyStateData?
        /// KeyRelay extension: the acknowledging resource.
        var resourceCrn: String?
        var deleteRegistration: WireBool?
    }
    var envelope: WireCollection<Resource>
    init(from decoder: any Decoder) throws { envelope = try WireCollection<Resource>(from: decoder) }
}

/// `POST /import_token` (`application/json`).
struct ImportTokenRequest: WireRequest {
    static let operation = "Import Token could not be created"
    var expiration: WireInt?
    var maxAllowedRetrievals: WireInt?
}

/// `POST /_dev/clock` (KeyRelay extension): `{"advance": "1h 1s"}` or `{"set": "<RFC 3339>"}`.
struct ClockRequest: WireRequest {
    static let operation = "Clock could not be moved"
    var advance: String?
    var set: String?
}
