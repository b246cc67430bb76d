import Foundation
import KeyRelayCore
internal import KeyRelayStore

/// One key as an operator looks at it before deciding to sync: its registrations, their drift, its deliveries,
/// and what it accepts now (the rules' answer, so that no front end keeps a copy of them).
public struct KeyOverview: Sendable, Equatable {
    /// The key as it reads now (an expired active key reads as deactivated).
    public var key: Key
    /// How many resources are registered with the key, and how many of them forbid its deletion.
    public var registrations: RegistrationSummary
    /// How many registrations have not honoured the key's current state.
    public var drifted: Int
    /// Since when the oldest drift has lasted (``Drift/since``), or `nil` without drift.
    public var driftSince: Date?
    /// The key's notifications by status.
    public var deliveries: DeliveryCounts
    /// The lifecycle actions the key accepts now or later, and from when
    /// (``LifecycleRules/availability(_:at:by:registrations:)``), for the principal who asked.
    public var actions: [ActionAvailability]

    /// The first instant a sync is accepted, or `nil` when it is accepted now. Sync is allowed in every state.
    public var syncAllowedFrom: Date? { actions.first { $0.action == .sync }?.allowedFrom }
}

/// A registration with its drift, if it has not honoured its key's current state.
public struct RegistrationStatus: Sendable, Equatable {
    /// The registration, with its last acknowledgement.
    public var registration: Registration
    /// How it has not honoured its key's current state, or `nil` when it has.
    public var drift: Drift?
}

/// A lifecycle event with its deliveries: one notification per resource registered when it happened.
public struct EventDeliveries: Sendable, Equatable {
    /// The event, with its global sequence.
    public var event: LifecycleEvent
    /// Ordered by resource CRN.
    public var deliveries: [ResourceNotification]
    /// The deliveries by status.
    public var counts: DeliveryCounts {
        var counts = DeliveryCounts()
        for notification in deliveries { counts[notification.status] += 1 }
        return counts
    }
}

/// A key's overview with a page of its registrations, read on one snapshot (the console's associated resources).
public struct KeyAssociations: Sendable, Equatable {
    public var overview: KeyOverview
    /// Ordered by resource CRN.
    public var registrations: Page<RegistrationStatus>
}

/// A key with a page of its lifecycle events, newest first, each with its deliveries, read on one snapshot.
public struct KeyEvents: Sendable, Equatable {
    /// The key as it reads now.
    public var key: Key
    public var events: Page<EventDeliveries>
}

/// The largest page an overview query reads at once; a page is read in a fixed number of statements whatever its
/// size, so the bound is about the answer's memory, not its speed.
private let maximumOverviewPage = 1000

extension KeyRelayEngine {
    /// A page of keys with their overview, in four statements whatever the page size (no query per key).
    ///
    /// - Parameters:
    ///   - query: which keys, in which order; `limit` 1–1000, `offset` 0 or more.
    ///   - includingDestroyedWithDrift: also list destroyed keys (whatever `query.states` says) that a registered
    ///     resource has not yet acknowledged as deleted: a force-deleted key whose bucket still serves data must not
    ///     vanish from a "not deleted" view together with its drift.
    ///
    /// A context scoped to a key ring (``RequestContext/keyRingID``) lists that ring's keys only, as ``listKeys(_:context:)``.
    public func keyOverviews(_ query: KeyQuery = KeyQuery(), includingDestroyedWithDrift: Bool = false,
                             context: RequestContext) async throws -> Page<KeyOverview> {
        try context.check()
        let operation = "Key overview could not be retrieved"
        try Self.validatePaging(limit: query.limit, offset: query.offset, operation: operation)
        guard query.limit <= maximumOverviewPage else {
            throw KeyRelayError(.invalidQueryParam, "The query_param 'limit' must be: an integer between 1 and \(maximumOverviewPage) (inclusive)",
                                operation: operation, target: ErrorTarget(.queryParam, "limit"))
        }
        var query = query
        if let ring = context.keyRingID { query.keyRingID = ring }
        if includingDestroyedWithDrift {
            // For a destroyed key, `Registration.isDrifted` is "the last acknowledged state is not the deleted one"
            // (an unacknowledged registration reads as enabled, so it drifts too): exactly the store's predicate.
            query.alsoDestroyedWithRegistrationNotAcknowledging = AdopterKeyState.expected(for: .destroyed)
        }
        let now = now()
        let rules = rules
        return try await storage.read { [query] tx in
            let keys = try tx.keys(instanceID: context.instanceID, query: query).map { self.effective($0, at: now) }
            let total = try tx.countKeys(instanceID: context.instanceID, query: query)
            return Page(items: try Self.overviews(of: keys, in: tx, rules: rules, at: now, principal: context.principal),
                        total: total)
        }
    }

    /// One key's overview, by id or alias, in the context's key ring when it names one.
    public func keyOverview(_ reference: String, context: RequestContext) async throws -> KeyOverview {
        try context.check()
        let now = now()
        let rules = rules
        return try await storage.read { tx in
            let key = self.effective(try Self.resolve(reference, in: tx, context: context), at: now)
            return try Self.overviews(of: [key], in: tx, rules: rules, at: now, principal: context.principal)[0]
        }
    }

    /// A key's overview and a page of its registrations, each with its drift, on one snapshot: the overview's
    /// counts and the rows agree. The key must lie in the context's key ring when it names one.
    public func associations(keyID reference: String, limit: Int = 200, offset: Int = 0,
                             context: RequestContext) async throws -> KeyAssociations {
        try context.check()
        let operation = "Associated resources could not be retrieved"
        try Self.validatePaging(limit: limit, offset: offset, operation: operation)
        let now = now()
        let rules = rules
        return try await storage.read { tx in
            let key = self.effective(try Self.resolve(reference, in: tx, context: context, operation: operation), at: now)
            let overview = try Self.overviews(of: [key], in: tx, rules: rules, at: now, principal: context.principal)[0]
            let page = try tx.registrations(instanceID: context.instanceID, keyID: key.id, filter: RegistrationFilter(),
                                            limit: limit, offset: offset)
            let statuses = page.map { RegistrationStatus(registration: $0, drift: Self.drift(of: $0, key: key)) }
            return KeyAssociations(overview: overview, registrations: Page(items: statuses, total: overview.registrations.total))
        }
    }

    /// A page of one key's lifecycle events, newest first, each with its deliveries: two statements for the page
    /// (events, then their notifications), never one per event. The key must lie in the context's key ring when it
    /// names one.
    /// - Parameters:
    ///   - limit: 1–1000 events.
    public func eventsWithDeliveries(keyID reference: String, limit: Int = 50, offset: Int = 0,
                                     context: RequestContext) async throws -> KeyEvents {
        try context.check()
        let operation = "Key events could not be retrieved"
        try Self.validatePaging(limit: limit, offset: offset, operation: operation)
        guard limit <= maximumOverviewPage else {
            throw KeyRelayError(.invalidQueryParam, "The query_param 'limit' must be: an integer between 1 and \(maximumOverviewPage) (inclusive)",
                                operation: operation, target: ErrorTarget(.queryParam, "limit"))
        }
        let now = now()
        return try await storage.read { tx in
            let key = self.effective(try Self.resolve(reference, in: tx, context: context, operation: operation), at: now)
            let events = try tx.eventsNewestFirst(keyID: key.id, limit: limit, offset: offset)
            var deliveries: [Int64: [ResourceNotification]] = [:]
            for notification in try tx.notifications(eventSequences: events.map(\.sequence)) {
                deliveries[notification.event.sequence, default: []].append(notification)
            }
            let page = Page(items: events.map { EventDeliveries(event: $0, deliveries: deliveries[$0.sequence] ?? []) },
                            total: try tx.countEvents(keyID: key.id))
            return KeyEvents(key: key, events: page)
        }
    }

    // MARK: - Shared

    /// The drift of one registration against its key as it reads now, or `nil` if it honours the key's state.
    static func drift(of registration: Registration, key: Key) -> Drift? {
        guard registration.isDrifted(from: key) else { return nil }
        let since = max(key.lastLifecycleActionDate ?? key.creationDate, registration.creationDate)
        return Drift(registration: registration, keyState: key.state, keyVersion: key.currentVersion,
                     expected: AdopterKeyState.expected(for: key.state), since: since)
    }

    /// Overviews of `keys` (one page, in their order) in three statements: registration counts, delivery counts,
    /// and one cursor over the page's registrations for the drift.
    static func overviews(of keys: [Key], in tx: any StorageReader, rules: LifecycleRules, at now: Date,
                          principal: String) throws -> [KeyOverview] {
        let ids = keys.map(\.id)
        let summaries = try tx.registrationSummaries(keyIDs: ids)
        let counts = try tx.deliveryCounts(keyIDs: ids)
        let byID = Dictionary(keys.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var drifted: [String: (count: Int, since: Date)] = [:]
        try tx.forEachRegistration(keyIDs: ids) { registration in
            guard let key = byID[registration.keyID], let drift = drift(of: registration, key: key) else { return }
            let previous = drifted[key.id]
            drifted[key.id] = ((previous?.count ?? 0) + 1, min(previous?.since ?? drift.since, drift.since))
        }
        return keys.map { key in
            let summary = summaries[key.id] ?? RegistrationSummary(count: 0, preventingDeletion: 0)
            return KeyOverview(key: key, registrations: summary, drifted: drifted[key.id]?.count ?? 0,
                               driftSince: drifted[key.id]?.since, deliveries: counts[key.id] ?? DeliveryCounts(),
                               actions: rules.availability(key, at: now, by: principal, registrations: summary))
        }
    }
}
