import Foundation
import KeyRelayCore
internal import KeyRelayStore

/// A page of results and the total they were taken from.
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var total: Int
    public init(items: [Item], total: Int) {
        self.items = items
        self.total = total
    }
}

extension Page: Equatable where Item: Equatable {}

/// Keys as `GET /keys` lists them, with what Key Protect reports about the search.
public struct KeyListing: Sendable, Equatable {
    public var page: Page<Key>
    /// The search as parsed (`metadata.searchQuery`), nil without one.
    public var search: KeySearch?
    /// The search did not look through every key (`metadata.incompleteSearch`): there were too many, and the key it
    /// names is the whole answer.
    public var incompleteSearch = false

    public init(page: Page<Key>, search: KeySearch? = nil, incompleteSearch: Bool = false) {
        self.page = page
        self.search = search
        self.incompleteSearch = incompleteSearch
    }
}

/// A registration that has not honoured its key's current state.
public struct Drift: Sendable, Equatable {
    public var registration: Registration
    public var keyState: KeyState
    public var keyVersion: KeyVersion
    /// The adopter state the key's state asks for.
    public var expected: AdopterKeyState
    /// Since when: the key's last lifecycle action (or its expiry), or the registration if later.
    public var since: Date
}

extension KeyRelayEngine {
    /// A key by id or alias, as it reads now (an expired active key reads as deactivated).
    public nonisolated func key(_ reference: String, context: RequestContext) async throws -> Key {
        try context.check()
        // Off the actor (it only reads, like keyWithPayload): a call costs no hop onto the actor and back.
        let key = try await storage.read { tx in try Self.resolve(reference, in: tx, context: context) }
        return effective(key, at: now())
    }

    /// Keys of the caller's instance; Key Protect's default omits destroyed keys.
    /// A context scoped to a key ring lists that ring's keys only. See ``searchKeys(_:context:)``.
    public func listKeys(_ query: KeyQuery = KeyQuery(), context: RequestContext) async throws -> Page<Key> {
        try context.check()
        return try await searchKeys(query, context: context).page
    }

    /// Keys of the caller's instance, and how a search went (Key Protect's `GET /keys`).
    ///
    /// A search looks through at most ``KeyRelayConfiguration/maxSearchableKeys`` keys: the keys the query's other
    /// conditions leave. For more, it fails with `KEY_SEARCH_TOO_BROAD`, unless it names a key by id or (in the alias
    /// scope) by alias: then that key alone is the answer, marked incomplete. A search that names a key that way lists
    /// it first, before the other matches.
    public func searchKeys(_ query: KeyQuery, context: RequestContext) async throws -> KeyListing {
        try context.check()
        let operation = "Keys could not be retrieved"
        try Self.validatePaging(limit: query.limit, offset: query.offset, operation: operation)
        if let search = query.search, StoredText.containsNUL(search.query) {
            throw KeyRelayError(.invalidQueryParam, "The query_param 'search' must be: text without the character U+0000 (NUL)",
                                operation: operation, target: ErrorTarget(.queryParam, "search"))
        }
        var scoped = query
        if let ring = context.keyRingID { scoped.keyRingID = ring }
        let query = scoped
        let now = now()
        let limit = configuration.maxSearchableKeys
        let listing = try await storage.read { tx -> KeyListing in
            let instanceID = context.instanceID
            guard let search = query.search else {
                return KeyListing(page: Page(items: try tx.keys(instanceID: instanceID, query: query),
                                             total: try tx.countKeys(instanceID: instanceID, query: query)))
            }
            // The key the search names by id or alias, if the rest of the query selects it.
            var lookedUp: Key?
            if search.looksUp {
                let byID = try search.keyID.flatMap { id in try tx.key(id: id, instanceID: instanceID) }
                let aliased = search.scopes.contains(.alias) ? try tx.keyID(alias: search.query, instanceID: instanceID) : nil
                let byAlias = try aliased.flatMap { id in try tx.key(id: id, instanceID: instanceID) }
                lookedUp = [byID, byAlias].compactMap { $0 }.first { query.withoutSearch.matches($0) }
            }
            guard try tx.countKeys(instanceID: instanceID, query: query.withoutSearch) <= limit else {
                guard let lookedUp else {
                    let message = "The search would look through more than \(limit) keys: narrow it down with the state or "
                        + "extractable parameters, a filter or the X-Kms-Key-Ring header"
                    throw KeyRelayError(.keySearchTooBroad, message, operation: operation, target: ErrorTarget(.queryParam, "search"))
                }
                return KeyListing(page: Page(items: query.offset == 0 ? [lookedUp] : [], total: 1), search: search,
                                  incompleteSearch: true)
            }
            let total = try tx.countKeys(instanceID: instanceID, query: query)
            guard let lookedUp else {
                return KeyListing(page: Page(items: try tx.keys(instanceID: instanceID, query: query), total: total), search: search)
            }
            // The looked-up key first, then the other matches: the page is taken from that sequence.
            var others = query
            others.excludedKeyID = lookedUp.id
            var items: [Key] = []
            if query.offset == 0 {
                items.append(lookedUp)
                others.limit = query.limit - 1
            } else {
                others.offset = query.offset - 1
            }
            if others.limit > 0 { items += try tx.keys(instanceID: instanceID, query: others) }
            return KeyListing(page: Page(items: items, total: total), search: search)
        }
        var effective = listing
        effective.page.items = listing.page.items.map { self.effective($0, at: now) }
        return effective
    }

    /// Versions of a key, newest first. For a key that is not active, only with `allKeyStates`.
    public func versions(_ reference: String, limit: Int = 200, offset: Int = 0, allKeyStates: Bool = false,
                         context: RequestContext) async throws -> Page<KeyVersion> {
        try context.check()
        try Self.validatePaging(limit: limit, offset: offset, operation: "KeyVersion(s) could not be retrieved")
        let key = try await key(reference, context: context)
        if !allKeyStates { try rules.checkState(.listVersions, key) }
        return try await storage.read { tx in
            Page(items: try tx.versions(keyID: key.id, limit: limit, offset: offset), total: key.versionCount)
        }
    }

    /// Lifecycle events after a global sequence number, oldest first (optionally one key's).
    /// - Parameter keyID: a key's id or alias (resolved in the context's instance); the id of a purged key still
    ///   names its events, which outlive it.
    /// - Throws: `KEY_NOT_FOUND_ERR` when `keyID` names no key and no events: an unknown key is an error, not an
    ///   empty answer.
    public func events(after sequence: Int64 = 0, keyID: String? = nil, limit: Int = 1000,
                       context: RequestContext? = nil) async throws -> [LifecycleEvent] {
        if let context { try context.check() }
        return try await storage.read { tx in
            var id = keyID
            if let reference = keyID, let instanceID = context?.instanceID {
                if let key = try tx.key(id: reference, instanceID: instanceID) {
                    id = key.id
                } else if let aliased = try tx.keyID(alias: reference, instanceID: instanceID) {
                    id = aliased
                } else if try tx.events(instanceID: instanceID, keyID: reference, after: 0, limit: 1).isEmpty {
                    throw Self.notFound(reference)
                }
            }
            return try tx.events(instanceID: context?.instanceID, keyID: id, after: sequence, limit: limit)
        }
    }

    /// Notifications of a key (newest first), optionally of one status.
    public func notifications(keyID: String? = nil, status: NotificationStatus? = nil, limit: Int = 1000,
                              offset: Int = 0) async throws -> [ResourceNotification] {
        try await storage.read { tx in
            try tx.notifications(keyID: keyID, eventSequence: nil, status: status, limit: limit, offset: offset)
        }
    }

    /// Notification counts by status, for an instance, a key or a service.
    public func deliveryCounts(instanceID: String? = nil, keyID: String? = nil, service: String? = nil) async throws -> DeliveryCounts {
        try await storage.read { tx in try tx.deliveryCounts(instanceID: instanceID, keyID: keyID, service: service) }
    }

    /// Registrations that have not honoured their key's current state, read a page of keys at a time with one
    /// cursor over each page's registrations (never every key, nor every registration, at once).
    /// - Parameter keyID: one key's, or (nil) every key's of the instance.
    /// - Parameter limit: at most this many drifts are returned.
    public func drift(keyID: String? = nil, limit: Int = 1000, context: RequestContext) async throws -> [Drift] {
        try context.check()
        let now = now()
        let limit = max(0, limit)
        return try await storage.read { tx in
            var drifted: [Drift] = []
            func collect(_ keys: [Key]) throws {
                let byID = Dictionary(keys.map { ($0.id, self.effective($0, at: now)) }, uniquingKeysWith: { first, _ in first })
                try tx.forEachRegistration(keyIDs: keys.map(\.id)) { registration in
                    guard drifted.count < limit, let key = byID[registration.keyID],
                          let drift = Self.drift(of: registration, key: key) else { return }
                    drifted.append(drift)
                }
            }
            if let keyID {
                try collect([try Self.resolve(keyID, in: tx, instanceID: context.instanceID)])
                return drifted
            }
            var query = KeyQuery()
            query.states = Set(KeyState.allCases)
            query.sort = .id
            query.limit = 1000
            while drifted.count < limit {
                let keys = try tx.keys(instanceID: context.instanceID, query: query)
                try collect(keys)
                guard keys.count == query.limit else { break }
                query.offset += query.limit
            }
            return drifted
        }
    }

    /// Key Protect's paging rule: `limit` 1–`maximum` (5000 unless a list says less), `offset` ≥ 0
    /// (`INVALID_QUERY_PARAM_ERR` naming the parameter).
    public static func validatePaging(limit: Int, offset: Int, maximum: Int = 5000, operation: String) throws(KeyRelayError) {
        guard (1...maximum).contains(limit) else {
            throw KeyRelayError(.invalidQueryParam, "The query_param 'limit' must be: an integer between 1 and \(maximum) (inclusive)",
                                operation: operation, target: ErrorTarget(.queryParam, "limit"))
        }
        guard offset >= 0 else {
            throw KeyRelayError(.invalidQueryParam, "The query_param 'offset' must be: an integer of 0 or more",
                                operation: operation, target: ErrorTarget(.queryParam, "offset"))
        }
    }
}
