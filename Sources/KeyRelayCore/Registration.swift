import Foundation

/// The state an adopter (an associated service) reports for its data keys in an `event_ack`.
public enum AdopterKeyState: String, Sendable, Codable, CaseIterable {
    /// The service unwrapped its DEK with the key (active or deactivated key) and serves data.
    case enabled = "DEK_ENABLED"
    /// The service revoked access (suspended key).
    case disabled = "DEK_DISABLED"
    /// The service shredded its cached DEK (destroyed key): its data is unreadable.
    case deleted = "DEK_DELETED"

    /// The adopter state a service should reach for a key in `state`.
    public static func expected(for state: KeyState) -> AdopterKeyState {
        switch state {
        case .active, .deactivated, .preActivation: .enabled
        case .suspended: .disabled
        case .destroyed: .deleted
        }
    }
}

/// The last acknowledgement a resource sent for its key.
public struct Acknowledgement: Sendable, Equatable, Codable {
    public var eventID: String
    public var adopterKeyState: AdopterKeyState
    /// The key version the adopter's DEK is wrapped with now (for `DEK_ENABLED`).
    public var keyVersionID: String?
    /// When the adopter processed the event (its `timestamp`).
    public var processedAt: Date
    /// When KeyRelay received the acknowledgement.
    public var receivedAt: Date
    public init(eventID: String, adopterKeyState: AdopterKeyState, keyVersionID: String?, processedAt: Date, receivedAt: Date) {
        self.eventID = eventID
        self.adopterKeyState = adopterKeyState
        self.keyVersionID = keyVersionID
        self.processedAt = processedAt
        self.receivedAt = receivedAt
    }
}

/// An association between a key and a cloud resource it protects (Key Protect's registration).
public struct Registration: Sendable, Equatable, Codable {
    public var keyID: String
    public var instanceID: String
    public var resourceCRN: String
    /// The CRN's service name, the bus topic its notifications go to.
    public var serviceName: String
    public var description: String?
    /// Service-private data.
    public var registrationMetadata: String?
    /// A retention policy: the key cannot be deleted, even with force.
    public var preventKeyDeletion: Bool
    /// The key version protecting the resource.
    public var keyVersion: KeyVersion
    public var createdBy: String
    public var creationDate: Date
    public var updatedBy: String
    public var lastUpdated: Date
    /// The latest acknowledgement from the resource's service, if any.
    public var acknowledgement: Acknowledgement?
    /// When a forced delete of the key ended this registration's protection, or `nil` while it protects the key.
    ///
    /// Key Protect's `force=true` "removes any registrations that are associated with the key", yet the deleted key's
    /// registrations stay readable: KeyRelay keeps the row (history, and the resource sync must still reach) and
    /// records that it no longer protects the key. An ended registration blocks no delete, `preventKeyDeletion`
    /// included, until the service registers the resource again (create or replace).
    public var protectionEndedAt: Date?

    /// Whether the registration protects its key: it blocks a delete without `force` (and with `force` when it has
    /// `preventKeyDeletion`).
    public var isProtecting: Bool { protectionEndedAt == nil }

    public init(keyID: String, instanceID: String, resourceCRN: CRN, description: String? = nil,
                registrationMetadata: String? = nil, preventKeyDeletion: Bool = false, keyVersion: KeyVersion,
                createdBy: String, creationDate: Date) {
        self.keyID = keyID
        self.instanceID = instanceID
        self.resourceCRN = resourceCRN.description
        self.serviceName = resourceCRN.serviceName
        self.description = description
        self.registrationMetadata = registrationMetadata
        self.preventKeyDeletion = preventKeyDeletion
        self.keyVersion = keyVersion
        self.createdBy = createdBy
        self.creationDate = creationDate
        self.updatedBy = createdBy
        self.lastUpdated = creationDate
        self.acknowledgement = nil
        self.protectionEndedAt = nil
    }

    /// Whether this resource has not honoured `key`'s current state: its last acknowledged adopter state differs
    /// from the one the key's state asks for, or (for an enabled key) its DEK is wrapped with an older version.
    /// A resource that has acknowledged nothing yet is judged by the state it registered in (enabled, on its
    /// registered version).
    public func isDrifted(from key: Key) -> Bool {
        let expected = AdopterKeyState.expected(for: key.state)
        let reported = acknowledgement?.adopterKeyState ?? .enabled
        guard reported == expected else { return true }
        if expected == .enabled {
            let version = acknowledgement?.keyVersionID ?? keyVersion.id
            return version != key.currentVersion.id
        }
        return false
    }
}

/// Which registrations a listing returns.
public struct RegistrationFilter: Sendable, Equatable {
    /// Exact CRN, or a prefix when it ends with `*`.
    public var crnQuery: String?
    public var preventKeyDeletion: Bool?
    public init(crnQuery: String? = nil, preventKeyDeletion: Bool? = nil) {
        self.crnQuery = crnQuery
        self.preventKeyDeletion = preventKeyDeletion
    }
}

/// An adopter's acknowledgement of a lifecycle event (Key Protect's `event_ack`).
public struct EventAcknowledgement: Sendable, Equatable {
    public var eventID: String
    /// The resource acknowledging (the registration's CRN).
    public var resourceCRN: String
    public var adopterKeyState: AdopterKeyState
    /// The key version the adopter's DEK is now wrapped with (required for `DEK_ENABLED`).
    public var keyVersionID: String?
    /// When the adopter processed the event.
    public var timestamp: Date
    /// The adopter no longer uses the key: remove the registration.
    public var deleteRegistration: Bool
    public init(eventID: String, resourceCRN: String, adopterKeyState: AdopterKeyState, keyVersionID: String?,
                timestamp: Date, deleteRegistration: Bool = false) {
        self.eventID = eventID
        self.resourceCRN = resourceCRN
        self.adopterKeyState = adopterKeyState
        self.keyVersionID = keyVersionID
        self.timestamp = timestamp
        self.deleteRegistration = deleteRegistration
    }
}
