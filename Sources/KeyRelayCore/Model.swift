import Foundation

/// A key's state, with Key Protect's numeric codes.
public enum KeyState: Int, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// Conceptual "before the key exists"; never held by a stored key.
    case preActivation = 0
    case active = 1
    /// Disabled: only enable or delete are allowed.
    case suspended = 2
    /// Expired: unwrap, rewrap, rotate and delete only.
    case deactivated = 3
    /// Deleted (soft delete): restorable for 30 days, purgeable after 4 hours.
    case destroyed = 5

    public var description: String {
        switch self {
        case .preActivation: "pre-activation"
        case .active: "active"
        case .suspended: "suspended"
        case .deactivated: "deactivated"
        case .destroyed: "destroyed"
        }
    }

    /// Parses a name (`active`, `suspended`, `disabled`, `deactivated`, `destroyed`, `deleted`) or a code.
    public init?(name: String) {
        switch name.lowercased() {
        case "0", "pre-activation", "preactivation": self = .preActivation
        case "1", "active", "enabled": self = .active
        case "2", "suspended", "disabled": self = .suspended
        case "3", "deactivated", "expired": self = .deactivated
        case "5", "destroyed", "deleted": self = .destroyed
        default: return nil
        }
    }
}

/// A reference to one version of a key's material.
public struct KeyVersion: Sendable, Equatable, Codable, Hashable {
    public var id: String
    public var creationDate: Date
    public init(id: String, creationDate: Date) {
        self.id = id
        self.creationDate = creationDate
    }
}

/// The dual-authorization deletion policy of a key and its pending authorization, if any.
public struct DualAuthDelete: Sendable, Equatable, Codable {
    public var enabled: Bool
    /// The principal that set the key for deletion.
    public var authorizedBy: String?
    /// When the authorization lapses.
    public var authExpiration: Date?
    public init(enabled: Bool = false, authorizedBy: String? = nil, authExpiration: Date? = nil) {
        self.enabled = enabled
        self.authorizedBy = authorizedBy
        self.authExpiration = authExpiration
    }
    /// Whether an authorization is pending at `now`.
    public func isSetForDeletion(at now: Date) -> Bool {
        guard enabled, authorizedBy != nil, let expiry = authExpiration else { return false }
        return now < expiry
    }
}

/// A key's automatic rotation policy: enabled, it rotates the key every `intervalMonth` × 30 days
/// (``LifecycleRules/policyRotationDate(_:)``, performed by the dispatcher).
public struct RotationPolicy: Sendable, Equatable, Codable {
    public var enabled: Bool
    /// 1–12.
    public var intervalMonth: Int
    public init(enabled: Bool, intervalMonth: Int) {
        self.enabled = enabled
        self.intervalMonth = intervalMonth
    }
}

/// Metadata of a policy change: who set it and when.
public struct PolicyStamp: Sendable, Equatable, Codable {
    public var createdBy: String
    public var creationDate: Date
    public var updatedBy: String
    public var lastUpdateDate: Date
    public init(createdBy: String, creationDate: Date, updatedBy: String, lastUpdateDate: Date) {
        self.createdBy = createdBy
        self.creationDate = creationDate
        self.updatedBy = updatedBy
        self.lastUpdateDate = lastUpdateDate
    }
}

/// A root or standard key and everything its lifecycle rules need. Key material is never part of it.
public struct Key: Sendable, Equatable, Codable {
    public var id: String
    public var instanceID: String
    public var name: String
    public var description: String?
    public var tags: [String]
    public var aliases: [String]
    public var keyRingID: String
    /// `false` for a root key, `true` for a standard key.
    public var extractable: Bool
    /// Whether the material was supplied by the caller (such keys need a payload to rotate).
    public var imported: Bool
    public var state: KeyState
    public var creationDate: Date
    public var createdBy: String
    public var lastUpdateDate: Date
    public var updatedBy: String
    /// The last lifecycle action (rotate, disable, enable, delete, restore): starts the sync cooldown and the
    /// 30-second enable/restore cooldown.
    public var lastLifecycleActionDate: Date?
    /// The last accepted sync.
    public var lastSyncDate: Date?
    public var lastRotateDate: Date?
    public var expirationDate: Date?
    public var currentVersion: KeyVersion
    /// How many versions the key has had (1 for a key never rotated).
    public var versionCount: Int
    public var deletionDate: Date?
    public var deletedBy: String?
    public var dualAuthDelete: DualAuthDelete
    public var dualAuthStamp: PolicyStamp?
    public var rotation: RotationPolicy?
    public var rotationStamp: PolicyStamp?
    /// The per-key sequence number of the key's latest lifecycle event.
    public var eventSequence: Int

    public init(id: String, instanceID: String, name: String, description: String? = nil, tags: [String] = [],
                aliases: [String] = [], keyRingID: String = KeyRing.defaultID, extractable: Bool, imported: Bool,
                state: KeyState = .active, creationDate: Date, createdBy: String, expirationDate: Date? = nil,
                currentVersion: KeyVersion, dualAuthDelete: DualAuthDelete = DualAuthDelete(),
                rotation: RotationPolicy? = nil) {
        self.id = id
        self.instanceID = instanceID
        self.name = name
        self.description = description
        self.tags = tags
        self.aliases = aliases
        self.keyRingID = keyRingID
        self.extractable = extractable
        self.imported = imported
        self.state = state
        self.creationDate = creationDate
        self.createdBy = createdBy
        self.lastUpdateDate = creationDate
        self.updatedBy = createdBy
        self.lastLifecycleActionDate = nil
        self.lastSyncDate = nil
        self.lastRotateDate = nil
        self.expirationDate = expirationDate
        self.currentVersion = currentVersion
        self.versionCount = 1
        self.deletionDate = nil
        self.deletedBy = nil
        self.dualAuthDelete = dualAuthDelete
        self.dualAuthStamp = nil
        self.rotation = rotation
        self.rotationStamp = nil
        self.eventSequence = 0
    }

    /// `true` for a root key (non-extractable).
    public var isRoot: Bool { !extractable }

    /// The CRN of the key in Key Protect's form, for a region and account.
    public func crn(region: String, account: String) -> String {
        CloudEventNames.kmsKeyCRN(region: region, account: account, instanceID: instanceID, keyID: id)
    }
}

/// Key rings group keys inside an instance.
public enum KeyRing {
    /// The ring every instance has; it can be neither created nor deleted.
    public static let defaultID = "default"

    /// Validates a key ring id: 2–100 characters of `[A-Za-z0-9-]`.
    public static func validate(_ id: String) throws(KeyRelayError) {
        let ok = (2...100).contains(id.count) && id.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        guard ok else {
            throw KeyRelayError(.invalidField, "The key ring ID must be 2 to 100 characters of letters, digits and '-'",
                                operation: "Key ring could not be created", target: ErrorTarget(.field, "keyRingID"))
        }
    }
}

/// An instance-level policy (Key Protect's `PUT /instance/policies`), kept as the data the client sent.
public struct InstancePolicy: Sendable, Equatable, Codable {
    public var policyType: String
    public var enabled: Bool
    /// Attributes as JSON text (opaque to the core).
    public var attributesJSON: String?
    public var stamp: PolicyStamp
    public init(policyType: String, enabled: Bool, attributesJSON: String?, stamp: PolicyStamp) {
        self.policyType = policyType
        self.enabled = enabled
        self.attributesJSON = attributesJSON
        self.stamp = stamp
    }
}
