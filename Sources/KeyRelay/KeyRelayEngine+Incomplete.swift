import Foundation
import KeyRelayCore
internal import KeyRelayStore

/// Lifecycle actions that did not complete at a resource (Key Protect's "Lifecycle action on a key with
/// registrations did not complete", reason 408 or 409): `keyrelay status` shows them.
public struct IncompleteActions: Sendable, Equatable {
    /// Counts by reason, over the instance.
    public var counts: [IncompleteReason: Int]
    /// The most recent ones, newest first.
    public var recent: [ResourceNotification]
    /// All of them.
    public var total: Int { counts.values.reduce(0, +) }
}

extension KeyRelayEngine {
    /// The instance's notifications whose action did not complete: counts by reason and the `limit` most recent.
    public func incompleteActions(limit: Int = 10, context: RequestContext) async throws -> IncompleteActions {
        try context.check()
        try Self.validatePaging(limit: limit, offset: 0, operation: "Notifications could not be retrieved")
        return try await storage.read { tx in
            IncompleteActions(counts: try tx.countIncompleteNotifications(instanceID: context.instanceID),
                              recent: try tx.incompleteNotifications(instanceID: context.instanceID, limit: limit))
        }
    }
}
