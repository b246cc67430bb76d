import Foundation

// KMIP adapter management (Key Protect's `/api/v2/kmip_adapters`, reference §1.5): the values and the rules that
// do not need the store. KeyRelay has no KMIP endpoint yet, so nothing creates KMIP objects: the object list of an
// adapter is empty, but its reads, filters and deletion rule are the real service's.

/// A KMIP adapter: a root key (`profile_data.crk_id` of profile `native_1.0`) that KMIP clients use through
/// client certificates.
public struct KMIPAdapter: Sendable, Equatable {
    public var id: String
    public var instanceID: String
    /// Unique within the instance.
    public var name: String
    public var description: String?
    public var profile: String
    /// The root key the adapter uses (`profile_data.crk_id`).
    public var crkID: String
    public var createdAt: Date
    public var createdBy: String
    public var updatedAt: Date
    public var updatedBy: String

    public init(id: String, instanceID: String, name: String, description: String?, profile: String = KMIPAdapter.nativeProfile,
                crkID: String, createdAt: Date, createdBy: String, updatedAt: Date? = nil, updatedBy: String? = nil) {
        self.id = id
        self.instanceID = instanceID
        self.name = name
        self.description = description
        self.profile = profile
        self.crkID = crkID
        self.createdAt = createdAt
        self.createdBy = createdBy
        self.updatedAt = updatedAt ?? createdAt
        self.updatedBy = updatedBy ?? createdBy
    }

    /// The only profile Key Protect offers.
    public static let nativeProfile = "native_1.0"
}

/// A client certificate of a KMIP adapter: the PEM a KMIP client authenticates with.
public struct KMIPClientCertificate: Sendable, Equatable {
    public var id: String
    public var adapterID: String
    /// Unique within the adapter.
    public var name: String
    /// The PEM text as it was added (validated by the engine).
    public var certificate: String
    public var createdAt: Date
    public var createdBy: String

    public init(id: String, adapterID: String, name: String, certificate: String, createdAt: Date, createdBy: String) {
        self.id = id
        self.adapterID = adapterID
        self.name = name
        self.certificate = certificate
        self.createdAt = createdAt
        self.createdBy = createdBy
    }
}

/// A KMIP object's state, as KMIP numbers them (Key Protect's `state`).
public enum KMIPObjectState: Int, Sendable, CaseIterable, Comparable {
    case preActive = 1
    case active = 2
    case deactivated = 3
    case compromised = 4
    case destroyed = 5
    case destroyedCompromised = 6

    /// What a list shows when no `state` is asked for: every object that is not destroyed.
    public static let listedByDefault: Set<KMIPObjectState> = [.preActive, .active, .deactivated, .compromised]

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A managed object a KMIP client created through an adapter (only symmetric keys, type 2, in Key Protect).
public struct KMIPObject: Sendable, Equatable {
    public var id: String
    public var adapterID: String
    /// KMIP's object type (2 = symmetric key).
    public var objectType: Int
    public var state: KMIPObjectState
    public var createdAt: Date
    public var createdBy: String?
    public var createdByCertificateID: String?
    public var updatedAt: Date?
    public var updatedBy: String?
    public var updatedByCertificateID: String?
    public var destroyedAt: Date?
    public var destroyedBy: String?
    public var destroyedByCertificateID: String?

    public init(id: String, adapterID: String, objectType: Int = 2, state: KMIPObjectState, createdAt: Date, createdBy: String? = nil,
                createdByCertificateID: String? = nil) {
        self.id = id
        self.adapterID = adapterID
        self.objectType = objectType
        self.state = state
        self.createdAt = createdAt
        self.createdBy = createdBy
        self.createdByCertificateID = createdByCertificateID
    }

    /// Deleting an object destroys it (its material is erased; a compromised object becomes destroyed-compromised).
    /// Without `force` an active object is refused: KMIP revokes (deactivates) an object before destroying it.
    public func destroyed(at now: Date, by principal: String, force: Bool) throws(KeyRelayError) -> KMIPObject {
        let op = "KMIP object could not be deleted"
        if state == .destroyed || state == .destroyedCompromised {
            throw KeyRelayError(.keyActionInvalidState, "The KMIP object '\(id)' is already destroyed", operation: op)
        }
        if state == .active, !force {
            throw KeyRelayError(.keyActionInvalidState, "The KMIP object '\(id)' is active: deactivate it first, or delete it with force=true",
                                operation: op, target: ErrorTarget(.queryParam, "force"))
        }
        var next = self
        next.state = state == .compromised ? .destroyedCompromised : .destroyed
        next.destroyedAt = now
        next.destroyedBy = principal
        next.updatedAt = now
        next.updatedBy = principal
        return next
    }
}

/// The shape rules of KMIP adapter and certificate names and descriptions.
public enum KMIPNames {
    /// Adapter and certificate names: 2–40 characters of letters, digits, `-` and `_`, and not a UUID (so that
    /// "id or name" in a path is never ambiguous).
    public static func validate(_ name: String, field: String = "name", operation: String) throws(KeyRelayError) {
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D || byte == 0x5F
        }
        guard (2...40).contains(name.utf8.count), allowed, UUID(uuidString: name) == nil else {
            throw KeyRelayError(.invalidField, "The field '\(field)' must be: 2 to 40 characters of letters, digits, '-' and '_', and not a UUID",
                                operation: operation, target: ErrorTarget(.field, field))
        }
    }

    /// Descriptions: at most 240 characters.
    public static func validateDescription(_ text: String?, operation: String) throws(KeyRelayError) {
        try StoredText.check(text, field: "description", operation: operation)
        guard let text, text.count > 240 else { return }
        throw KeyRelayError(.invalidField, "The field 'description' must be: at most 240 characters", operation: operation,
                            target: ErrorTarget(.field, "description"))
    }
}

/// Paging bounds of the KMIP lists.
public enum KMIPLimits {
    /// The largest `limit` of the adapter and certificate lists.
    public static let maxListLimit = 200
    /// The largest `limit` of the object list.
    public static let maxObjectListLimit = 5000
    /// Client certificates one adapter may hold.
    public static let maxCertificatesPerAdapter = 200
}
