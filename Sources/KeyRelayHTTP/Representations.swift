import Crypto
import Foundation
import KeyRelay

// The answers' wire types, one per Key Protect media type (field names as Key Protect spells them; an absent
// optional is omitted, never `null`).

/// `{id, creationDate}` of a key version (`application/vnd.ibm.kms.key.version+json`); registrations and keys
/// carry one too.
struct KeyVersionRepresentation: Codable, Sendable {
    var id: String
    var creationDate: String
    enum CodingKeys: String, CodingKey { case id, creationDate }
    init(_ version: KeyVersion) {
        id = version.id
        creationDate = Timestamp.format(version.creationDate)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try encode(into: &container)
    }

    /// The members, into a container of the caller's (``KeyRepresentation`` nests it without a nested encoder).
    func encode(into container: inout KeyedEncodingContainer<CodingKeys>) throws {
        try container.encode(id, forKey: .id)
        try container.encode(creationDate, forKey: .creationDate)
    }
}

/// `{id}` of the version a wrap, unwrap or rewrap used.
struct KeyVersionReference: Codable, Sendable {
    var id: String
}

/// `KeyFullRepresentation` / `KeyWithPayload` (`application/vnd.ibm.kms.key+json`, reference §2.1).
struct KeyRepresentation: Codable, Sendable {
    struct AlgorithmMetadata: Codable, Sendable {
        var bitLength = "256"
        var mode = "Deprecated"
        enum CodingKeys: String, CodingKey { case bitLength, mode }
        /// The members, into a container of ``KeyRepresentation``'s (see its `encode(to:)`).
        func encode(into container: inout KeyedEncodingContainer<CodingKeys>) throws {
            try container.encode(bitLength, forKey: .bitLength)
            try container.encode(mode, forKey: .mode)
        }
    }
    struct DualAuthDelete: Codable, Sendable {
        var enabled: Bool
        var keySetForDeletion: Bool?
        var authExpiration: String?
        enum CodingKeys: String, CodingKey { case enabled, keySetForDeletion, authExpiration }
        /// The members, into a container of ``KeyRepresentation``'s (see its `encode(to:)`).
        func encode(into container: inout KeyedEncodingContainer<CodingKeys>) throws {
            try container.encode(enabled, forKey: .enabled)
            try container.encodeIfPresent(keySetForDeletion, forKey: .keySetForDeletion)
            try container.encodeIfPresent(authExpiration, forKey: .authExpiration)
        }
    }
    struct Rotation: Codable, Sendable {
        var enabled: Bool
        var intervalMonth: Int
        enum CodingKeys: String, CodingKey {
            case enabled
            case intervalMonth = "interval_month"
        }
        init(_ policy: RotationPolicy) {
            enabled = policy.enabled
            intervalMonth = policy.intervalMonth
        }
        /// The members, into a container of ``KeyRepresentation``'s (see its `encode(to:)`).
        func encode(into container: inout KeyedEncodingContainer<CodingKeys>) throws {
            try container.encode(enabled, forKey: .enabled)
            try container.encode(intervalMonth, forKey: .intervalMonth)
        }
    }

    var type = MediaTypes.key
    var id: String
    var name: String
    var aliases: [String]
    var tags: [String]
    var description: String?
    var state: Int
    var extractable: Bool
    var crn: String
    var imported: Bool
    var keyRingID: String
    var creationDate: String
    var createdBy: String
    var expirationDate: String?
    var algorithmType = "Deprecated"
    var algorithmMetadata = AlgorithmMetadata()
    var algorithmBitSize = 256
    var algorithmMode = "Deprecated"
    var lastUpdateDate: String
    var lastRotateDate: String?
    var keyVersion: KeyVersionRepresentation
    var dualAuthDelete: DualAuthDelete
    var rotation: Rotation?
    var deleted: Bool
    var deletionDate: String?
    var deletedBy: String?
    var restoreExpirationDate: String?
    var restoreAllowed: Bool?
    var purgeAllowedFrom: String?
    var purgeAllowed: Bool?
    var purgeScheduledOn: String?
    /// Only for a standard key on `GET /keys/{id}`.
    var payload: String?
}

extension KeyRepresentation {
    /// What the synthesized `encode(to:)` writes, with the four small objects (each writing its own members,
    /// `encode(into:)`) and the two lists written into nested containers of this one. Foundation's `JSONEncoder` encodes a nested `Encodable` value through a new encoder of
    /// its own (type checks for dates, data and URLs, an encoder object, its storage taken back); a nested container
    /// is a member of this encoder's tree. ≈ 18,000 fewer instructions per key (docs/performance.md, issue 10). The
    /// bytes are the same: `KeyRepresentationEncodingTests` decodes a key with every member set through the
    /// synthesized `init(from:)`, so a member missing here fails there.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(type, forKey: .type)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        var aliasList = container.nestedUnkeyedContainer(forKey: .aliases)
        for alias in aliases { try aliasList.encode(alias) }
        var tagList = container.nestedUnkeyedContainer(forKey: .tags)
        for tag in tags { try tagList.encode(tag) }
        try container.encodeIfPresent(description, forKey: .description)
        try container.encode(state, forKey: .state)
        try container.encode(extractable, forKey: .extractable)
        try container.encode(crn, forKey: .crn)
        try container.encode(imported, forKey: .imported)
        try container.encode(keyRingID, forKey: .keyRingID)
        try container.encode(creationDate, forKey: .creationDate)
        try container.encode(createdBy, forKey: .createdBy)
        try container.encodeIfPresent(expirationDate, forKey: .expirationDate)
        try container.encode(algorithmType, forKey: .algorithmType)
        var algorithm = container.nestedContainer(keyedBy: AlgorithmMetadata.CodingKeys.self, forKey: .algorithmMetadata)
        try algorithmMetadata.encode(into: &algorithm)
        try container.encode(algorithmBitSize, forKey: .algorithmBitSize)
        try container.encode(algorithmMode, forKey: .algorithmMode)
        try container.encode(lastUpdateDate, forKey: .lastUpdateDate)
        try container.encodeIfPresent(lastRotateDate, forKey: .lastRotateDate)
        var version = container.nestedContainer(keyedBy: KeyVersionRepresentation.CodingKeys.self, forKey: .keyVersion)
        try keyVersion.encode(into: &version)
        var dualAuth = container.nestedContainer(keyedBy: DualAuthDelete.CodingKeys.self, forKey: .dualAuthDelete)
        try dualAuthDelete.encode(into: &dualAuth)
        if let rotation {
            var policy = container.nestedContainer(keyedBy: Rotation.CodingKeys.self, forKey: .rotation)
            try rotation.encode(into: &policy)
        }
        try container.encode(deleted, forKey: .deleted)
        try container.encodeIfPresent(deletionDate, forKey: .deletionDate)
        try container.encodeIfPresent(deletedBy, forKey: .deletedBy)
        try container.encodeIfPresent(restoreExpirationDate, forKey: .restoreExpirationDate)
        try container.encodeIfPresent(restoreAllowed, forKey: .restoreAllowed)
        try container.encodeIfPresent(purgeAllowedFrom, forKey: .purgeAllowedFrom)
        try container.encodeIfPresent(purgeAllowed, forKey: .purgeAllowed)
        try container.encodeIfPresent(purgeScheduledOn, forKey: .purgeScheduledOn)
        try container.encodeIfPresent(payload, forKey: .payload)
    }
}

/// `GET /keys`'s answer (`ListKeys`): a key collection whose metadata (`CollectionMetadataListKeys`) also says, for a
/// search, how it was parsed (`searchQuery`) and whether it looked through every key (`incompleteSearch`).
struct KeyListRepresentation: Codable, Sendable {
    struct Metadata: Codable, Sendable {
        var collectionType = MediaTypes.key
        var collectionTotal: Int
        var incompleteSearch: Bool?
        var searchQuery: SearchQuery?
    }

    /// `{query, scopes, not, exact}`: the text matched, after the options.
    struct SearchQuery: Codable, Sendable {
        var query: String
        var scopes: [String]
        var not: Bool
        var exact: Bool
    }

    var metadata: Metadata
    var resources: [KeyRepresentation]

    init(resources: [KeyRepresentation], search: KeySearch?, incompleteSearch: Bool) {
        metadata = Metadata(collectionTotal: resources.count, incompleteSearch: search.map { _ in incompleteSearch },
                            searchQuery: search.map {
                                SearchQuery(query: $0.query, scopes: $0.scopes.map(\.rawValue), not: $0.negated, exact: $0.exact)
                            })
        self.resources = resources
    }
}

/// Wrap's answer (`key_action_wrap`): the generated DEK only when the caller sent none.
struct WrapResponse: Codable, Sendable {
    var plaintext: String?
    var ciphertext: String
    var keyVersion: KeyVersionReference
}

/// Unwrap's answer (`key_action_unwrap`): the rewrapped form too when an older version had wrapped it.
struct UnwrapResponse: Codable, Sendable {
    var plaintext: String
    var keyVersion: KeyVersionReference
    var ciphertext: String?
    var rewrappedKeyVersion: KeyVersionReference?
}

/// Rewrap's answer (`key_action_rewrap`).
struct RewrapResponse: Codable, Sendable {
    var ciphertext: String
    var keyVersion: KeyVersionReference
    var rewrappedKeyVersion: KeyVersionReference
}

/// `RegistrationResource` (`application/vnd.ibm.kms.registration+json`, reference §3).
struct RegistrationRepresentation: Codable, Sendable {
    var keyId: String
    var keyName: String?
    var resourceCrn: String
    var createdBy: String
    var creationDate: String
    var updatedBy: String
    var lastUpdated: String
    var description: String?
    var preventKeyDeletion: Bool
    var keyVersion: KeyVersionRepresentation
    /// Only for service callers.
    var registrationMetadata: String?
}

/// A key policy (`application/vnd.ibm.kms.policy+json`, `GetKeyPoliciesOneOf`).
struct PolicyRepresentation: Codable, Sendable {
    struct Enabled: Codable, Sendable { var enabled: Bool }
    var id: String
    var crn: String
    var type = MediaTypes.policy
    var creationDate: String?
    var createdBy: String?
    var lastUpdateDate: String?
    var updatedBy: String?
    var rotation: KeyRepresentation.Rotation?
    var dualAuthDelete: Enabled?
}

/// An instance policy (`application/vnd.ibm.kms.policy+json` under `/instance/policies`).
struct InstancePolicyRepresentation: Codable, Sendable {
    struct PolicyData: Codable, Sendable {
        var enabled: Bool
        var attributes: JSONValue?
    }
    var policyType: String
    var policyData: PolicyData
    var creationDate: String
    var createdBy: String
    var updatedBy: String
    var lastUpdated: String
    enum CodingKeys: String, CodingKey {
        case policyType = "policy_type"
        case policyData = "policy_data"
        case creationDate, createdBy, updatedBy, lastUpdated
    }
}

/// `application/vnd.ibm.kms.allowed_ip_metadata+json`.
struct AllowedIPPortRepresentation: Codable, Sendable {
    var privateEndpointPort: Int
    enum CodingKeys: String, CodingKey { case privateEndpointPort = "private_endpoint_port" }
}

/// `application/vnd.ibm.kms.alias+json`.
struct AliasRepresentation: Codable, Sendable {
    var keyId: String
    var alias: String
    var createdBy: String
    var creationDate: String
}

/// `application/vnd.ibm.kms.key_ring+json`; `default` has only its id.
struct KeyRingRepresentation: Codable, Sendable {
    var id: String
    var creationDate: String?
    var createdBy: String?
}

/// `application/vnd.ibm.kms.import_token+json`: `payload` (the PEM public key, base64) and `nonce` only when
/// retrieved.
struct ImportTokenRepresentation: Codable, Sendable {
    var expiration: Int
    var maxAllowedRetrievals: Int
    var remainingRetrievals: Int
    var creationDate: String
    var expirationDate: String
    var payload: String?
    var nonce: String?

    init(_ token: ImportToken, retrieved: RetrievedImportToken? = nil) {
        expiration = token.expiration
        maxAllowedRetrievals = token.maxAllowedRetrievals
        remainingRetrievals = token.remainingRetrievals
        creationDate = Timestamp.format(token.creationDate)
        expirationDate = Timestamp.format(token.expirationDate)
        payload = retrieved.map { Data($0.publicKeyPEM.utf8).base64EncodedString() }
        nonce = retrieved?.nonce.base64EncodedString()
    }
}

/// The dev clock's answer (KeyRelay extension).
struct ClockRepresentation: Codable, Sendable {
    var now: String
}

/// How KeyRelay's values appear on the wire.
struct Representations: Sendable {
    let region: String
    let account: String
    let rules: LifecycleRules

    /// `KeyFullRepresentation` (reference §2.1), with `payload` when given.
    func key(_ key: Key, now: Date, payload: Data? = nil) -> KeyRepresentation {
        var dualAuth = KeyRepresentation.DualAuthDelete(enabled: key.dualAuthDelete.enabled)
        if key.dualAuthDelete.enabled {
            let set = key.dualAuthDelete.isSetForDeletion(at: now)
            dualAuth.keySetForDeletion = set
            if set, let expiry = key.dualAuthDelete.authExpiration { dualAuth.authExpiration = Timestamp.format(expiry) }
        }
        var object = KeyRepresentation(
            id: key.id, name: key.name, aliases: key.aliases, tags: key.tags, description: key.description,
            state: key.state.rawValue, extractable: key.extractable, crn: key.crn(region: region, account: account),
            imported: key.imported, keyRingID: key.keyRingID, creationDate: Timestamp.format(key.creationDate),
            createdBy: key.createdBy, expirationDate: key.expirationDate.map(Timestamp.format),
            lastUpdateDate: Timestamp.format(key.lastUpdateDate), lastRotateDate: key.lastRotateDate.map(Timestamp.format),
            keyVersion: KeyVersionRepresentation(key.currentVersion), dualAuthDelete: dualAuth,
            rotation: key.rotation.map(KeyRepresentation.Rotation.init), deleted: key.state == .destroyed,
            payload: payload?.base64EncodedString())
        if key.state == .destroyed, let deletion = key.deletionDate {
            object.deletionDate = Timestamp.format(deletion)
            object.deletedBy = key.deletedBy
            let restoreExpiry = rules.restoreExpirationDate(key)
            object.restoreExpirationDate = restoreExpiry.map(Timestamp.format)
            object.restoreAllowed = restoreExpiry.map { now < $0 } ?? false
            let purgeFrom = rules.purgeAllowedFrom(key) ?? deletion
            object.purgeAllowedFrom = Timestamp.format(purgeFrom)
            object.purgeAllowed = now >= purgeFrom
            object.purgeScheduledOn = rules.automaticPurgeDate(key).map(Timestamp.format)
        }
        return object
    }

    /// `RegistrationResource` (reference §3). `registrationMetadata` only for service callers.
    func registration(_ registration: Registration, keyName: String?, includeMetadata: Bool) -> RegistrationRepresentation {
        RegistrationRepresentation(
            keyId: registration.keyID, keyName: keyName, resourceCrn: registration.resourceCRN, createdBy: registration.createdBy,
            creationDate: Timestamp.format(registration.creationDate), updatedBy: registration.updatedBy,
            lastUpdated: Timestamp.format(registration.lastUpdated), description: registration.description,
            preventKeyDeletion: registration.preventKeyDeletion, keyVersion: KeyVersionRepresentation(registration.keyVersion),
            registrationMetadata: includeMetadata ? registration.registrationMetadata : nil)
    }

    /// A key's policies as `GetKeyPoliciesOneOf` resources.
    func policies(_ key: Key, only: String?) -> [PolicyRepresentation] {
        var out: [PolicyRepresentation] = []
        let crn = key.crn(region: region, account: account)
        func resource(_ type: String, _ stamp: PolicyStamp?) -> PolicyRepresentation {
            PolicyRepresentation(id: Self.stableID(key.id, type), crn: crn,
                                 creationDate: stamp.map { Timestamp.format($0.creationDate) }, createdBy: stamp?.createdBy,
                                 lastUpdateDate: stamp.map { Timestamp.format($0.lastUpdateDate) }, updatedBy: stamp?.updatedBy)
        }
        if only == nil || only == "rotation", let rotation = key.rotation {
            var object = resource("rotation", key.rotationStamp)
            object.rotation = KeyRepresentation.Rotation(rotation)
            out.append(object)
        }
        if only == nil || only == "dualAuthDelete", key.dualAuthStamp != nil || key.dualAuthDelete.enabled {
            var object = resource("dualAuthDelete", key.dualAuthStamp)
            object.dualAuthDelete = PolicyRepresentation.Enabled(enabled: key.dualAuthDelete.enabled)
            out.append(object)
        }
        return out
    }

    func instancePolicy(_ policy: InstancePolicy) -> InstancePolicyRepresentation {
        let attributes = policy.attributesJSON.flatMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
        return InstancePolicyRepresentation(
            policyType: policy.policyType, policyData: .init(enabled: policy.enabled, attributes: attributes),
            creationDate: Timestamp.format(policy.stamp.creationDate), createdBy: policy.stamp.createdBy,
            updatedBy: policy.stamp.updatedBy, lastUpdated: Timestamp.format(policy.stamp.lastUpdateDate))
    }

    /// A v4-shaped id derived from a key id and a name (policy ids are stable across reads).
    static func stableID(_ keyID: String, _ name: String) -> String {
        let digest = Array(SHA256.hash(data: Data("\(keyID):\(name)".utf8)))
        func word(_ start: Int) -> UInt64 { digest[start..<start + 8].reduce(0) { $0 << 8 | UInt64($1) } }
        return UUIDText.format(high: word(0), low: word(8))
    }
}
