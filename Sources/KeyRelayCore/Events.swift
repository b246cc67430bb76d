import Foundation

/// The kinds of lifecycle event. Rotate, disable, enable, delete and restore are *lifecycle actions*: they start
/// the sync cooldown and are notified to every registered resource. Sync re-notifies the current state.
public enum LifecycleEventKind: String, Sendable, Codable, CaseIterable {
    case create, rotate, disable, enable, delete, restore, purge, expire, sync

    /// Whether the event starts the sync cooldown (Key Protect: rotate, restore, disable, enable, delete).
    public var isLifecycleAction: Bool {
        switch self {
        case .rotate, .disable, .enable, .delete, .restore: true
        case .create, .purge, .expire, .sync: false
        }
    }

    /// Whether registered resources are notified of the event.
    public var notifiesResources: Bool {
        isLifecycleAction || self == .sync
    }
}

/// One lifecycle event of a key: the row every notification of it points at.
public struct LifecycleEvent: Sendable, Equatable, Codable {
    /// Global, monotonically increasing sequence (assigned by the store).
    public var sequence: Int64
    /// The event id adopters acknowledge.
    public var id: String
    public var instanceID: String
    public var keyID: String
    /// Per-key sequence: 1 for the create event, then +1 per event.
    public var keySequence: Int
    public var kind: LifecycleEventKind
    /// The key's state after the event.
    public var keyState: KeyState
    /// The key's current version after the event.
    public var keyVersion: KeyVersion
    public var date: Date
    public var principal: String
    public var correlationID: String?

    public init(sequence: Int64 = 0, id: String, instanceID: String, keyID: String, keySequence: Int,
                kind: LifecycleEventKind, keyState: KeyState, keyVersion: KeyVersion, date: Date, principal: String,
                correlationID: String?) {
        self.sequence = sequence
        self.id = id
        self.instanceID = instanceID
        self.keyID = keyID
        self.keySequence = keySequence
        self.kind = kind
        self.keyState = keyState
        self.keyVersion = keyVersion
        self.date = date
        self.principal = principal
        self.correlationID = correlationID
    }
}

/// Where a notification stands.
public enum NotificationStatus: String, Sendable, Codable, CaseIterable {
    /// Written, not yet handed to the service (or due for a retry).
    case pending
    /// Handed to the service; its acknowledgement has not arrived.
    case sent
    /// The service acknowledged it.
    case acknowledged
    /// Attempts ran out, or no acknowledgement arrived within the acknowledgement window.
    case dead
}

/// Why a lifecycle action did not complete at a resource: Key Protect's Activity Tracker event "Lifecycle action on
/// a key with registrations did not complete", whose reason is 408 or 409.
public enum IncompleteReason: Int, Sendable, Equatable, Codable, CaseIterable {
    /// No acknowledgement arrived within the acknowledgement window (4 h): the notification is dead.
    case notAcknowledged = 408
    /// The adopter acknowledged a key state other than the one the event put the key in.
    case stateConflict = 409

    /// Key Protect's wording of the event.
    public static let summary = "Lifecycle action on a key with registrations did not complete"
}

/// One notification of one event to one registered resource (an outbox row).
public struct ResourceNotification: Sendable, Equatable, Codable {
    public var id: Int64
    public var event: LifecycleEvent
    public var resourceCRN: String
    public var serviceName: String
    public var status: NotificationStatus
    public var attempts: Int
    public var nextAttemptDate: Date?
    public var lastError: String?
    public var sentDate: Date?
    public var acknowledgedDate: Date?
    /// Set when the action did not complete at the resource (408: not acknowledged in time, 409: acknowledged with
    /// another state); kept even if a late acknowledgement arrives, as the record of what happened.
    public var incomplete: IncompleteReason?

    public init(id: Int64, event: LifecycleEvent, resourceCRN: String, serviceName: String, status: NotificationStatus,
                attempts: Int, nextAttemptDate: Date?, lastError: String?, sentDate: Date?, acknowledgedDate: Date?,
                incomplete: IncompleteReason? = nil) {
        self.id = id
        self.event = event
        self.resourceCRN = resourceCRN
        self.serviceName = serviceName
        self.status = status
        self.attempts = attempts
        self.nextAttemptDate = nextAttemptDate
        self.lastError = lastError
        self.sentDate = sentDate
        self.acknowledgedDate = acknowledgedDate
        self.incomplete = incomplete
    }
}

/// Counts of a key's (or a service's) notifications by status.
public struct DeliveryCounts: Sendable, Equatable, Codable {
    public var pending = 0
    public var sent = 0
    public var acknowledged = 0
    public var dead = 0
    public init(pending: Int = 0, sent: Int = 0, acknowledged: Int = 0, dead: Int = 0) {
        self.pending = pending
        self.sent = sent
        self.acknowledged = acknowledged
        self.dead = dead
    }
    public subscript(status: NotificationStatus) -> Int {
        get {
            switch status {
            case .pending: pending
            case .sent: sent
            case .acknowledged: acknowledged
            case .dead: dead
            }
        }
        set {
            switch status {
            case .pending: pending = newValue
            case .sent: sent = newValue
            case .acknowledged: acknowledged = newValue
            case .dead: dead = newValue
            }
        }
    }
}

/// A change to one notification's delivery state, recorded by the bus.
public enum DeliveryOutcome: Sendable, Equatable {
    /// Handed to the service; the acknowledgement is awaited until `ackDeadline`.
    case sent(at: Date, ackDeadline: Date)
    /// Delivery failed; try again at `retryAt`.
    case failed(at: Date, error: String, retryAt: Date)
    /// The last attempt failed and attempts ran out (it counts as an attempt).
    case dead(at: Date, error: String)
    /// Handed over, and no acknowledgement came within the window: dead, and recorded as an action that did not
    /// complete (``IncompleteReason/notAcknowledged``).
    case unacknowledged(at: Date, error: String)
}

