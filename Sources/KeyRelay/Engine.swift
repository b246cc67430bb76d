import Crypto
import Foundation
import KeyRelayCore
// `package`, not `internal`: the package's own tools (benchmarks, tests) put an engine over a store they opened
// themselves (``KeyRelayEngine/init(storage:masterKey:clock:ids:configuration:logger:)``). Nothing of the store is
// visible to a client outside the package.
package import KeyRelayStore
import Logging

/// KeyRelay's engine: the façade embedders use. It owns the store, the clock, the identifier source and the
/// master key, enforces Key Protect's lifecycle rules, and writes every state change together with its event and
/// its notifications in one transaction.
///
/// ```swift
/// let engine = try await KeyRelayEngine.open(.file("keyrelay.sqlite"), masterKey: masterKey)
/// let ctx = RequestContext(instanceID: "my-instance", principal: "alice")
/// let key = try await engine.createKey(KeySpec(name: "bucket-root-key"), context: ctx)
/// ```
public actor KeyRelayEngine {
    /// The store every command goes through. Not public: a write that bypassed the engine would bypass its rules.
    nonisolated let storage: any KeyRelayStorage
    /// The injected clock; the engine reads time nowhere else.
    public nonisolated let clock: any KeyRelayClock
    public nonisolated let ids: any IdentifierSource
    public nonisolated let configuration: KeyRelayConfiguration
    nonisolated let rules: LifecycleRules
    nonisolated let vault: MaterialVault
    nonisolated let logger: Logger
    /// Instances' network policies, each until the next commit (`KeyRelayEngine+NetworkPolicy.swift`).
    nonisolated let networkPolicies = NetworkPolicyCache()
    /// Policy rotations refused at their due instant, by key id (`KeyRelayEngine+TimeDriven.swift`).
    var refusedPolicyRotations: [String: Date] = [:]
    /// Import tokens, one per instance, kept in memory (see `KeyRelayEngine+ImportTokens.swift`).
    var importTokens: [String: ImportTokenState] = [:]

    /// Creates an engine over a store the caller opened. Verifies (or, on a new database, records) the master key.
    ///
    /// For the package's own tools (benchmarks bulk-load registrations and read group-commit statistics through the
    /// store they opened); embedders use ``open(_:masterKey:clock:ids:configuration:logger:)``.
    /// - Throws: `KeyRelayError` when the master key is not the one the database was sealed with.
    package init(storage: any KeyRelayStorage, masterKey: MasterKey, clock: any KeyRelayClock = SystemClock(),
                ids: any IdentifierSource = RandomIdentifiers(), configuration: KeyRelayConfiguration = KeyRelayConfiguration(),
                logger: Logger = KeyRelayEngine.loggingDisabled) async throws {
        self.storage = storage
        self.clock = clock
        self.ids = ids
        self.configuration = configuration
        self.rules = LifecycleRules(configuration: configuration.lifecycle)
        self.vault = MaterialVault(master: masterKey)
        self.logger = logger
        let vault = self.vault
        let check = try vault.checkValue()
        let matches = try await storage.write { tx -> Bool in
            if let stored = try tx.meta(MaterialVault.checkMetaName) { return vault.verify(checkValue: stored) }
            try tx.setMeta(MaterialVault.checkMetaName, check)
            return true
        }
        guard matches else {
            throw KeyRelayError(.unauthorized, "The master key does not match the one this database was created with: supply the original master key (KEYRELAY_MASTER_KEY or --master-key-file)",
                                operation: "Database could not be opened")
        }
    }

    /// Opens (creating and migrating if needed) the database at `location`, durably: every command is on disk
    /// before it returns.
    /// - Throws: `KeyRelayError` when the master key is not the one the database was sealed with; the store's
    ///   error when the database cannot be opened (for example one written by a newer KeyRelay).
    public static func open(_ location: StoreLocation, masterKey: MasterKey, clock: any KeyRelayClock = SystemClock(),
                            ids: any IdentifierSource = RandomIdentifiers(),
                            configuration: KeyRelayConfiguration = KeyRelayConfiguration(),
                            logger: Logger = KeyRelayEngine.loggingDisabled) async throws -> KeyRelayEngine {
        try await KeyRelayEngine(storage: try await location.openStore(), masterKey: masterKey, clock: clock, ids: ids,
                                 configuration: configuration, logger: logger)
    }

    /// Opens (creating and migrating if needed) a SQLite database file: ``open(_:masterKey:clock:ids:configuration:logger:)``
    /// with `.file(path)`.
    public static func open(path: String, masterKey: MasterKey, clock: any KeyRelayClock = SystemClock(),
                            ids: any IdentifierSource = RandomIdentifiers(),
                            configuration: KeyRelayConfiguration = KeyRelayConfiguration()) async throws -> KeyRelayEngine {
        try await open(.file(path), masterKey: masterKey, clock: clock, ids: ids, configuration: configuration)
    }

    /// An engine on a private in-memory database (tests, examples).
    public static func inMemory(masterKey: MasterKey = .generate(), clock: any KeyRelayClock = ManualClock(),
                                ids: any IdentifierSource = RandomIdentifiers(),
                                configuration: KeyRelayConfiguration = KeyRelayConfiguration()) async throws -> KeyRelayEngine {
        try await open(.inMemory, masterKey: masterKey, clock: clock, ids: ids, configuration: configuration)
    }

    /// The lifecycle rules in force.
    public nonisolated var lifecycleRules: LifecycleRules { rules }

    /// The default logger: it logs nothing. Pass a logger to ``open(_:masterKey:clock:ids:configuration:logger:)``
    /// to get the engine's lines (each lifecycle command at info, a refusal at warning) and its dispatcher's (each
    /// delivery step); as with AsyncHTTPClient's `HTTPClient.loggingDisabled`, an embedder's standard output stays
    /// its own unless it asks.
    public static let loggingDisabled = Logger(label: "keyrelay", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Now, from the injected clock, at the millisecond precision the store keeps.
    nonisolated func now() -> Date {
        Date(storageMilliseconds: clock.now().storageMilliseconds)
    }
}

// MARK: - Shared command plumbing

extension KeyRelayEngine {
    /// Key Protect's answer for a key that is not there (never was, another instance's, or purged): whatever the
    /// request, the lookup is what failed ("Not Found: Key could not be retrieved", message "key does not exist").
    static func notFound(_ reference: String) -> KeyRelayError {
        KeyRelayError(.keyNotFound, "key does not exist", operation: "Key could not be retrieved",
                      hint: "no key with id or alias '\(reference)' in this instance")
    }

    /// Resolves an id or an alias to a key of the caller's instance. A key that is not there is answered as Key
    /// Protect does, naming the lookup whatever `operation` is (``notFound(_:)``).
    static func resolve(_ reference: String, in tx: any StorageReader, instanceID: String,
                        operation: String = "Key could not be retrieved") throws -> Key {
        // A reference containing U+0000 names nothing (no stored text can contain it, see StoredText).
        guard !StoredText.containsNUL(reference), !StoredText.containsNUL(instanceID) else { throw notFound(reference) }
        if let key = try tx.key(id: reference, instanceID: instanceID) { return key }
        if let id = try tx.keyID(alias: reference, instanceID: instanceID),
           let key = try tx.key(id: id, instanceID: instanceID) { return key }
        throw notFound(reference)
    }

    /// Writes a new event for `key` (already updated in memory by `recordEvent`), and its notifications when the
    /// kind notifies resources. Returns the number of notifications written.
    @discardableResult
    static func emit(_ event: LifecycleEvent, in tx: any StorageTransaction, at now: Date) throws -> Int {
        let sequence = try tx.appendEvent(event)
        guard event.kind.notifiesResources else { return 0 }
        return try tx.fanOut(eventSequence: sequence, keyID: event.keyID, dueAt: now)
    }

    /// Erases a key for good inside a transaction — its material, aliases and registrations — with its purge event
    /// (a user's purge and the automatic one after 90 days; the rule that allows it is the caller's). Returns the key
    /// as it was, with the purge recorded.
    static func erase(_ key: Key, by principal: String, correlationID: String?, ids: any IdentifierSource,
                      in tx: any StorageTransaction, at now: Date) throws -> Key {
        var gone = key
        let event = gone.recordEvent(.purge, id: ids.next(), at: now, by: principal, correlationID: correlationID)
        try tx.purgeKey(id: key.id)
        try emit(event, in: tx, at: now)
        return gone
    }

    /// Applies a due expiry inside a transaction (active key past its expiration date → deactivated, with an
    /// `expire` event), and returns the key as it is now.
    static func applyExpiry(_ key: Key, rules: LifecycleRules, ids: any IdentifierSource, in tx: any StorageTransaction,
                            at now: Date) throws -> Key {
        guard var expired = rules.expire(key, at: now) else { return key }
        let event = expired.recordEvent(.expire, id: ids.next(), at: now, by: Self.systemPrincipal, correlationID: nil)
        try tx.updateKey(expired)
        try emit(event, in: tx, at: now)
        return expired
    }

    /// The common shape of a lifecycle command: resolve the key, apply a due expiry, apply the rule, write the key,
    /// its event and its notifications, all in one transaction.
    func lifecycleCommand(_ reference: String, context: RequestContext, kind: LifecycleEventKind, operation: String,
                          _ transform: @escaping @Sendable (Key, Date, any StorageTransaction) throws -> Key) async throws -> Key {
        let now = now()
        let rules = rules
        let ids = ids
        // Drawn here, not on the store's single writer (the rare expiry event draws its own there).
        let eventID = ids.next()
        return try await logged(kind.rawValue, reference, context: context, keyID: { $0.id }) {
            try await countedWrite(kind.rawValue) { tx in
                var key = try Self.resolve(reference, in: tx, context: context, operation: operation)
                key = try Self.applyExpiry(key, rules: rules, ids: ids, in: tx, at: now)
                var next = try transform(key, now, tx)
                let event = next.recordEvent(kind, id: eventID, at: now, by: context.principal, correlationID: context.correlationID)
                try tx.updateKey(next)
                try Self.emit(event, in: tx, at: now)
                return next
            }
        }
    }

    /// A key as a reader sees it at `now`: an active key past its expiration date reads as deactivated even before
    /// the background expiry has written it.
    nonisolated func effective(_ key: Key, at now: Date) -> Key {
        rules.expire(key, at: now) ?? key
    }
}
