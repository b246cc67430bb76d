import Foundation
import KeyRelayCore

/// Where the dispatcher takes notifications from and records what became of them: the engine's outbox.
///
/// The engine implements it over its store (`KeyRelayEngine: Outbox`); tests may implement it in memory.
///
/// ## Ordering and dead letters
/// ``dueNotifications(at:limit:)`` enforces per-resource order of hand-over: a notification is not due while an
/// earlier notification of the same key to the same resource is still *pending* (not yet handed over, or waiting
/// for a retry). A notification that was handed over and awaits its acknowledgement, or one that is dead, does not
/// hold back the events behind it: every notification carries the key's full current state (state and version), so
/// a later event supersedes an earlier one and a resource never needs the earlier one to catch up. A dead letter is
/// repaired by the next event or by a sync, which re-notifies every registered resource.
public protocol Outbox: Sendable {
    /// Notifications due at `date`, in delivery order (due time, then id): pending ones whose attempt time has
    /// come, and sent ones whose acknowledgement deadline has passed. At most `limit`.
    func dueNotifications(at date: Date, limit: Int) async throws -> [ResourceNotification]
    /// Claims up to `limit` of the notifications ``dueNotifications(at:limit:)`` would return that no other claim
    /// holds (a claim lasts until `leaseUntil`, or until ``recordDelivery(notificationID:_:)`` of the notification),
    /// in the same order. The ``Dispatcher`` takes its work this way, so several dispatchers on one database (or two
    /// drains of one) never hand the same notification over at once.
    func claimDueNotifications(at date: Date, limit: Int, leaseUntil: Date) async throws -> [ResourceNotification]
    /// Records what became of one delivery attempt (and ends the notification's claim). A notification that is no longer pending or sent (for
    /// example acknowledged meanwhile) is left as it is.
    func recordDelivery(notificationID: Int64, _ outcome: DeliveryOutcome) async throws
    /// Records the outcomes of hand-overs that ended (a round's, or those that ended while the previous call ran),
    /// in order, then (when `limit` > 0) claims more as ``claimDueNotifications(at:limit:leaseUntil:)`` does, seeing
    /// those outcomes: how the ``Dispatcher`` refills its window. An outbox over a store with transactions does it all
    /// in one (one commit per call instead of one per outcome and one per claim); the default records each outcome,
    /// concurrently, then claims.
    func recordDeliveries(_ outcomes: [RecordedDelivery], thenClaimAt date: Date, limit: Int,
                          leaseUntil: Date) async throws -> [ResourceNotification]
    /// The earliest instant at which a notification that is not held back falls due (a retry, a first
    /// hand-over, or an acknowledgement deadline), or nil when nothing is waiting.
    func nextDeliveryDueDate() async throws -> Date?
}

/// One outcome for ``Outbox/recordDeliveries(_:thenClaimAt:limit:leaseUntil:)``.
public struct RecordedDelivery: Sendable, Equatable {
    public var notificationID: Int64
    public var outcome: DeliveryOutcome

    public init(notificationID: Int64, _ outcome: DeliveryOutcome) {
        self.notificationID = notificationID
        self.outcome = outcome
    }
}

extension Outbox {
    public func recordDeliveries(_ outcomes: [RecordedDelivery], thenClaimAt date: Date, limit: Int,
                                 leaseUntil: Date) async throws -> [ResourceNotification] {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for recorded in outcomes {
                group.addTask { try await self.recordDelivery(notificationID: recorded.notificationID, recorded.outcome) }
            }
            try await group.waitForAll()
        }
        return limit > 0 ? try await claimDueNotifications(at: date, limit: limit, leaseUntil: leaseUntil) : []
    }
}

/// Work other than deliveries that falls due at instants the dispatcher must visit: for example key expirations
/// (the engine's ``ScheduledWork`` deactivates keys whose expiration date has passed).
public struct ScheduledWork: Sendable {
    /// A name for logs.
    public var name: String
    /// The next instant at which `perform` has something to do, or nil.
    public var nextDate: @Sendable () async throws -> Date?
    /// Does what is due at the given instant (the clock reads that instant).
    public var perform: @Sendable (Date) async throws -> Void

    public init(name: String, nextDate: @escaping @Sendable () async throws -> Date?,
                perform: @escaping @Sendable (Date) async throws -> Void) {
        self.name = name
        self.nextDate = nextDate
        self.perform = perform
    }
}
