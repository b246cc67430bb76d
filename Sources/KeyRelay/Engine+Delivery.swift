import Foundation
import KeyRelayBus
import KeyRelayCore
import Logging
internal import KeyRelayStore

/// The bus's view of the engine's outbox: notifications are written with their events (one transaction) and the
/// ``Dispatcher`` takes them from here.
///
/// Internal on purpose: only a dispatcher made by ``KeyRelayEngine/makeDispatcher(bus:policy:seed:)`` holds one, so an
/// embedder cannot record a delivery outcome or mark a notification dead without the bus's delivery rules.
///
/// Per-resource order: a notification is not due while an earlier *pending* notification of the same key to the
/// same resource exists. Sent (awaiting acknowledgement) and dead notifications do not hold back later ones:
/// every notification carries the key's full current state and version, so a later one supersedes them. An
/// accepted sync writes a new notification to every registration, including those whose earlier notifications
/// are dead.
struct EngineOutbox: Outbox {
    let storage: any KeyRelayStorage

    func dueNotifications(at date: Date, limit: Int) async throws -> [ResourceNotification] {
        try await storage.read { tx in try tx.dueNotifications(at: date, limit: limit) }
    }

    func claimDueNotifications(at date: Date, limit: Int, leaseUntil: Date) async throws -> [ResourceNotification] {
        try await storage.write { tx in try tx.claimDueNotifications(at: date, limit: limit, leaseUntil: leaseUntil) }
    }

    func recordDelivery(notificationID: Int64, _ outcome: DeliveryOutcome) async throws {
        try await storage.write { tx in try tx.recordDelivery(notificationID: notificationID, outcome) }
    }

    /// One transaction: the outcomes, then the next claim (one durable commit per round, or per refill of the
    /// dispatcher's continuous window).
    func recordDeliveries(_ outcomes: [RecordedDelivery], thenClaimAt date: Date, limit: Int,
                          leaseUntil: Date) async throws -> [ResourceNotification] {
        try await storage.write { tx in
            for recorded in outcomes { try tx.recordDelivery(notificationID: recorded.notificationID, recorded.outcome) }
            return limit > 0 ? try tx.claimDueNotifications(at: date, limit: limit, leaseUntil: leaseUntil) : []
        }
    }

    /// The earliest due date among notifications that are not held back by an earlier pending one (a held-back
    /// notification falls due when the one ahead of it is handed over, which is itself in this set).
    func nextDeliveryDueDate() async throws -> Date? {
        try await storage.read { tx in try tx.dueNotifications(at: .distantFuture, limit: 1).first?.nextAttemptDate }
    }
}

extension KeyRelayEngine {
    /// The earliest expiration date of an active key, if any (the dispatcher visits it to deactivate the key).
    public func nextKeyExpirationDate() async throws -> Date? {
        try await storage.read { tx in try tx.keysDueForExpiry(at: .distantFuture, limit: 1).first?.expirationDate }
    }

    /// Key expirations as dispatcher work: at each expiration instant, ``expireDueKeys()`` runs.
    public nonisolated var expiryWork: ScheduledWork {
        ScheduledWork(name: "key expiry",
                      nextDate: { [self] in try await self.nextKeyExpirationDate() },
                      perform: { [self] _ in _ = try await self.expireDueKeys() })
    }

    /// A dispatcher over this engine's outbox and clock, with key expirations, rotation policies and automatic
    /// purges as scheduled work. It is the only
    /// way notifications leave the engine.
    /// - Parameters:
    ///   - policy: retries and the acknowledgement window (its window defaults to the engine's configured one).
    ///   - seed: seeds the backoff jitter.
    /// Runs `dispatcher` (``Dispatcher/run()``) and pokes it after every commit the store announces — on a store
    /// several processes share (PostgreSQL, through `LISTEN/NOTIFY`), another replica's commits too, so an idle
    /// replica starts on the notifications another one wrote at once, not at its next poll (the dispatcher's
    /// `maximumIdle`, the fallback when announcements do not arrive, e.g. behind a transaction-mode pooler).
    /// Returns when the dispatcher's run ends (a graceful shutdown, or cancellation).
    public nonisolated func run(_ dispatcher: Dispatcher) async {
        let commits = storage.commits
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await dispatcher.run() }
            group.addTask {
                var seen = commits.generation
                while !Task.isCancelled {
                    await commits.wait(after: seen)
                    seen = commits.generation
                    dispatcher.poke()
                }
            }
            await group.next()
            group.cancelAll()
        }
    }

    public nonisolated func makeDispatcher(bus: ServiceBus, policy: DeliveryPolicy? = nil, seed: UInt64 = 0) -> Dispatcher {
        let policy = policy ?? DeliveryPolicy(acknowledgementWindow: configuration.lifecycle.acknowledgementWindow)
        return Dispatcher(outbox: EngineOutbox(storage: storage), bus: bus, clock: clock, policy: policy, seed: seed,
                          scheduled: [expiryWork, policyRotationWork, automaticPurgeWork], logger: logger)
    }
}
