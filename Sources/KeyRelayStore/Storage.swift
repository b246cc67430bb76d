import Foundation
import KeyRelayCore

/// What the engine needs from persistence, shaped by the engine (commands as transactions, streamed queries) and
/// not by SQLite, so that another store (PostgreSQL) can be added without touching the engine or the core.
///
/// This module is the port only: it names no backend and imports no database library. Backends (KeyRelaySQLite)
/// implement it; KeyRelayStoreTesting's `StoreContract` is the behaviour each of them must show.
public protocol KeyRelayStorage: Sendable {
    /// Runs `command` as one all-or-nothing transaction and returns only after it is durably committed.
    /// This is the single commit path of every write.
    func write<T: Sendable>(_ command: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T
    /// Runs `query` on a consistent snapshot.
    func read<T: Sendable>(_ query: @escaping @Sendable (any StorageReader) throws -> T) async throws -> T
    /// Writes a consistent copy of the whole database to a new file at `path` while writes go on (an online
    /// backup: the copy is one snapshot, a transaction is in it entirely or not at all).
    /// - Throws: ``StoreError/backupDestinationExists(path:)`` when `path` exists: a backup never overwrites.
    func backup(to path: String) async throws
    /// Signalled after every durable commit of this store (and, for a store shared by several processes, of the
    /// others when they announce it): what a reader tailing the store waits on.
    var commits: CommitFeed { get }
}

extension KeyRelayStorage {
    /// Backends that cannot copy themselves (yet) say so rather than write a partial file.
    public func backup(to path: String) async throws {
        throw StoreError.backupUnsupported(backend: String(describing: Self.self))
    }
}

/// Reads, available inside and outside transactions.
public protocol StorageReader {
    func instanceExists(_ id: String) throws -> Bool
    func instanceIDs() throws -> [String]
    func key(id: String, instanceID: String) throws -> Key?
    func keyID(alias: String, instanceID: String) throws -> String?
    /// The keys of the instance that `query.matches(_:)` selects (and, with
    /// `alsoDestroyedWithRegistrationNotAcknowledging`, those destroyed keys), in `query.order` with ties broken by
    /// id in the first term's direction, the page `offset`/`limit` of them.
    func keys(instanceID: String, query: KeyQuery) throws -> [Key]
    /// How many keys `keys(instanceID:query:)` selects, whatever the page.
    func countKeys(instanceID: String, query: KeyQuery) throws -> Int
    /// Active keys whose expiration date is at or before `date`.
    func keysDueForExpiry(at date: Date, limit: Int) throws -> [Key]
    /// Active, generated (not imported) root keys with an enabled rotation policy whose next policy rotation —
    /// `interval_month × month` after the last rotation, or after creation — is at or before `date`, earliest
    /// first (ties by id). Pass `.distantFuture` with limit 1 for the next one.
    func keysDueForPolicyRotation(at date: Date, month: TimeInterval, limit: Int) throws -> [Key]
    /// Destroyed keys deleted at or before `date`, earliest deletion first (ties by id): the automatic purge's
    /// candidates. Pass `.distantFuture` with limit 1 for the earliest deletion.
    func destroyedKeys(deletedAtOrBefore date: Date, limit: Int) throws -> [Key]
    func aliases(keyID: String) throws -> [AliasRecord]
    /// Versions newest first.
    func versions(keyID: String, limit: Int, offset: Int) throws -> [KeyVersion]
    func sealedMaterial(keyID: String, versionID: String) throws -> Data?
    func keyRings(instanceID: String) throws -> [KeyRingRecord]
    func countKeys(instanceID: String, keyRingID: String, excludingDestroyed: Bool) throws -> Int
    func registration(keyID: String, resourceCRN: String) throws -> Registration?
    /// Registrations of one key (or of every key of the instance when `keyID` is nil), ordered by key and CRN.
    func registrations(instanceID: String, keyID: String?, filter: RegistrationFilter, limit: Int, offset: Int) throws -> [Registration]
    func countRegistrations(instanceID: String, keyID: String?, filter: RegistrationFilter) throws -> Int
    /// Streams every registration of a key, without loading them all.
    func forEachRegistration(keyID: String, _ body: (Registration) throws -> Void) throws
    /// The key's registrations as the delete rule sees them: `count` and `preventingDeletion` count only the
    /// registrations that still protect the key; `total` counts them all.
    func registrationSummary(keyID: String) throws -> RegistrationSummary
    func event(id: String) throws -> LifecycleEvent?
    func events(instanceID: String?, keyID: String?, after sequence: Int64, limit: Int) throws -> [LifecycleEvent]
    func latestEventSequence() throws -> Int64
    func notifications(keyID: String?, eventSequence: Int64?, status: NotificationStatus?, limit: Int, offset: Int) throws -> [ResourceNotification]
    func notification(eventID: String, resourceCRN: String) throws -> ResourceNotification?
    func deliveryCounts(instanceID: String?, keyID: String?, service: String?) throws -> DeliveryCounts
    /// Notifications whose action did not complete (``ResourceNotification/incomplete``), newest first, of one
    /// instance's keys.
    func incompleteNotifications(instanceID: String, limit: Int) throws -> [ResourceNotification]
    /// How many of one instance's notifications did not complete, by reason.
    func countIncompleteNotifications(instanceID: String) throws -> [IncompleteReason: Int]
    /// Notifications due at `date`: pending ones whose attempt time has come, and sent ones whose acknowledgement
    /// deadline has passed, excluding any with an earlier *pending* notification for the same resource (per-resource
    /// order of hand-over; a sent notification awaiting its acknowledgement, or a dead one, does not hold back the
    /// events behind it, since every notification carries the key's full current state).
    /// Ordered by due time, then id.
    func dueNotifications(at date: Date, limit: Int) throws -> [ResourceNotification]
    func instancePolicies(instanceID: String) throws -> [InstancePolicy]
    func meta(_ name: String) throws -> Data?

    // Overview queries: one statement per page of keys or events, never one per key (the engine's status, drift
    // and console views). Every list argument is one page, so each answer is bounded by the caller's page size.

    /// Registration counts of each of `keyIDs` (as ``registrationSummary(keyID:)``); a key without registrations is
    /// absent.
    func registrationSummaries(keyIDs: [String]) throws -> [String: RegistrationSummary]
    /// Notification counts by status of each of `keyIDs`; a key without notifications is absent.
    func deliveryCounts(keyIDs: [String]) throws -> [String: DeliveryCounts]
    /// Streams every registration of `keyIDs`, ordered by key and CRN, without loading them all.
    func forEachRegistration(keyIDs: [String], _ body: (Registration) throws -> Void) throws
    /// One key's events, newest first.
    func eventsNewestFirst(keyID: String, limit: Int, offset: Int) throws -> [LifecycleEvent]
    func countEvents(keyID: String) throws -> Int
    /// The notifications of the events with these global sequences, ordered by event (newest first) and CRN.
    func notifications(eventSequences: [Int64]) throws -> [ResourceNotification]

    // KMIP adapter management (reference §1.5). Lists are ordered by creation time, then id.

    func kmipAdapter(id: String, instanceID: String) throws -> KMIPAdapter?
    func kmipAdapter(name: String, instanceID: String) throws -> KMIPAdapter?
    /// The instance's adapters; only those on root key `crkID`, and only those whose root key is in ring
    /// `keyRingID`, when given.
    func kmipAdapters(instanceID: String, crkID: String?, keyRingID: String?, limit: Int, offset: Int) throws -> [KMIPAdapter]
    func countKMIPAdapters(instanceID: String, crkID: String?, keyRingID: String?) throws -> Int
    func kmipClientCertificate(id: String, adapterID: String) throws -> KMIPClientCertificate?
    func kmipClientCertificate(name: String, adapterID: String) throws -> KMIPClientCertificate?
    func kmipClientCertificates(adapterID: String, limit: Int, offset: Int) throws -> [KMIPClientCertificate]
    func countKMIPClientCertificates(adapterID: String) throws -> Int
    func kmipObject(id: String, adapterID: String) throws -> KMIPObject?
    /// The adapter's objects in one of `states`.
    func kmipObjects(adapterID: String, states: Set<KMIPObjectState>, limit: Int, offset: Int) throws -> [KMIPObject]
    func countKMIPObjects(adapterID: String, states: Set<KMIPObjectState>) throws -> Int
}

/// Writes, available only inside ``KeyRelayStorage/write(_:)``.
public protocol StorageTransaction: StorageReader {
    func ensureInstance(_ id: String, at date: Date) throws
    func insertKey(_ key: Key) throws
    func updateKey(_ key: Key) throws
    /// Removes a key for good (purge): its versions and material, aliases and registrations. Events stay.
    func purgeKey(id: String) throws
    func insertVersion(keyID: String, version: KeyVersion, ordinal: Int, sealedMaterial: Data) throws
    func insertAlias(_ alias: AliasRecord, instanceID: String) throws
    func deleteAlias(_ alias: String, instanceID: String) throws -> Bool
    func insertKeyRing(instanceID: String, id: String, at date: Date, by principal: String) throws
    func deleteKeyRing(instanceID: String, id: String) throws
    /// Moves every key of ring `from` to ring `to`.
    func moveKeys(instanceID: String, fromRing: String, toRing: String) throws
    func upsertRegistration(_ registration: Registration) throws
    func deleteRegistration(keyID: String, resourceCRN: String) throws -> Bool
    /// Ends the protection of every registration of `keyID` that still protects it (a forced delete), at `date`; the
    /// rows stay (listed, and reached by sync). Returns how many changed.
    func endRegistrationProtection(keyID: String, at date: Date) throws -> Int
    func recordAcknowledgement(keyID: String, resourceCRN: String, _ ack: Acknowledgement) throws
    /// Appends an event and returns its global sequence.
    func appendEvent(_ event: LifecycleEvent) throws -> Int64
    /// Writes one pending notification of the event per registration of `keyID`, due at `date`; returns how many.
    func fanOut(eventSequence: Int64, keyID: String, dueAt date: Date) throws -> Int
    /// Claims up to `limit` of the notifications ``dueNotifications(at:limit:)`` would return that are not under another live claim (claimed until after `date`), and marks them claimed until `leaseUntil`; ``recordDelivery(notificationID:_:)`` ends the claim. Several dispatchers on one database each get distinct notifications; a dispatcher that dies loses nothing: its claims fall due again when the lease ends.
    func claimDueNotifications(at date: Date, limit: Int, leaseUntil: Date) throws -> [ResourceNotification]
    /// Records a delivery outcome for a notification that is still pending or sent.
    func recordDelivery(notificationID: Int64, _ outcome: DeliveryOutcome) throws
    /// Marks the notification of `eventSequence` to `resourceCRN` acknowledged, and any earlier unfinished
    /// notification of the same key to the same resource too (a newer acknowledged state supersedes them).
    func acknowledgeNotifications(keyID: String, resourceCRN: String, upToEventSequence: Int64, at date: Date) throws -> Int
    /// Records that the resource acknowledged the event `eventSequence` with another key state than the event's:
    /// its notification of that event is marked ``IncompleteReason/stateConflict`` with `error`.
    func recordStateConflict(keyID: String, resourceCRN: String, eventSequence: Int64, error: String) throws
    /// What recording an acknowledgement needs of the registration of `resourceCRN` with `keyID`: nil when there is
    /// none. A default reads the whole registration and its acknowledged event; a backend may answer in one lookup
    /// (every in-process delivery acknowledges, so this is on the delivery path).
    func acknowledgementState(keyID: String, resourceCRN: String) throws -> RegistrationAcknowledgementState?
    func putInstancePolicy(_ policy: InstancePolicy, instanceID: String) throws
    func setMeta(_ name: String, _ value: Data) throws

    func insertKMIPAdapter(_ adapter: KMIPAdapter) throws
    /// Removes an adapter with its client certificates and objects; false when there was none.
    func deleteKMIPAdapter(id: String) throws -> Bool
    func insertKMIPClientCertificate(_ certificate: KMIPClientCertificate) throws
    func deleteKMIPClientCertificate(id: String) throws -> Bool
    /// Writes an object (new, or its new state).
    func saveKMIPObject(_ object: KMIPObject) throws
}

/// A registration as an acknowledgement sees it (``StorageTransaction/acknowledgementState(keyID:resourceCRN:)``).
public struct RegistrationAcknowledgementState: Sendable, Equatable {
    /// The global sequence of the event named by the registration's latest recorded acknowledgement; nil when it has
    /// none, or when that event is not stored.
    public var acknowledgedEventSequence: Int64?

    public init(acknowledgedEventSequence: Int64?) {
        self.acknowledgedEventSequence = acknowledgedEventSequence
    }
}

extension StorageTransaction {
    public func acknowledgementState(keyID: String, resourceCRN: String) throws -> RegistrationAcknowledgementState? {
        guard let registration = try registration(keyID: keyID, resourceCRN: resourceCRN) else { return nil }
        let acknowledged = try registration.acknowledgement.flatMap { try event(id: $0.eventID) }
        return RegistrationAcknowledgementState(acknowledgedEventSequence: acknowledged?.sequence)
    }
}

/// Errors of the store itself (not of the domain).
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file was written by a newer KeyRelay: it has migrations this build does not know.
    case newerSchema(unknown: [String])
    /// A stored value is missing, of the wrong type, or a code this build does not know (a state, an event kind, a
    /// notification status). The store refuses the row rather than guess: a guessed state could let a deleted key
    /// wrap again.
    case corruptRow(table: String, column: String, value: String)
    /// The database was opened with "must exist" (commands that only read) and there is none at `path`.
    case databaseNotFound(path: String)
    /// A backup was asked to write over an existing file.
    case backupDestinationExists(path: String)
    /// This backend has no online backup.
    case backupUnsupported(backend: String)
    /// The backup's file cannot be created (a missing directory, no permission), with the system's reason.
    case backupDestinationUnwritable(path: String, reason: String)

    public var description: String {
        switch self {
        case .databaseNotFound(let path):
            "There is no KeyRelay database at '\(path)' (it was not created: only a command that creates keys creates a database)"
        case .backupDestinationExists(let path):
            "'\(path)' already exists: a backup never overwrites a file; choose a new path or remove it first"
        case .backupUnsupported(let backend):
            "This store (\(backend)) has no online backup"
        case .backupDestinationUnwritable(let path, let reason):
            "Cannot create '\(path)': \(reason)"

        case .newerSchema(let unknown):
            "The database was written by a newer version of KeyRelay (unknown schema migrations: \(unknown.joined(separator: ", "))); open it with that version or newer"
        case .corruptRow(let table, let column, let value):
            "The database holds a value KeyRelay cannot read (table '\(table)', column '\(column)': \(value)); it was changed outside KeyRelay or by an incompatible version: restore it from a backup"
        }
    }
}

// `package`, not `public`: an extension on Foundation's Date would otherwise be visible to every client that
// loads this module, including embedders who only `import KeyRelay`.
extension Date {
    /// Milliseconds since 1970, as stored: every backend keeps times at this precision.
    package var storageMilliseconds: Int64 { Int64((timeIntervalSince1970 * 1000).rounded(.down)) }
    /// A date from stored milliseconds.
    package init(storageMilliseconds ms: Int64) { self.init(timeIntervalSince1970: Double(ms) / 1000) }
}

/// JSON kept in a text column (tags, aliases, policies), as every backend decodes it: dates as milliseconds, and
/// text that does not decode as `T` answered nil, so the backend refuses the row (``StoreError/corruptRow``)
/// rather than guess.
package enum StoredJSON {
    package static func decode<T: Decodable>(_ text: String, as type: T.Type) -> T? {
        // Empty tag and alias lists are most keys': no JSONDecoder for them (a key is read by every command).
        if text == "[]", let empty = [String]() as? T { return empty }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return try? decoder.decode(type, from: Data(text.utf8))
    }
}
