import Foundation
import KeyRelayCore
import KeyRelayStore
import PostgresNIO

// The statements follow the SQLite backend's one for one (Sources/KeyRelaySQLite/SQLiteStore.swift), in PostgreSQL's
// dialect: booleans are BOOLEAN, lists of ids travel as one array parameter (`= ANY(?)`), SQLite's ASCII-case-blind
// LIKE and `COLLATE NOCASE` are ILIKE and lower(). Values are always bound (`?`, numbered by PostgresSession).

private let keyColumns = """
    k.id, k.instance_id, k.name, k.description, k.tags, k.key_ring_id, k.extractable, k.imported, k.state,
    k.created_at, k.created_by, k.updated_at, k.updated_by, k.last_action_at, k.last_sync_at, k.last_rotate_at,
    k.expires_at, k.version_id, k.version_created_at, k.version_count, k.deleted_at, k.deleted_by,
    k.dual_auth_enabled, k.dual_auth_by, k.dual_auth_expires_at, k.dual_auth_stamp, k.rotation_enabled,
    k.rotation_interval, k.rotation_stamp, k.event_sequence,
    ARRAY(SELECT a.alias FROM aliases a WHERE a.key_id = k.id ORDER BY a.created_at, a.alias) AS aliases
    """

private let registrationColumns = """
    r.key_id, r.resource_crn, r.instance_id, r.service, r.description, r.metadata, r.prevent_key_deletion,
    r.key_version_id, r.key_version_created_at, r.created_by, r.created_at, r.updated_by, r.updated_at,
    r.ack_event_id, r.ack_state, r.ack_key_version_id, r.ack_processed_at, r.ack_received_at, r.protection_ended_at
    """

/// Only the registrations that still protect their key count for the delete rule; `total` counts them all.
private let summaryColumns = """
    COUNT(*) FILTER (WHERE protection_ended_at IS NULL) AS protecting,
    COUNT(*) FILTER (WHERE prevent_key_deletion AND protection_ended_at IS NULL) AS preventing, COUNT(*) AS total
    """

private let eventColumns = """
    e.seq, e.id, e.instance_id, e.key_id, e.key_seq, e.kind, e.key_state, e.version_id, e.version_created_at, e.at,
    e.principal, e.correlation_id
    """

private let notificationColumns = """
    n.id AS notification_id, n.resource_crn, n.service, n.status, n.attempts, n.next_attempt_at, n.last_error, n.sent_at,
    n.acked_at, n.incomplete,
    \(eventColumns)
    """

private let kmipAdapterColumns = "id, instance_id, name, description, profile, crk_id, created_at, created_by, updated_at, updated_by"
private let kmipCertificateColumns = "id, adapter_id, name, certificate, created_at, created_by"
private let kmipObjectColumns = """
    id, adapter_id, object_type, state, created_at, created_by, created_by_certificate_id, updated_at, updated_by,
    updated_by_certificate_id, destroyed_at, destroyed_by, destroyed_by_certificate_id
    """

private func ms(_ date: Date?) -> Int64? { date?.storageMilliseconds }

private let jsonEncoder: JSONEncoder = {
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = .millisecondsSince1970
    encoder.outputFormatting = .sortedKeys
    return encoder
}()

private func encodeJSON<T: Encodable>(_ value: T?) throws -> String? {
    guard let value else { return nil }
    return String(decoding: try jsonEncoder.encode(value), as: UTF8.self)
}

// MARK: - Decoding

private func decodeKey(_ row: PostgresRandomAccessRow) throws -> Key {
    let r = StoredRow(row: row, table: "keys")
    let version = KeyVersion(id: try r.value("version_id"), creationDate: try r.date("version_created_at"))
    var key = Key(id: try r.value("id"), instanceID: try r.value("instance_id"), name: try r.value("name"),
                  description: try r.value("description"), tags: try r.json("tags", as: [String].self) ?? [],
                  aliases: try r.value("aliases", as: [String].self),
                  keyRingID: try r.value("key_ring_id"), extractable: try r.value("extractable"),
                  imported: try r.value("imported"), state: try r.code("state", as: KeyState.self),
                  creationDate: try r.date("created_at"), createdBy: try r.value("created_by"),
                  expirationDate: try r.optionalDate("expires_at"), currentVersion: version)
    key.lastUpdateDate = try r.date("updated_at")
    key.updatedBy = try r.value("updated_by")
    key.lastLifecycleActionDate = try r.optionalDate("last_action_at")
    key.lastSyncDate = try r.optionalDate("last_sync_at")
    key.lastRotateDate = try r.optionalDate("last_rotate_at")
    key.versionCount = try r.value("version_count")
    key.deletionDate = try r.optionalDate("deleted_at")
    key.deletedBy = try r.value("deleted_by")
    key.dualAuthDelete = DualAuthDelete(enabled: try r.value("dual_auth_enabled"), authorizedBy: try r.value("dual_auth_by"),
                                        authExpiration: try r.optionalDate("dual_auth_expires_at"))
    key.dualAuthStamp = try r.json("dual_auth_stamp", as: PolicyStamp.self)
    if let enabled = try r.value("rotation_enabled", as: Bool?.self) {
        // Written together with rotation_enabled: a policy without its interval is not readable.
        key.rotation = RotationPolicy(enabled: enabled, intervalMonth: try r.value("rotation_interval"))
    }
    key.rotationStamp = try r.json("rotation_stamp", as: PolicyStamp.self)
    key.eventSequence = try r.value("event_sequence")
    return key
}

/// The `keys` columns of `key` in `keyColumns`' order (without aliases).
private func keyArguments(_ key: Key) throws -> [Argument] {
    [key.id, key.instanceID, key.name, key.description, try encodeJSON(key.tags) ?? "[]", key.keyRingID, key.extractable,
     key.imported, key.state.rawValue, ms(key.creationDate), key.createdBy, ms(key.lastUpdateDate), key.updatedBy,
     ms(key.lastLifecycleActionDate), ms(key.lastSyncDate), ms(key.lastRotateDate), ms(key.expirationDate),
     key.currentVersion.id, ms(key.currentVersion.creationDate), key.versionCount, ms(key.deletionDate), key.deletedBy,
     key.dualAuthDelete.enabled, key.dualAuthDelete.authorizedBy, ms(key.dualAuthDelete.authExpiration),
     try encodeJSON(key.dualAuthStamp), key.rotation?.enabled, key.rotation?.intervalMonth, try encodeJSON(key.rotationStamp),
     key.eventSequence]
}

/// The `keys` columns `keyArguments` binds, in its order.
private let keyColumnList = [
    "id", "instance_id", "name", "description", "tags", "key_ring_id", "extractable", "imported", "state", "created_at", "created_by",
    "updated_at", "updated_by", "last_action_at", "last_sync_at", "last_rotate_at", "expires_at", "version_id", "version_created_at",
    "version_count", "deleted_at", "deleted_by", "dual_auth_enabled", "dual_auth_by", "dual_auth_expires_at", "dual_auth_stamp",
    "rotation_enabled", "rotation_interval", "rotation_stamp", "event_sequence",
]

private func decodeSummary(_ row: PostgresRandomAccessRow) throws -> RegistrationSummary {
    let r = StoredRow(row: row, table: "registrations")
    return RegistrationSummary(count: try r.value("protecting"), preventingDeletion: try r.value("preventing"),
                               total: try r.value("total"))
}

private func decodeRegistration(_ row: PostgresRandomAccessRow) throws -> Registration {
    let r = StoredRow(row: row, table: "registrations")
    let crn: CRN
    do {
        crn = try CRN(parsing: try r.value("resource_crn"))
    } catch {
        throw r.corrupt("resource_crn")
    }
    var registration = Registration(
        keyID: try r.value("key_id"), instanceID: try r.value("instance_id"),
        resourceCRN: crn, description: try r.value("description"),
        registrationMetadata: try r.value("metadata"), preventKeyDeletion: try r.value("prevent_key_deletion"),
        keyVersion: KeyVersion(id: try r.value("key_version_id"), creationDate: try r.date("key_version_created_at")),
        createdBy: try r.value("created_by"), creationDate: try r.date("created_at"))
    registration.updatedBy = try r.value("updated_by")
    registration.lastUpdated = try r.date("updated_at")
    if let eventID = try r.value("ack_event_id", as: String?.self) {
        registration.acknowledgement = Acknowledgement(
            eventID: eventID, adopterKeyState: try r.code("ack_state", as: AdopterKeyState.self),
            keyVersionID: try r.value("ack_key_version_id"),
            processedAt: try r.date("ack_processed_at"), receivedAt: try r.date("ack_received_at"))
    }
    registration.protectionEndedAt = try r.optionalDate("protection_ended_at")
    return registration
}

private func decodeEvent(_ row: PostgresRandomAccessRow) throws -> LifecycleEvent {
    let r = StoredRow(row: row, table: "events")
    return LifecycleEvent(sequence: try r.value("seq"), id: try r.value("id"), instanceID: try r.value("instance_id"),
                          keyID: try r.value("key_id"), keySequence: try r.value("key_seq"),
                          kind: try r.code("kind", as: LifecycleEventKind.self),
                          keyState: try r.code("key_state", as: KeyState.self),
                          keyVersion: KeyVersion(id: try r.value("version_id"), creationDate: try r.date("version_created_at")),
                          date: try r.date("at"), principal: try r.value("principal"), correlationID: try r.value("correlation_id"))
}

private func decodeIncomplete(_ r: StoredRow) throws -> IncompleteReason? {
    try r.value("incomplete", as: Int?.self).map { code in
        guard let reason = IncompleteReason(rawValue: code) else { throw r.corrupt("incomplete") }
        return reason
    }
}

private func decodeNotification(_ row: PostgresRandomAccessRow) throws -> ResourceNotification {
    let r = StoredRow(row: row, table: "notifications")
    return ResourceNotification(id: try r.value("notification_id"), event: try decodeEvent(row), resourceCRN: try r.value("resource_crn"),
                                serviceName: try r.value("service"), status: try r.code("status", as: NotificationStatus.self),
                                attempts: try r.value("attempts"), nextAttemptDate: try r.optionalDate("next_attempt_at"),
                                lastError: try r.value("last_error"), sentDate: try r.optionalDate("sent_at"),
                                acknowledgedDate: try r.optionalDate("acked_at"), incomplete: try decodeIncomplete(r))
}

private func decodeKMIPAdapter(_ row: PostgresRandomAccessRow) throws -> KMIPAdapter {
    let r = StoredRow(row: row, table: "kmip_adapters")
    return KMIPAdapter(id: try r.value("id"), instanceID: try r.value("instance_id"), name: try r.value("name"),
                       description: try r.value("description"), profile: try r.value("profile"), crkID: try r.value("crk_id"),
                       createdAt: try r.date("created_at"), createdBy: try r.value("created_by"),
                       updatedAt: try r.date("updated_at"), updatedBy: try r.value("updated_by"))
}

private func decodeKMIPClientCertificate(_ row: PostgresRandomAccessRow) throws -> KMIPClientCertificate {
    let r = StoredRow(row: row, table: "kmip_client_certificates")
    return KMIPClientCertificate(id: try r.value("id"), adapterID: try r.value("adapter_id"), name: try r.value("name"),
                                 certificate: try r.value("certificate"), createdAt: try r.date("created_at"),
                                 createdBy: try r.value("created_by"))
}

private func decodeKMIPObject(_ row: PostgresRandomAccessRow) throws -> KMIPObject {
    let r = StoredRow(row: row, table: "kmip_objects")
    var object = KMIPObject(id: try r.value("id"), adapterID: try r.value("adapter_id"), objectType: try r.value("object_type"),
                            state: try r.code("state", as: KMIPObjectState.self), createdAt: try r.date("created_at"),
                            createdBy: try r.value("created_by"), createdByCertificateID: try r.value("created_by_certificate_id"))
    object.updatedAt = try r.optionalDate("updated_at")
    object.updatedBy = try r.value("updated_by")
    object.updatedByCertificateID = try r.value("updated_by_certificate_id")
    object.destroyedAt = try r.optionalDate("destroyed_at")
    object.destroyedBy = try r.value("destroyed_by")
    object.destroyedByCertificateID = try r.value("destroyed_by_certificate_id")
    return object
}

/// The `WHERE` conditions of a query with optional filters: each is added only when its value is given.
private struct Conditions {
    private(set) var clauses: [String]
    private(set) var arguments: [Argument]

    init(_ always: String = "TRUE", _ arguments: [Argument] = []) {
        clauses = [always]
        self.arguments = arguments
    }

    mutating func add<Value: PostgresThrowingDynamicTypeEncodable>(_ clause: String, _ value: Value?) {
        guard let value else { return }
        clauses.append(clause)
        arguments.append(value)
    }

    var sql: String { clauses.joined(separator: " AND ") }
}

// MARK: - Transaction

/// One pooled connection inside a `read` or `write` closure, seen through the engine's protocols.
struct PostgresTransaction: StorageTransaction {
    let session: PostgresSession
    /// Inside `write`: key reads lock their rows (`FOR UPDATE OF k`) so that replicas serialize per key.
    let writing: Bool
    /// Whether `appendEvent` takes the event-sequence lock (always, but in the test that shows why).
    let ordersEventSequences: Bool
    /// The store's name on `keyrelay_commits` (the payload of this transaction's notification).
    let origin: String

    private var lockKeys: String { writing ? " FOR UPDATE OF k" : "" }

    private func all<T>(_ sql: String, _ arguments: [Argument] = [], _ decode: (PostgresRandomAccessRow) throws -> T) throws -> [T] {
        try session.rows(sql, arguments).map(decode)
    }

    private func one<T>(_ sql: String, _ arguments: [Argument] = [], _ decode: (PostgresRandomAccessRow) throws -> T) throws -> T? {
        try session.rows(sql, arguments).first.map(decode)
    }

    /// The single value of a one-row, one-column answer (`COUNT(*)`, `EXISTS`), named `column`.
    private func scalar<T: PostgresDecodable>(_ sql: String, _ arguments: [Argument] = [], column: String, table: String) throws -> T? {
        try one(sql, arguments) { try StoredRow(row: $0, table: table).value(column, as: T.self) }
    }

    private func count(_ sql: String, _ arguments: [Argument] = [], table: String) throws -> Int {
        try scalar(sql, arguments, column: "c", table: table) ?? 0
    }

    // MARK: Reads

    func instanceExists(_ id: String) throws -> Bool {
        try scalar("SELECT EXISTS(SELECT 1 FROM instances WHERE id = ?) AS e", [id], column: "e", table: "instances") ?? false
    }

    func instanceIDs() throws -> [String] {
        try all("SELECT id FROM instances ORDER BY id") { try StoredRow(row: $0, table: "instances").value("id") }
    }

    func key(id: String, instanceID: String) throws -> Key? {
        let key = try one("SELECT \(keyColumns) FROM keys k WHERE k.id = ? AND k.instance_id = ?\(lockKeys)", [id, instanceID], decodeKey)
        if writing, let key { session.lockedKeys.insert(key.id) }
        return key
    }

    /// Keys a write read under `FOR UPDATE OF k`, remembered as locked by this transaction (see appendEvent).
    private func locked(_ keys: [Key]) -> [Key] {
        if writing { session.lockedKeys.formUnion(keys.map(\.id)) }
        return keys
    }

    func keyID(alias: String, instanceID: String) throws -> String? {
        try scalar("SELECT key_id FROM aliases WHERE instance_id = ? AND alias = ?", [instanceID, alias],
                   column: "key_id", table: "aliases")
    }

    private func keyWhere(instanceID: String, query: KeyQuery) -> (String, [Argument]) {
        var clauses = ["k.instance_id = ?"]
        var arguments: [Argument] = [instanceID]
        let states = query.states.map(\.rawValue).sorted()
        let stateClause = states.isEmpty ? "FALSE" : "k.state IN (\(states.map(String.init).joined(separator: ",")))"
        if let awaited = query.alsoDestroyedWithRegistrationNotAcknowledging {
            clauses.append("""
                (\(stateClause) OR (k.state = 5 AND EXISTS (SELECT 1 FROM registrations r WHERE r.key_id = k.id \
                AND (r.ack_state IS NULL OR r.ack_state != ?))))
                """)
            arguments.append(awaited.rawValue)
        } else {
            clauses.append(stateClause)
        }
        if let extractable = query.extractable {
            clauses.append("k.extractable = ?")
            arguments.append(extractable)
        }
        if let ring = query.keyRingID {
            clauses.append("k.key_ring_id = ?")
            arguments.append(ring)
        }
        if let excluded = query.excludedKeyID {
            clauses.append("k.id != ?")
            arguments.append(excluded)
        }
        for field in KeyQuery.DateField.allCases {
            guard let range = query.dates[field] else { continue }
            let column = Self.column(field)
            clauses.append("((NOT ?::boolean OR \(column) IS NULL) AND (?::bigint IS NULL OR \(column) >= ?) AND (?::bigint IS NULL OR \(column) < ?))")
            let from = range.from?.storageMilliseconds, before = range.before?.storageMilliseconds
            arguments += [range.absent, from, from, before, before]
        }
        if let search = query.search {
            var matches: [String] = []
            let pattern: String
            if search.exact {
                pattern = search.query
            } else {
                let escaped = search.query.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
                    .replacingOccurrences(of: "_", with: "\\_")
                pattern = "%\(escaped)%"
            }
            func matching(_ column: String) -> String {
                search.exact ? "lower(\(column)) = lower(?)" : "\(column) ILIKE ? ESCAPE '\\'"
            }
            if let id = search.keyID {
                matches.append("k.id = ?")
                arguments.append(id)
            }
            if search.scopes.contains(.name) {
                matches.append(matching("k.name"))
                arguments.append(pattern)
            }
            if search.scopes.contains(.alias) {
                matches.append("EXISTS (SELECT 1 FROM aliases a WHERE a.key_id = k.id AND \(matching("a.alias")))")
                arguments.append(pattern)
            }
            let any = matches.isEmpty ? "(FALSE)" : "(\(matches.joined(separator: " OR ")))"
            clauses.append(search.negated ? "NOT \(any)" : any)
        }
        return (clauses.joined(separator: " AND "), arguments)
    }

    private static func column(_ field: KeyQuery.DateField) -> String {
        switch field {
        case .creationDate: "k.created_at"
        case .lastUpdateDate: "k.updated_at"
        case .lastRotateDate: "k.last_rotate_at"
        case .deletionDate: "k.deleted_at"
        case .expirationDate: "k.expires_at"
        }
    }

    private static func column(_ field: KeyQuery.SortField) -> String {
        switch field {
        case .id: "k.id"
        case .state: "k.state"
        case .extractable: "k.extractable"
        case .imported: "k.imported"
        case .creationDate: column(KeyQuery.DateField.creationDate)
        case .lastUpdateDate: column(KeyQuery.DateField.lastUpdateDate)
        case .lastRotateDate: column(KeyQuery.DateField.lastRotateDate)
        case .deletionDate: column(KeyQuery.DateField.deletionDate)
        case .expirationDate: column(KeyQuery.DateField.expirationDate)
        }
    }

    func keys(instanceID: String, query: KeyQuery) throws -> [Key] {
        let (whereSQL, arguments) = keyWhere(instanceID: instanceID, query: query)
        let order = query.order.isEmpty ? [KeyQuery.Order(.creationDate)] : query.order
        // SQLite sorts NULL first ascending and last descending; PostgreSQL the other way round unless told.
        let terms = order.map { "\(Self.column($0.field)) \($0.descending ? "DESC NULLS LAST" : "ASC NULLS FIRST")" }
            + ["k.id \(order[0].descending ? "DESC" : "ASC")"]
        return try all("SELECT \(keyColumns) FROM keys k WHERE \(whereSQL) ORDER BY \(terms.joined(separator: ", ")) LIMIT ? OFFSET ?",
                       arguments + [query.limit, query.offset], decodeKey)
    }

    func countKeys(instanceID: String, query: KeyQuery) throws -> Int {
        let (whereSQL, arguments) = keyWhere(instanceID: instanceID, query: query)
        return try count("SELECT COUNT(*) AS c FROM keys k WHERE \(whereSQL)", arguments, table: "keys")
    }

    func keysDueForExpiry(at date: Date, limit: Int) throws -> [Key] {
        try locked(all("SELECT \(keyColumns) FROM keys k WHERE k.state = 1 AND k.expires_at IS NOT NULL AND k.expires_at <= ? ORDER BY k.expires_at, k.id LIMIT ?\(lockKeys)",
                [date.storageMilliseconds, limit], decodeKey))
    }

    func keysDueForPolicyRotation(at date: Date, month: TimeInterval, limit: Int) throws -> [Key] {
        let due = "COALESCE(k.last_rotate_at, k.created_at) + k.rotation_interval * ?::bigint"
        let monthMilliseconds = Int64((month * 1000).rounded())
        return try locked(all("""
            SELECT \(keyColumns) FROM keys k
            WHERE k.rotation_enabled AND k.state = 1 AND NOT k.extractable AND NOT k.imported AND \(due) <= ?
            ORDER BY \(due), k.id LIMIT ?\(lockKeys)
            """, [monthMilliseconds, date.storageMilliseconds, monthMilliseconds, limit], decodeKey))
    }

    func destroyedKeys(deletedAtOrBefore date: Date, limit: Int) throws -> [Key] {
        try locked(all("SELECT \(keyColumns) FROM keys k WHERE k.state = 5 AND k.deleted_at <= ? ORDER BY k.deleted_at, k.id LIMIT ?\(lockKeys)",
                [date.storageMilliseconds, limit], decodeKey))
    }

    func aliases(keyID: String) throws -> [AliasRecord] {
        try all("SELECT alias, key_id, created_at, created_by FROM aliases WHERE key_id = ? ORDER BY created_at, alias", [keyID]) {
            let r = StoredRow(row: $0, table: "aliases")
            return AliasRecord(alias: try r.value("alias"), keyID: try r.value("key_id"), creationDate: try r.date("created_at"),
                               createdBy: try r.value("created_by"))
        }
    }

    func versions(keyID: String, limit: Int, offset: Int) throws -> [KeyVersion] {
        try all("SELECT id, created_at FROM key_versions WHERE key_id = ? ORDER BY ordinal DESC LIMIT ? OFFSET ?", [keyID, limit, offset]) {
            let r = StoredRow(row: $0, table: "key_versions")
            return KeyVersion(id: try r.value("id"), creationDate: try r.date("created_at"))
        }
    }

    func sealedMaterial(keyID: String, versionID: String) throws -> Data? {
        try one("SELECT sealed_material FROM key_versions WHERE key_id = ? AND id = ?", [keyID, versionID]) {
            try StoredRow(row: $0, table: "key_versions").value("sealed_material", as: Data?.self)
        } ?? nil
    }

    func keyRings(instanceID: String) throws -> [KeyRingRecord] {
        let stored = try all("SELECT id, created_at, created_by FROM key_rings WHERE instance_id = ? ORDER BY created_at, id", [instanceID]) {
            let r = StoredRow(row: $0, table: "key_rings")
            return KeyRingRecord(id: try r.value("id"), creationDate: try r.date("created_at"), createdBy: try r.value("created_by"))
        }
        return [KeyRingRecord(id: KeyRing.defaultID, creationDate: nil, createdBy: nil)] + stored
    }

    func countKeys(instanceID: String, keyRingID: String, excludingDestroyed: Bool) throws -> Int {
        try count("SELECT COUNT(*) AS c FROM keys WHERE instance_id = ? AND key_ring_id = ?\(excludingDestroyed ? " AND state != 5" : "")",
                  [instanceID, keyRingID], table: "keys")
    }

    func registration(keyID: String, resourceCRN: String) throws -> Registration? {
        try one("SELECT \(registrationColumns) FROM registrations r WHERE r.key_id = ? AND r.resource_crn = ?", [keyID, resourceCRN],
                decodeRegistration)
    }

    private func registrationWhere(instanceID: String, keyID: String?, filter: RegistrationFilter) -> (String, [Argument]) {
        var clauses = ["r.instance_id = ?"]
        var arguments: [Argument] = [instanceID]
        if let keyID {
            clauses.append("r.key_id = ?")
            arguments.append(keyID)
        }
        if let query = filter.crnQuery {
            if query.hasSuffix("*") {
                clauses.append("starts_with(r.resource_crn, ?)")
                arguments.append(String(query.dropLast()))
            } else {
                clauses.append("r.resource_crn = ?")
                arguments.append(query)
            }
        }
        if let prevent = filter.preventKeyDeletion {
            clauses.append("r.prevent_key_deletion = ?")
            arguments.append(prevent)
        }
        return (clauses.joined(separator: " AND "), arguments)
    }

    func registrations(instanceID: String, keyID: String?, filter: RegistrationFilter, limit: Int, offset: Int) throws -> [Registration] {
        let (whereSQL, arguments) = registrationWhere(instanceID: instanceID, keyID: keyID, filter: filter)
        return try all("SELECT \(registrationColumns) FROM registrations r WHERE \(whereSQL) ORDER BY r.key_id, r.resource_crn LIMIT ? OFFSET ?",
                       arguments + [limit, offset], decodeRegistration)
    }

    func countRegistrations(instanceID: String, keyID: String?, filter: RegistrationFilter) throws -> Int {
        let (whereSQL, arguments) = registrationWhere(instanceID: instanceID, keyID: keyID, filter: filter)
        return try count("SELECT COUNT(*) AS c FROM registrations r WHERE \(whereSQL)", arguments, table: "registrations")
    }

    /// Streams registrations 500 at a time (keyset paging), so that very many are never loaded at once: `page(last)`
    /// is the ordered statement for the rows after `last` (nil: from the first).
    private func streamRegistrations(_ body: (Registration) throws -> Void,
                                     page: (Registration?) -> (sql: String, arguments: [Argument])) throws {
        var last: Registration?
        while true {
            let (sql, arguments) = page(last)
            let rows = try all(sql + " LIMIT 500", arguments, decodeRegistration)
            for registration in rows { try body(registration) }
            guard rows.count == 500 else { return }
            last = rows.last
        }
    }

    func forEachRegistration(keyID: String, _ body: (Registration) throws -> Void) throws {
        try streamRegistrations(body) { last in
            ("""
             SELECT \(registrationColumns) FROM registrations r WHERE r.key_id = ? AND (?::text IS NULL OR r.resource_crn > ?)
             ORDER BY r.resource_crn
             """, [keyID, last?.resourceCRN, last?.resourceCRN])
        }
    }

    func registrationSummary(keyID: String) throws -> RegistrationSummary {
        try one("SELECT \(summaryColumns) FROM registrations WHERE key_id = ?", [keyID], decodeSummary)
            ?? RegistrationSummary(count: 0, preventingDeletion: 0)
    }

    func event(id: String) throws -> LifecycleEvent? {
        try one("SELECT \(eventColumns) FROM events e WHERE e.id = ?", [id], decodeEvent)
    }

    func events(instanceID: String?, keyID: String?, after sequence: Int64, limit: Int) throws -> [LifecycleEvent] {
        var conditions = Conditions("e.seq > ?", [sequence])
        conditions.add("e.instance_id = ?", instanceID)
        conditions.add("e.key_id = ?", keyID)
        return try all("SELECT \(eventColumns) FROM events e WHERE \(conditions.sql) ORDER BY e.seq LIMIT ?",
                       conditions.arguments + [limit], decodeEvent)
    }

    func latestEventSequence() throws -> Int64 {
        try scalar("SELECT COALESCE(MAX(seq), 0) AS s FROM events", column: "s", table: "events") ?? 0
    }

    func notifications(keyID: String?, eventSequence: Int64?, status: NotificationStatus?, limit: Int, offset: Int) throws -> [ResourceNotification] {
        var conditions = Conditions()
        conditions.add("n.target_id IN \(Self.targetsOfKey)", keyID)
        if let eventSequence {
            // An event's notifications are its key's pairs' at the event (notifications_by_target; there is no index
            // of notifications by event alone since schema 0003). The key is read first so that the statement names
            // it: the planner then knows how many pairs it has (a join through events.key_id it cannot estimate).
            let eventKeyID: String? = try scalar("SELECT key_id FROM events WHERE seq = ?", [eventSequence], column: "key_id",
                                                 table: "events")
            guard let eventKeyID else { return [] }
            conditions.add("n.target_id IN \(Self.targetsOfKey)", eventKeyID)
            conditions.add("n.event_seq = ?", eventSequence)
        }
        conditions.add("n.status = ?", status?.rawValue)
        return try all("SELECT \(notificationColumns) FROM notifications n JOIN events e ON e.seq = n.event_seq WHERE \(conditions.sql) ORDER BY n.id DESC LIMIT ? OFFSET ?",
                       conditions.arguments + [limit, offset], decodeNotification)
    }

    func notification(eventID: String, resourceCRN: String) throws -> ResourceNotification? {
        // The event's pair for this resource, then its one notification of the event (notifications_by_target).
        try one("""
            SELECT \(notificationColumns) FROM events e
            JOIN notification_targets t ON t.key_id = e.key_id AND t.resource_crn = ?
            JOIN notifications n ON n.target_id = t.id AND n.event_seq = e.seq
            WHERE e.id = ?
            """, [resourceCRN, eventID], decodeNotification)
    }

    func deliveryCounts(instanceID: String?, keyID: String?, service: String?) throws -> DeliveryCounts {
        var conditions = Conditions()
        conditions.add("n.target_id IN (SELECT t.id FROM notification_targets t JOIN keys k ON k.id = t.key_id WHERE k.instance_id = ?)",
                       instanceID)
        conditions.add("n.target_id IN \(Self.targetsOfKey)", keyID)
        conditions.add("n.service = ?", service)
        var counts = DeliveryCounts()
        for row in try session.rows("SELECT n.status, COUNT(*) AS c FROM notifications n WHERE \(conditions.sql) GROUP BY n.status",
                                    conditions.arguments) {
            let r = StoredRow(row: row, table: "notifications")
            counts[try r.code("status", as: NotificationStatus.self)] = try r.value("c")
        }
        return counts
    }

    /// The notification targets (schema 0003) of one key (`?`: its id), and of one (key, resource) pair (`?, ?`).
    private static let targetsOfKey = "(SELECT id FROM notification_targets WHERE key_id = ?)"
    private static let targetOfPair = "(SELECT id FROM notification_targets WHERE key_id = ? AND resource_crn = ?)"

    private static let dueCondition = """
        n.status IN ('pending', 'sent') AND n.next_attempt_at <= ?
          AND NOT EXISTS (SELECT 1 FROM notifications p
                          WHERE p.target_id = n.target_id AND p.id < n.id AND p.status = 'pending')
        """

    func dueNotifications(at date: Date, limit: Int) throws -> [ResourceNotification] {
        try all("""
            SELECT \(notificationColumns) FROM notifications n JOIN events e ON e.seq = n.event_seq
            WHERE \(Self.dueCondition) ORDER BY n.next_attempt_at, n.id LIMIT ?
            """, [date.storageMilliseconds, limit], decodeNotification)
    }

    func incompleteNotifications(instanceID: String, limit: Int) throws -> [ResourceNotification] {
        try all("""
            SELECT \(notificationColumns) FROM notifications n JOIN events e ON e.seq = n.event_seq
            WHERE n.incomplete IS NOT NULL AND e.instance_id = ? ORDER BY n.id DESC LIMIT ?
            """, [instanceID, limit], decodeNotification)
    }

    func countIncompleteNotifications(instanceID: String) throws -> [IncompleteReason: Int] {
        var counts: [IncompleteReason: Int] = [:]
        for row in try session.rows("""
            SELECT n.incomplete, COUNT(*) AS c FROM notifications n JOIN events e ON e.seq = n.event_seq
            WHERE n.incomplete IS NOT NULL AND e.instance_id = ? GROUP BY n.incomplete
            """, [instanceID]) {
            let r = StoredRow(row: row, table: "notifications")
            guard let reason = try decodeIncomplete(r) else { throw r.corrupt("incomplete") }
            counts[reason] = try r.value("c")
        }
        return counts
    }

    func instancePolicies(instanceID: String) throws -> [InstancePolicy] {
        // Carries a held ensureInstance (create's first write): it reads no instance row.
        let rows = try session.carrying("SELECT policy_type, enabled, attributes, stamp FROM instance_policies WHERE instance_id = ? ORDER BY policy_type",
                                        [instanceID], locking: false, oneRow: false)
        return try rows.map { row in
            let r = StoredRow(row: row, table: "instance_policies")
            guard let stamp = try r.json("stamp", as: PolicyStamp.self) else { throw r.corrupt("stamp") }
            return InstancePolicy(policyType: try r.value("policy_type"), enabled: try r.value("enabled"),
                                  attributesJSON: try r.value("attributes"), stamp: stamp)
        }
    }

    func meta(_ name: String) throws -> Data? {
        try scalar("SELECT value FROM meta WHERE name = ?", [name], column: "value", table: "meta")
    }

    // MARK: Writes

    func ensureInstance(_ id: String, at date: Date) throws {
        // Held for instancePolicies' read, which create makes next (it waits for another transaction inserting the
        // same instance, so no statement taking a lock carries it).
        try session.hold("INSERT INTO instances (id, created_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING", [id, date.storageMilliseconds],
                         table: "instances", mayWait: true)
    }

    /// `INSERT INTO keys` of every column but the aliases (`keyArguments`), written once.
    private static let insertKeySQL =
        "INSERT INTO keys (\(keyColumnList.joined(separator: ", "))) VALUES (\(Array(repeating: "?", count: keyColumnList.count).joined(separator: ", ")))"

    /// `UPDATE keys` of every column but the id (`keyArguments` without its first, then the id), written once.
    private static let updateKeySQL =
        "UPDATE keys SET \(keyColumnList.dropFirst().map { "\($0) = ?" }.joined(separator: ", ")) WHERE id = ?"

    func insertKey(_ key: Key) throws {
        // A new row: nothing to wait for but a duplicate id. It rides on the event's statement (PostgresSession,
        // "Writes carried by the next statement"); the key's version and a later update may then ride with it.
        session.insertedKeys.insert(key.id)
        try session.hold(Self.insertKeySQL, try keyArguments(key), table: "keys")
    }

    func updateKey(_ key: Key) throws {
        let arguments = Array(try keyArguments(key).dropFirst()) + [key.id]
        // Updating a key that is gone is a bug, not a no-op (as GRDB's `update` says on SQLite): checked when the
        // answer is settled (the next statement waited for, or COMMIT), which fails the transaction.
        let gone = "key '\(key.id)' to update is not in the database"
        if session.ownsRow(ofKey: key.id) {
            try session.hold(Self.updateKeySQL, arguments, table: "keys", failureUnlessOneRow: gone)
        } else {
            try session.send(Self.updateKeySQL, arguments) { answer in
                guard answer.metadata.rows == 1 else { throw PostgresStoreError(sqlState: nil, message: gone) }
            }
        }
    }

    func purgeKey(id: String) throws {
        // Unfinished notifications of a purged key can never be honoured: they end dead.
        try session.send("UPDATE notifications SET status = 'dead', last_error = 'key purged', next_attempt_at = NULL WHERE target_id IN \(Self.targetsOfKey) AND status IN ('pending', 'sent')",
                            [id])
        try session.send("DELETE FROM keys WHERE id = ?", [id])
    }

    func insertVersion(keyID: String, version: KeyVersion, ordinal: Int, sealedMaterial: Data) throws {
        let sql = "INSERT INTO key_versions (id, key_id, ordinal, created_at, sealed_material) VALUES (?, ?, ?, ?, ?)"
        let arguments: [Argument] = [version.id, keyID, ordinal, version.creationDate.storageMilliseconds, sealedMaterial]
        // Its foreign key's FOR KEY SHARE on the key's row waits for nobody when this transaction holds that row.
        if session.ownsRow(ofKey: keyID) {
            try session.hold(sql, arguments, table: "key_versions")
        } else {
            try session.send(sql, arguments)
        }
    }

    func insertAlias(_ alias: AliasRecord, instanceID: String) throws {
        try session.send("INSERT INTO aliases (instance_id, alias, key_id, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
                            [instanceID, alias.alias, alias.keyID, alias.creationDate.storageMilliseconds, alias.createdBy])
    }

    func deleteAlias(_ alias: String, instanceID: String) throws -> Bool {
        try session.execute("DELETE FROM aliases WHERE instance_id = ? AND alias = ?", [instanceID, alias]) > 0
    }

    func insertKeyRing(instanceID: String, id: String, at date: Date, by principal: String) throws {
        try session.send("INSERT INTO key_rings (instance_id, id, created_at, created_by) VALUES (?, ?, ?, ?)",
                            [instanceID, id, date.storageMilliseconds, principal])
    }

    func deleteKeyRing(instanceID: String, id: String) throws {
        try session.send("DELETE FROM key_rings WHERE instance_id = ? AND id = ?", [instanceID, id])
    }

    func moveKeys(instanceID: String, fromRing: String, toRing: String) throws {
        try session.send("UPDATE keys SET key_ring_id = ? WHERE instance_id = ? AND key_ring_id = ?", [toRing, instanceID, fromRing])
    }

    func upsertRegistration(_ r: Registration) throws {
        session.unregisteredKeys.remove(r.keyID)
        // One statement: the (key, resource) pair's notification target, made once and kept (schema 0003), then the
        // registration with its id (the fan-out copies it into every notification, whose per-resource lookups then
        // read a small integer index). `DO UPDATE` of the pair to the values it has, not `DO NOTHING`: it returns the
        // id of a pair that exists, also one another transaction committed after this statement's snapshot was
        // taken (two replicas registering one new pair at once: the second waits for the first, then reads its
        // row), where a lookup in the snapshot would find nothing. It rewrites the small row in place (a HOT update:
        // no indexed value changes) and only when the pair exists, i.e. when a registration is made again or
        // updated. An existing registration keeps its target_id (not in the DO UPDATE list).
        try session.send("""
            WITH target AS (
                INSERT INTO notification_targets (key_id, resource_crn) VALUES (?, ?)
                ON CONFLICT (key_id, resource_crn) DO UPDATE SET key_id = excluded.key_id RETURNING id
            )
            INSERT INTO registrations (key_id, resource_crn, instance_id, service, description, metadata, prevent_key_deletion,
                key_version_id, key_version_created_at, created_by, created_at, updated_by, updated_at, ack_event_id, ack_state,
                ack_key_version_id, ack_processed_at, ack_received_at, protection_ended_at, target_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT id FROM target))
            ON CONFLICT (key_id, resource_crn) DO UPDATE SET
                description = excluded.description, metadata = excluded.metadata,
                prevent_key_deletion = excluded.prevent_key_deletion, key_version_id = excluded.key_version_id,
                key_version_created_at = excluded.key_version_created_at, updated_by = excluded.updated_by,
                updated_at = excluded.updated_at, ack_event_id = excluded.ack_event_id, ack_state = excluded.ack_state,
                ack_key_version_id = excluded.ack_key_version_id, ack_processed_at = excluded.ack_processed_at,
                ack_received_at = excluded.ack_received_at, protection_ended_at = excluded.protection_ended_at
            """, [
                r.keyID, r.resourceCRN,
                r.keyID, r.resourceCRN, r.instanceID, r.serviceName, r.description, r.registrationMetadata,
                r.preventKeyDeletion, r.keyVersion.id, ms(r.keyVersion.creationDate), r.createdBy, ms(r.creationDate),
                r.updatedBy, ms(r.lastUpdated), r.acknowledgement?.eventID, r.acknowledgement?.adopterKeyState.rawValue,
                r.acknowledgement?.keyVersionID, ms(r.acknowledgement?.processedAt), ms(r.acknowledgement?.receivedAt),
                ms(r.protectionEndedAt),
            ])
    }

    func endRegistrationProtection(keyID: String, at date: Date) throws -> Int {
        try session.execute("UPDATE registrations SET protection_ended_at = ? WHERE key_id = ? AND protection_ended_at IS NULL",
                            [date.storageMilliseconds, keyID])
    }

    func deleteRegistration(keyID: String, resourceCRN: String) throws -> Bool {
        try session.execute("DELETE FROM registrations WHERE key_id = ? AND resource_crn = ?", [keyID, resourceCRN]) > 0
    }

    func recordAcknowledgement(keyID: String, resourceCRN: String, _ ack: Acknowledgement) throws {
        try session.send("""
            UPDATE registrations SET ack_event_id = ?, ack_state = ?, ack_key_version_id = ?, ack_processed_at = ?, ack_received_at = ?
            WHERE key_id = ? AND resource_crn = ?
            """, [ack.eventID, ack.adopterKeyState.rawValue, ack.keyVersionID, ms(ack.processedAt), ms(ack.receivedAt), keyID, resourceCRN])
    }

    func appendEvent(_ event: LifecycleEvent) throws -> Int64 {
        // One statement: the event-sequence lock (sequences commit in order, see PostgresStore's DocC, "Event
        // sequences"; held until this transaction ends), this transaction's notification of `keyrelay_commits`
        // (delivered at COMMIT, as the store's own would be), then the row. The MATERIALIZED CTE is evaluated when
        // the INSERT reads its one row, so the lock is held before the sequence value is taken (the column's default,
        // computed as the row is formed).
        let lock = ordersEventSequences ? "pg_advisory_xact_lock(?::int4, ?::int4), " : ""
        let lockArguments: [Argument] = ordersEventSequences
            ? [PostgresStore.eventSequenceLock.classID, PostgresStore.eventSequenceLock.objectID] : []
        //
        // For an event that notifies resources, of a key this transaction holds under FOR UPDATE, the statement also
        // answers whether the key has any registration: when it has none, ``fanOut(eventSequence:keyID:dueAt:)``
        // writes nothing and needs no statement. That answer cannot go stale before COMMIT: a registration is inserted
        // with its foreign key's `FOR KEY SHARE` on the key row, which waits for this transaction's `FOR UPDATE`; one
        // inserted before the lock was granted has committed before it, and this statement's snapshot, taken after the
        // lock, sees it. This transaction's own `upsertRegistration` forgets the answer.
        let probe = event.kind.notifiesResources && session.lockedKeys.contains(event.keyID)
        let registered = probe ? ", EXISTS (SELECT 1 FROM registrations r WHERE r.key_id = events.key_id) AS registered" : ""
        //
        // The writes the transaction held (the key's insert or update, its new version: PostgresSession, "Writes
        // carried by the next statement") ride on this statement; it reads neither `keys` nor `key_versions`.
        let row = try session.carrying(with: ["ordered AS MATERIALIZED (SELECT \(lock)pg_notify(?, ?))"], """
            INSERT INTO events (id, instance_id, key_id, key_seq, kind, key_state, version_id, version_created_at, at, principal, correlation_id)
            SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM ordered RETURNING seq\(registered)
            """, lockArguments + [PostgresStore.commitChannel, origin] + [
                event.id, event.instanceID, event.keyID, event.keySequence, event.kind.rawValue, event.keyState.rawValue,
                event.keyVersion.id, ms(event.keyVersion.creationDate), ms(event.date), event.principal, event.correlationID],
            locking: ordersEventSequences, oneRow: true).first.map {
            let r = StoredRow(row: $0, table: "events")
            return (sequence: try r.value("seq", as: Int64.self), registered: probe ? try r.value("registered", as: Bool.self) : true)
        }
        guard let row else { throw PostgresStoreError(sqlState: nil, message: "INSERT INTO events returned no sequence") }
        session.notified = true
        if !row.registered { session.unregisteredKeys.insert(event.keyID) }
        return row.sequence
    }

    func fanOut(eventSequence: Int64, keyID: String, dueAt date: Date) throws -> Int {
        // A key this transaction locked and found without registrations (appendEvent): nothing to write.
        if session.unregisteredKeys.contains(keyID) { return 0 }
        // In the order the rows are read, as on SQLite: per-resource order is between one resource's notifications
        // (their ids grow event by event), and the port promises no order among the resources of one event. The
        // `ORDER BY resource_crn` this had kept the (key_id, resource_crn, id) index filling in order; with
        // notifications_by_target (schema 0003) it only cost a sort of every registration of the key, spilled to
        // disk past work_mem for 100,000 of them (EXPLAIN ANALYZE: an external merge of 19.7 MB, a sixth of the
        // statement), while rows read in the order they were registered meet their targets' ids nearly in order.
        return try session.execute("""
            INSERT INTO notifications (event_seq, key_id, resource_crn, service, status, attempts, next_attempt_at, target_id)
            SELECT ?, key_id, resource_crn, service, 'pending', 0, ?, target_id FROM registrations WHERE key_id = ?
            """, [eventSequence, date.storageMilliseconds, keyID])
    }

    func recordDelivery(notificationID: Int64, _ outcome: DeliveryOutcome) throws {
        // Every outcome ends the dispatcher's claim on the row (claimDueNotifications).
        switch outcome {
        case .sent(let at, let deadline):
            try session.send("UPDATE notifications SET status = 'sent', attempts = attempts + 1, sent_at = ?, next_attempt_at = ?, last_error = NULL, claimed_until = NULL WHERE id = ? AND status IN ('pending', 'sent')",
                                [at.storageMilliseconds, deadline.storageMilliseconds, notificationID])
        case .failed(_, let error, let retryAt):
            try session.send("UPDATE notifications SET status = 'pending', attempts = attempts + 1, next_attempt_at = ?, last_error = ?, claimed_until = NULL WHERE id = ? AND status IN ('pending', 'sent')",
                                [retryAt.storageMilliseconds, error, notificationID])
        case .dead(_, let error):
            // The attempt that ran the attempts out counts too: "dead after N attempts" has attempts = N.
            try session.send("UPDATE notifications SET status = 'dead', attempts = attempts + 1, next_attempt_at = NULL, last_error = ?, claimed_until = NULL WHERE id = ? AND status IN ('pending', 'sent')",
                                [error, notificationID])
        case .unacknowledged(_, let error):
            try session.send("UPDATE notifications SET status = 'dead', next_attempt_at = NULL, last_error = ?, incomplete = 408, claimed_until = NULL WHERE id = ? AND status = 'sent'",
                                [error, notificationID])
        }
    }

    func claimDueNotifications(at date: Date, limit: Int, leaseUntil: Date) throws -> [ResourceNotification] {
        // The due rows (dueNotifications' condition) that no live claim holds, locked without waiting for rows another
        // dispatcher is claiming right now (SKIP LOCKED), then marked claimed until the lease ends.
        let claimed = try session.rows("""
            WITH due AS (
                SELECT n.id FROM notifications n
                WHERE \(Self.dueCondition) AND (n.claimed_until IS NULL OR n.claimed_until <= ?)
                ORDER BY n.next_attempt_at, n.id LIMIT ?
                FOR UPDATE OF n SKIP LOCKED
            )
            UPDATE notifications SET claimed_until = ? FROM due WHERE notifications.id = due.id RETURNING notifications.id
            """, [date.storageMilliseconds, date.storageMilliseconds, limit, leaseUntil.storageMilliseconds]).map {
            try StoredRow(row: $0, table: "notifications").value("id", as: Int64.self)
        }
        guard !claimed.isEmpty else { return [] }
        return try all("""
            SELECT \(notificationColumns) FROM notifications n JOIN events e ON e.seq = n.event_seq
            WHERE n.id = ANY(?) ORDER BY n.next_attempt_at, n.id
            """, [claimed], decodeNotification)
    }

    func recordStateConflict(keyID: String, resourceCRN: String, eventSequence: Int64, error: String) throws {
        try session.send("""
            UPDATE notifications SET incomplete = 409, last_error = ?
            WHERE target_id = \(Self.targetOfPair) AND event_seq = ?
            """, [error, keyID, resourceCRN, eventSequence])
    }

    func acknowledgeNotifications(keyID: String, resourceCRN: String, upToEventSequence: Int64, at date: Date) throws -> Int {
        try session.execute("""
            UPDATE notifications SET status = 'acknowledged', acked_at = ?, next_attempt_at = NULL
            WHERE target_id = \(Self.targetOfPair)
              AND event_seq <= ? AND status IN ('pending', 'sent', 'dead')
              AND (status != 'dead' OR event_seq = ?)
            """, [date.storageMilliseconds, keyID, resourceCRN, upToEventSequence, upToEventSequence])
    }

    func putInstancePolicy(_ policy: InstancePolicy, instanceID: String) throws {
        try session.send("""
            INSERT INTO instance_policies (instance_id, policy_type, enabled, attributes, stamp) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (instance_id, policy_type) DO UPDATE SET enabled = excluded.enabled, attributes = excluded.attributes, stamp = excluded.stamp
            """, [instanceID, policy.policyType, policy.enabled, policy.attributesJSON, try encodeJSON(policy.stamp)])
    }

    func setMeta(_ name: String, _ value: Data) throws {
        try session.send("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value", [name, value])
    }

    // MARK: Overview queries (one statement per page: the page's ids as one array parameter)

    func registrationSummaries(keyIDs: [String]) throws -> [String: RegistrationSummary] {
        guard !keyIDs.isEmpty else { return [:] }
        var summaries: [String: RegistrationSummary] = [:]
        for row in try session.rows("SELECT key_id, \(summaryColumns) FROM registrations WHERE key_id = ANY(?) GROUP BY key_id", [keyIDs]) {
            summaries[try StoredRow(row: row, table: "registrations").value("key_id", as: String.self)] = try decodeSummary(row)
        }
        return summaries
    }

    func deliveryCounts(keyIDs: [String]) throws -> [String: DeliveryCounts] {
        guard !keyIDs.isEmpty else { return [:] }
        var counts: [String: DeliveryCounts] = [:]
        for row in try session.rows("""
            SELECT t.key_id, n.status, COUNT(*) AS c FROM notification_targets t JOIN notifications n ON n.target_id = t.id
            WHERE t.key_id = ANY(?) GROUP BY t.key_id, n.status
            """, [keyIDs]) {
            let r = StoredRow(row: row, table: "notifications")
            let status = try r.code("status", as: NotificationStatus.self)
            counts[try r.value("key_id", as: String.self), default: DeliveryCounts()][status] = try r.value("c")
        }
        return counts
    }

    func forEachRegistration(keyIDs: [String], _ body: (Registration) throws -> Void) throws {
        guard !keyIDs.isEmpty else { return }
        try streamRegistrations(body) { last in
            ("""
             SELECT \(registrationColumns) FROM registrations r
             WHERE r.key_id = ANY(?) AND (?::text IS NULL OR (r.key_id, r.resource_crn) > (?::text, ?::text))
             ORDER BY r.key_id, r.resource_crn
             """, [keyIDs, last?.keyID, last?.keyID, last?.resourceCRN])
        }
    }

    func eventsNewestFirst(keyID: String, limit: Int, offset: Int) throws -> [LifecycleEvent] {
        try all("SELECT \(eventColumns) FROM events e WHERE e.key_id = ? ORDER BY e.key_seq DESC LIMIT ? OFFSET ?", [keyID, limit, offset], decodeEvent)
    }

    func countEvents(keyID: String) throws -> Int {
        try count("SELECT COUNT(*) AS c FROM events WHERE key_id = ?", [keyID], table: "events")
    }

    func notifications(eventSequences: [Int64]) throws -> [ResourceNotification] {
        guard !eventSequences.isEmpty else { return [] }
        // Each event's key's pairs, probed at the event (notifications_by_target, schema 0003: no index of
        // notifications by event alone). The events' keys are read first so that the statement names them: the
        // planner then knows how many pairs they have (a join through events.key_id it cannot estimate, and would
        // read the whole table for a key with three resources).
        let keyIDs = try all("SELECT DISTINCT key_id FROM events WHERE seq = ANY(?)", [eventSequences]) {
            try StoredRow(row: $0, table: "events").value("key_id", as: String.self)
        }
        guard !keyIDs.isEmpty else { return [] }
        return try all("""
            SELECT \(notificationColumns) FROM notification_targets t
            JOIN notifications n ON n.target_id = t.id
            JOIN events e ON e.seq = n.event_seq
            WHERE t.key_id = ANY(?) AND n.event_seq = ANY(?) ORDER BY n.event_seq DESC, n.resource_crn
            """, [keyIDs, eventSequences], decodeNotification)
    }

    // MARK: KMIP adapter management

    func kmipAdapter(id: String, instanceID: String) throws -> KMIPAdapter? {
        try one("SELECT \(kmipAdapterColumns) FROM kmip_adapters WHERE id = ? AND instance_id = ?", [id, instanceID], decodeKMIPAdapter)
    }

    func kmipAdapter(name: String, instanceID: String) throws -> KMIPAdapter? {
        try one("SELECT \(kmipAdapterColumns) FROM kmip_adapters WHERE instance_id = ? AND name = ?", [instanceID, name], decodeKMIPAdapter)
    }

    private func adapterFilter(instanceID: String, crkID: String?, keyRingID: String?) -> (String, [Argument]) {
        var sql = "instance_id = ?"
        var arguments: [Argument] = [instanceID]
        if let crkID {
            sql += " AND crk_id = ?"
            arguments.append(crkID)
        }
        if let keyRingID {
            sql += " AND crk_id IN (SELECT id FROM keys WHERE instance_id = ? AND key_ring_id = ?)"
            arguments += [instanceID, keyRingID]
        }
        return (sql, arguments)
    }

    func kmipAdapters(instanceID: String, crkID: String?, keyRingID: String?, limit: Int, offset: Int) throws -> [KMIPAdapter] {
        let (filter, arguments) = adapterFilter(instanceID: instanceID, crkID: crkID, keyRingID: keyRingID)
        return try all("SELECT \(kmipAdapterColumns) FROM kmip_adapters WHERE \(filter) ORDER BY created_at, id LIMIT ? OFFSET ?",
                       arguments + [limit, offset], decodeKMIPAdapter)
    }

    func countKMIPAdapters(instanceID: String, crkID: String?, keyRingID: String?) throws -> Int {
        let (filter, arguments) = adapterFilter(instanceID: instanceID, crkID: crkID, keyRingID: keyRingID)
        return try count("SELECT COUNT(*) AS c FROM kmip_adapters WHERE \(filter)", arguments, table: "kmip_adapters")
    }

    func kmipClientCertificate(id: String, adapterID: String) throws -> KMIPClientCertificate? {
        try one("SELECT \(kmipCertificateColumns) FROM kmip_client_certificates WHERE id = ? AND adapter_id = ?", [id, adapterID],
                decodeKMIPClientCertificate)
    }

    func kmipClientCertificate(name: String, adapterID: String) throws -> KMIPClientCertificate? {
        try one("SELECT \(kmipCertificateColumns) FROM kmip_client_certificates WHERE adapter_id = ? AND name = ?", [adapterID, name],
                decodeKMIPClientCertificate)
    }

    func kmipClientCertificates(adapterID: String, limit: Int, offset: Int) throws -> [KMIPClientCertificate] {
        try all("SELECT \(kmipCertificateColumns) FROM kmip_client_certificates WHERE adapter_id = ? ORDER BY created_at, id LIMIT ? OFFSET ?",
                [adapterID, limit, offset], decodeKMIPClientCertificate)
    }

    func countKMIPClientCertificates(adapterID: String) throws -> Int {
        try count("SELECT COUNT(*) AS c FROM kmip_client_certificates WHERE adapter_id = ?", [adapterID], table: "kmip_client_certificates")
    }

    func kmipObject(id: String, adapterID: String) throws -> KMIPObject? {
        try one("SELECT \(kmipObjectColumns) FROM kmip_objects WHERE id = ? AND adapter_id = ?", [id, adapterID], decodeKMIPObject)
    }

    private func stateCodes(_ states: Set<KMIPObjectState>) -> [Int] { states.map { Int($0.rawValue) }.sorted() }

    func kmipObjects(adapterID: String, states: Set<KMIPObjectState>, limit: Int, offset: Int) throws -> [KMIPObject] {
        try all("SELECT \(kmipObjectColumns) FROM kmip_objects WHERE adapter_id = ? AND state = ANY(?) ORDER BY created_at, id LIMIT ? OFFSET ?",
                [adapterID, stateCodes(states), limit, offset], decodeKMIPObject)
    }

    func countKMIPObjects(adapterID: String, states: Set<KMIPObjectState>) throws -> Int {
        try count("SELECT COUNT(*) AS c FROM kmip_objects WHERE adapter_id = ? AND state = ANY(?)", [adapterID, stateCodes(states)],
                  table: "kmip_objects")
    }

    func insertKMIPAdapter(_ a: KMIPAdapter) throws {
        try session.send("INSERT INTO kmip_adapters (\(kmipAdapterColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [a.id, a.instanceID, a.name, a.description, a.profile, a.crkID, a.createdAt.storageMilliseconds,
                             a.createdBy, a.updatedAt.storageMilliseconds, a.updatedBy])
    }

    func deleteKMIPAdapter(id: String) throws -> Bool {
        // Certificates and objects go by ON DELETE CASCADE.
        try session.execute("DELETE FROM kmip_adapters WHERE id = ?", [id]) > 0
    }

    func insertKMIPClientCertificate(_ c: KMIPClientCertificate) throws {
        try session.send("INSERT INTO kmip_client_certificates (\(kmipCertificateColumns)) VALUES (?, ?, ?, ?, ?, ?)",
                            [c.id, c.adapterID, c.name, c.certificate, c.createdAt.storageMilliseconds, c.createdBy])
    }

    func deleteKMIPClientCertificate(id: String) throws -> Bool {
        try session.execute("DELETE FROM kmip_client_certificates WHERE id = ?", [id]) > 0
    }

    func saveKMIPObject(_ o: KMIPObject) throws {
        try session.send("""
            INSERT INTO kmip_objects (\(kmipObjectColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET adapter_id = excluded.adapter_id, object_type = excluded.object_type,
                state = excluded.state, created_at = excluded.created_at, created_by = excluded.created_by,
                created_by_certificate_id = excluded.created_by_certificate_id, updated_at = excluded.updated_at,
                updated_by = excluded.updated_by, updated_by_certificate_id = excluded.updated_by_certificate_id,
                destroyed_at = excluded.destroyed_at, destroyed_by = excluded.destroyed_by,
                destroyed_by_certificate_id = excluded.destroyed_by_certificate_id
            """, [o.id, o.adapterID, o.objectType, o.state.rawValue, o.createdAt.storageMilliseconds, o.createdBy,
                  o.createdByCertificateID, ms(o.updatedAt), o.updatedBy, o.updatedByCertificateID, ms(o.destroyedAt),
                  o.destroyedBy, o.destroyedByCertificateID])
    }
}
