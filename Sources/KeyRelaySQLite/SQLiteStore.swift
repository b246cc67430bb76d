import Foundation
import GRDB
import GRDBSQLite
import KeyRelayCore
import KeyRelayStore

/// KeyRelay's SQLite backend of the store port (GRDB on the system libsqlite3): WAL, a durable commit for every
/// write through one commit path (group commit), the schema from `schema/sqlite/` applied in order on open, cached
/// statements, and rows that fail closed on values this build does not know.
public final class SQLiteStore: KeyRelayStorage {
    /// Where the database lives.
    public enum Location: Sendable, Equatable {
        case file(String)
        /// A private in-memory database (tests, examples). Not durable, by definition.
        case inMemory
    }

    /// How hard a commit is pushed to the disk.
    public enum Durability: String, Sendable {
        /// `PRAGMA synchronous = FULL`: in WAL mode every commit is fsynced before it is acknowledged.
        case full
        /// `PRAGMA synchronous = NORMAL`: a commit may be lost on power failure (never corrupts). Not for a KMS.
        case normal
    }

    let writer: any DatabaseWriter
    public let location: Location
    // Group commit (issue #6, GroupCommit.swift): `write` goes through it so that concurrent commands share one
    // durable COMMIT, each in its own savepoint.
    let committer: GroupCommitter

    /// Opens (creating if needed) and migrates the database.
    /// - Parameter createIfMissing: when false, a missing file (or one that holds no KeyRelay schema yet) is
    ///   refused with ``StoreError/databaseNotFound(path:)`` instead of being created: for commands that only read,
    ///   so that a typo in a path is an error rather than a new, empty database.
    /// - Throws: ``StoreError/newerSchema(unknown:)`` for a file written by a newer KeyRelay.
    public init(_ location: Location, durability: Durability = .full, createIfMissing: Bool = true) throws {
        self.location = location
        if !createIfMissing, case .file(let path) = location, !FileManager.default.fileExists(atPath: path) {
            throw StoreError.databaseNotFound(path: path)
        }
        var config = Configuration()
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(10)
        // Purge erases key material: deleted rows are overwritten with zeros instead of lingering in free pages.
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA secure_delete = ON") }
        switch location {
        case .file(let path):
            let pool = try DatabasePool(path: path, configuration: config)
            // DatabasePool sets `synchronous = NORMAL` when it turns WAL on, after `prepareDatabase` has run:
            // the durable setting must be applied afterwards, on the writer connection.
            try pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = \(durability == .full ? "FULL" : "NORMAL")")
            }
            writer = pool
            if !createIfMissing, try !pool.read({ db in try db.tableExists("grdb_migrations") }) {
                try pool.close()
                throw StoreError.databaseNotFound(path: path)
            }
        case .inMemory:
            writer = try DatabaseQueue(configuration: config)
        }
        try Self.migrate(writer)
        committer = GroupCommitter(writer: writer)  // group commit (issue #6)
    }

    /// The embedded migrations, in order: (identifier, SQL).
    public static var migrations: [(identifier: String, sql: String)] { EmbeddedSchema.migrations }

    static func migrate(_ writer: any DatabaseWriter) throws {
        var migrator = DatabaseMigrator()
        for migration in EmbeddedSchema.migrations {
            migrator.registerMigration(migration.identifier) { db in
                try db.execute(sql: migration.sql)
            }
        }
        let known = Set(EmbeddedSchema.migrations.map(\.identifier))
        try writer.writeWithoutTransaction { db in
            if try db.tableExists("grdb_migrations") {
                let applied = try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")
                let unknown = applied.filter { !known.contains($0) }.sorted()
                if !unknown.isEmpty { throw StoreError.newerSchema(unknown: unknown) }
            }
        }
        try migrator.migrate(writer)
    }

    /// Reads a pragma from the writer connection (e.g. `synchronous`, `journal_mode`).
    public func writerPragma(_ name: String) throws -> String? {
        try writer.writeWithoutTransaction { db in try String.fetchOne(db, sql: "PRAGMA \(name)") }
    }

    /// Copies the write-ahead log into the database file and empties it (`PRAGMA wal_checkpoint(TRUNCATE)`).
    public func checkpoint() throws {
        try writer.writeWithoutTransaction { db in _ = try Row.fetchAll(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
    }

    /// Runs `PRAGMA integrity_check` and returns its verdict (`ok` when sound).
    public func integrityCheck() throws -> String {
        try writer.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ") }
    }

    public func write<T: Sendable>(_ command: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T {
        // Group commit (issue #6): the command runs in its own savepoint of a shared transaction, and this returns
        // only after that transaction's COMMIT. See GroupCommit.swift.
        let value = try await committer.submit { db in try command(SQLiteTransaction(db: db)) }
        commits.signal()
        return value
    }

    /// Signalled after each write commits. Only this process's writes: another process writing the same file is
    /// seen by readers that also poll (the engine's event stream takes a poll interval for that).
    public let commits = CommitFeed()

    /// How group commit has batched this store's writes so far (benchmarks, diagnostics). Issue #6.
    public var groupCommitStatistics: GroupCommitStatistics { committer.statistics }

    /// Runs `query` in a read-only transaction of one of the pool's reader connections, on the calling thread.
    ///
    /// GRDB's `async` read hops twice (to the pool's semaphore queue, then to the reader's queue) and back to the
    /// caller's executor: three thread hand-offs for a read that takes tens of microseconds, the largest cost of a
    /// `GET /keys/{id}` once its statements were cached (docs/performance.md, "HTTP edge: reads on the calling thread"). GRDB's
    /// synchronous reads run the closure on the calling thread (`DispatchQueue.sync` on the reader's queue executes
    /// in place), so a read costs no hop at all; ``readInPlace(_:_:)`` opens the same deferred transaction as
    /// `DatabasePool.read`, so `query` still sees one consistent snapshot. It blocks the calling thread — from the engine, a
    /// cooperative-pool thread — for the read's duration, which is acceptable because a read never waits on
    /// anything that needs the cooperative pool: the closure is synchronous, a WAL reader never waits for the
    /// writer, and the pool's semaphore only waits for another reader to finish its own synchronous read. What
    /// it can wait on is the disk (a page not in the cache) and, in the rare case of a WAL index being rebuilt,
    /// SQLite's busy timeout; both stall only the thread that reads. `read` is a nonisolated `async` function, so it
    /// runs on the global executor even when the engine actor awaits it: the actor is not held during a read. (Were
    /// the package to adopt `NonisolatedNonsendingByDefault`, `read` would need `@concurrent` to stay so.)
    ///
    /// The in-memory database (a `DatabaseQueue`, tests and examples) shares one connection with the writer, so
    /// a synchronous read there could wait for a group-commit batch: it keeps GRDB's asynchronous read.
    public func read<T: Sendable>(_ query: @escaping @Sendable (any StorageReader) throws -> T) async throws -> T {
        guard let pool = writer as? DatabasePool else {
            return try await writer.read { db in try query(SQLiteTransaction(db: db)) }
        }
        return try Self.readInPlace(pool, query)
    }

    /// GRDB's synchronous read (not callable from an `async` context without the compiler preferring the
    /// asynchronous overload, hence a synchronous function), in a deferred transaction like `DatabasePool.read`'s:
    /// its `BEGIN`/`COMMIT` are cached statements here, where `DatabasePool.read` compiles both anew on every read.
    private static func readInPlace<T>(_ pool: DatabasePool, _ query: (any StorageReader) throws -> T) throws -> T {
        try pool.unsafeRead { db in
            try db.cachedStatement(sql: "BEGIN DEFERRED TRANSACTION").execute()
            do {
                let value = try query(SQLiteTransaction(db: db))
                try db.cachedStatement(sql: "COMMIT TRANSACTION").execute()
                return value
            } catch {
                if db.isInsideTransaction { try? db.cachedStatement(sql: "ROLLBACK TRANSACTION").execute() }
                throw error
            }
        }
    }

    /// SQLite's online backup API (through GRDB): a reader connection's snapshot is copied page by page into a
    /// new file, without holding the writer. The destination is created exclusively first (`O_EXCL`), so an
    /// existing file is never touched; a failed copy removes the file it created.
    public func backup(to path: String) async throws {
        try createExclusively(path)
        do {
            let destination = try DatabaseQueue(path: path)
            try writer.backup(to: destination)
            let verdict = try await destination.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ") }
            try destination.close()
            guard verdict == "ok" else {
                throw StoreError.corruptRow(table: "(backup)", column: "integrity_check", value: verdict)
            }
        } catch {
            for suffix in ["", "-wal", "-shm", "-journal"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            throw error
        }
    }

    /// Closes the database.
    public func close() throws {
        if let pool = writer as? DatabasePool { try pool.close() }
        if let queue = writer as? DatabaseQueue { try queue.close() }
    }
}

/// Creates an empty file at `path` (mode 0600), failing if anything is there already: `O_EXCL` closes the gap
/// between "does it exist?" and "create it" that a check would leave.
private func createExclusively(_ path: String) throws {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
    guard descriptor >= 0 else {
        let code = errno
        if code == EEXIST { throw StoreError.backupDestinationExists(path: path) }
        let reason = String(cString: strerror(code))
        throw StoreError.backupDestinationUnwritable(path: path, reason: reason.prefix(1).lowercased() + reason.dropFirst())
    }
    close(descriptor)
}

// MARK: - Row mapping

/// The columns a key is read from, in the order `keyColumns` selects them: ``KeyRow/decode(_:)`` reads each by its
/// position (``rawValue``), with no name lookup. The stored columns of `keys`, then the key's aliases.
private enum KeyColumn: Int, CaseIterable {
    case id, instanceID, name, description, tags, keyRingID, extractable, imported, state, createdAt, createdBy,
         updatedAt, updatedBy, lastActionAt, lastSyncAt, lastRotateAt, expiresAt, versionID, versionCreatedAt,
         versionCount, deletedAt, deletedBy, dualAuthEnabled, dualAuthBy, dualAuthExpiresAt, dualAuthStamp,
         rotationEnabled, rotationInterval, rotationStamp, eventSequence
    /// Not a column of `keys`: the key's aliases as a JSON array, selected with it (`keyColumns`).
    case aliases

    /// The column's name, as selected and as an error names it.
    var name: String { keyColumnNames[rawValue] }
}

/// ``KeyColumn``'s names, by position.
private let keyColumnNames = [
    "id", "instance_id", "name", "description", "tags", "key_ring_id", "extractable", "imported", "state",
    "created_at", "created_by", "updated_at", "updated_by", "last_action_at", "last_sync_at", "last_rotate_at",
    "expires_at", "version_id", "version_created_at", "version_count", "deleted_at", "deleted_by",
    "dual_auth_enabled", "dual_auth_by", "dual_auth_expires_at", "dual_auth_stamp", "rotation_enabled",
    "rotation_interval", "rotation_stamp", "event_sequence", "aliases",
]

private let keyColumns = KeyColumn.allCases.dropLast().map { "k.\($0.name)" }.joined(separator: ", ") + """
    ,
    (SELECT json_group_array(alias) FROM (SELECT alias FROM aliases a WHERE a.key_id = k.id ORDER BY a.created_at, a.alias)) AS \(KeyColumn.aliases.name)
    """

/// The read of one key, every request's first query: built once, not interpolated (1.2 KB) on every read.
private let keyByIDSQL = "SELECT \(keyColumns) FROM keys k WHERE k.id = ? AND k.instance_id = ?"

private let registrationColumns = """
    r.key_id, r.resource_crn, r.instance_id, r.service, r.description, r.metadata, r.prevent_key_deletion,
    r.key_version_id, r.key_version_created_at, r.created_by, r.created_at, r.updated_by, r.updated_at,
    r.ack_event_id, r.ack_state, r.ack_key_version_id, r.ack_processed_at, r.ack_received_at, r.protection_ended_at
    """

/// A registration summary of a group of rows: only the registrations that still protect their key count for the
/// delete rule (`protecting`, `preventing`); `total` counts them all.
private let summaryColumns = """
    COALESCE(SUM(protection_ended_at IS NULL), 0) AS protecting,
    COALESCE(SUM(prevent_key_deletion = 1 AND protection_ended_at IS NULL), 0) AS preventing, COUNT(*) AS total
    """

private func decodeSummary(_ row: Row) throws -> RegistrationSummary {
    let r = StoredRow(row: row, table: "registrations")
    return RegistrationSummary(count: try r.value("protecting"), preventingDeletion: try r.value("preventing"),
                               total: try r.value("total"))
}

private let eventColumnNames = [
    "seq", "id", "instance_id", "key_id", "key_seq", "kind", "key_state", "version_id", "version_created_at", "at",
    "principal", "correlation_id",
]

private let eventColumns = eventColumnNames.map { "e.\($0)" }.joined(separator: ", ")

/// The columns of `notificationColumns`, in order: the notification's (`n.id` as `notification_id`), then the event's.
private let notificationColumnNames = [
    "notification_id", "resource_crn", "service", "status", "attempts", "next_attempt_at", "last_error", "sent_at",
    "acked_at", "incomplete",
]

private let notificationColumns = (["n.id AS notification_id"] + notificationColumnNames.dropFirst().map { "n.\($0)" }
                                   + eventColumnNames.map { "e.\($0)" }).joined(separator: ", ")

/// Each column of `notificationColumns` by name, to its position: every query decoded by `decodeNotification` selects
/// `notificationColumns` first, so a notification (the dispatcher reads one per delivery, in its claims) is read by
/// position, without a name lookup (which lowercases the name) per column.
private let notificationColumnPositions: [String: Int] = Dictionary(
    uniqueKeysWithValues: (notificationColumnNames + eventColumnNames).enumerated().map { ($0.element, $0.offset) })

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

/// A key's tags as stored: most keys have none, and Foundation's JSONEncoder costs more than the rest of a key's
/// update, so the empty list is written without it (the same text the encoder writes).
private func encodeTags(_ tags: [String]) throws -> String {
    tags.isEmpty ? "[]" : try encodeJSON(tags) ?? "[]"
}

/// What both row readers share: a value of a column, and the refusal naming it. Dates, codes and JSON are read
/// through `value`, so every reader fails closed the same way.
private protocol FailClosedRow {
    associatedtype Column
    func value<T: DatabaseValueConvertible>(_ column: Column, as type: T.Type) throws -> T
    func corrupt(_ column: Column) -> StoreError
}

extension FailClosedRow {
    func date(_ column: Column) throws -> Date {
        Date(storageMilliseconds: try value(column, as: Int64.self))
    }

    func optionalDate(_ column: Column) throws -> Date? {
        try value(column, as: Int64?.self).map(Date.init(storageMilliseconds:))
    }

    /// A stored code (state, kind, status) that must be one this build knows.
    func code<E: RawRepresentable>(_ column: Column, as type: E.Type) throws -> E where E.RawValue: DatabaseValueConvertible {
        guard let known = E(rawValue: try value(column, as: E.RawValue.self)) else { throw corrupt(column) }
        return known
    }

    /// JSON text decoded as `T`, or nil when the column is NULL.
    func json<T: Decodable>(_ column: Column, as type: T.Type) throws -> T? {
        guard let text = try value(column, as: String?.self) else { return nil }
        guard let decoded = StoredJSON.decode(text, as: type) else { throw corrupt(column) }
        return decoded
    }
}

/// One stored row, read so that it fails closed: a missing, mistyped or unknown value throws
/// ``StoreError/corruptRow(table:column:value:)`` naming it, instead of turning into a default (an unknown state
/// read as active would let a deleted key wrap again) or crashing the process on a force-unwrap.
private struct StoredRow: FailClosedRow {
    let row: Row
    let table: String
    /// Where each column is in `row`, when the statement's column list is known (`notificationColumns`): a value is
    /// then read by position. Nil: by name.
    var positions: [String: Int]? = nil

    func corrupt(_ column: String) -> StoreError {
        let stored = (row[column] as DatabaseValue?).map(\.description) ?? "no such column"
        return .corruptRow(table: table, column: column, value: stored)
    }

    /// A value that must be present and of type `T` (ask for `T?` when NULL is allowed).
    func value<T: DatabaseValueConvertible>(_ column: String, as type: T.Type = T.self) throws -> T {
        do {
            if let index = positions?[column] { return try row.decode(type, atIndex: index) }
            return try row.decode(type, forColumn: column)
        } catch {
            throw corrupt(column)
        }
    }
}

/// A key's row as SQLite steps it, read by position (issue #16): no GRDB `Row`, whose statement row builds a
/// lowercased name-to-index dictionary of all 31 columns for every query, and no name lookup per value. Each value
/// goes through GRDB's `DatabaseValue` and its type's `fromDatabaseValue`, the conversions `Row.decode` applies to a
/// statement row, so a missing, mistyped or unknown value fails closed as ``StoredRow`` makes it: the same
/// ``StoreError/corruptRow(table:column:value:)``, naming the column and the stored value.
private struct KeyRowReader: FailClosedRow {
    let statement: SQLiteStatement

    private func stored(_ column: KeyColumn) -> DatabaseValue {
        DatabaseValue(sqliteStatement: statement, index: CInt(column.rawValue))
    }

    func corrupt(_ column: KeyColumn) -> StoreError {
        .corruptRow(table: KeyRow.databaseTableName, column: column.name, value: stored(column).description)
    }

    /// A value that must be present and of type `T` (ask for `T?` when NULL is allowed).
    func value<T: DatabaseValueConvertible>(_ column: KeyColumn, as type: T.Type = T.self) throws -> T {
        guard let value = T.fromDatabaseValue(stored(column)) else { throw corrupt(column) }
        return value
    }

    /// ``value(_:as:)`` for the types a key's columns hold, read straight from the statement when SQLite stores the
    /// value as KeyRelay writes it (TEXT for a string, INTEGER for a number or a flag, NULL for an absent optional):
    /// no `DatabaseValue` in between, which was half of decoding a key. Any other storage class takes
    /// ``value(_:as:)``'s path, so what is accepted and what is refused stays GRDB's conversion.
    func value<T: InPlaceColumnValue>(_ column: KeyColumn, as type: T.Type = T.self) throws -> T {
        if let value = T.inPlace(statement, CInt(column.rawValue)) { return value }
        guard let value = T.fromDatabaseValue(stored(column)) else { throw corrupt(column) }
        return value
    }

    // The shared readers of ``FailClosedRow``, over the in-place ``value(_:as:)`` (the protocol's own versions call
    // its requirement, the `DatabaseValue` path).

    func date(_ column: KeyColumn) throws -> Date {
        Date(storageMilliseconds: try value(column, as: Int64.self))
    }

    func optionalDate(_ column: KeyColumn) throws -> Date? {
        try value(column, as: Int64?.self).map(Date.init(storageMilliseconds:))
    }

    func json<T: Decodable>(_ column: KeyColumn, as type: T.Type) throws -> T? {
        guard let text = try value(column, as: String?.self) else { return nil }
        guard let decoded = StoredJSON.decode(text, as: type) else { throw corrupt(column) }
        return decoded
    }
}

/// A column type ``KeyRowReader`` reads in place: `inPlace` answers the value when the column's storage class is the
/// one this type is written with, and nil otherwise (the caller then converts through GRDB).
private protocol InPlaceColumnValue: DatabaseValueConvertible {
    static func inPlace(_ statement: SQLiteStatement, _ index: CInt) -> Self?
}

extension String: InPlaceColumnValue {
    /// TEXT, read as `DatabaseValue` reads it (up to the first NUL).
    fileprivate static func inPlace(_ statement: SQLiteStatement, _ index: CInt) -> String? {
        guard sqlite3_column_type(statement, index) == SQLITE_TEXT, let text = sqlite3_column_text(statement, index) else { return nil }
        return String(cString: text)
    }
}

extension Int64: InPlaceColumnValue {
    fileprivate static func inPlace(_ statement: SQLiteStatement, _ index: CInt) -> Int64? {
        sqlite3_column_type(statement, index) == SQLITE_INTEGER ? sqlite3_column_int64(statement, index) : nil
    }
}

extension Int: InPlaceColumnValue {
    /// INTEGER that fits, as GRDB's `Int(exactly:)` conversion.
    fileprivate static func inPlace(_ statement: SQLiteStatement, _ index: CInt) -> Int? {
        Int64.inPlace(statement, index).flatMap { Int(exactly: $0) }
    }
}

extension Bool: InPlaceColumnValue {
    /// INTEGER, non-zero for true, as GRDB's conversion.
    fileprivate static func inPlace(_ statement: SQLiteStatement, _ index: CInt) -> Bool? {
        Int64.inPlace(statement, index).map { $0 != 0 }
    }
}

extension Optional: InPlaceColumnValue where Wrapped: InPlaceColumnValue {
    /// NULL is the absent value; anything else is read as `Wrapped` is.
    fileprivate static func inPlace(_ statement: SQLiteStatement, _ index: CInt) -> Wrapped?? {
        if sqlite3_column_type(statement, index) == SQLITE_NULL { return .some(nil) }
        return Wrapped.inPlace(statement, index).map { .some($0) }
    }
}

/// Steps a statement that selects `keyColumns`, decoding each row into a key as SQLite produces it (GRDB's own
/// cursor protocol: its `next()` runs GRDB's statement bookkeeping and error reporting around `sqlite3_step`).
private final class KeyCursor: DatabaseCursor {
    typealias Element = Key
    let _statement: Statement
    var _isDone = false

    init(_ statement: Statement, arguments: StatementArguments) throws {
        _statement = statement
        try statement.setArguments(arguments)
    }

    deinit {
        // As GRDB's cursors do: a statement left on a row would keep its read open. A failed step makes reset fail
        // too, with the step's error, which was thrown already.
        sqlite3_reset(_statement.sqliteStatement)
    }

    func _element(sqliteStatement: SQLiteStatement) throws -> Key {
        try KeyRow.decode(KeyRowReader(statement: sqliteStatement))
    }

    /// Every key `statement` selects, with `arguments`.
    static func all(_ statement: Statement, arguments: StatementArguments) throws -> [Key] {
        let cursor = try KeyCursor(statement, arguments: arguments)
        var keys: [Key] = []
        while let key = try cursor.next() { keys.append(key) }
        return keys
    }

    /// The first key `statement` selects, with `arguments`.
    static func first(_ statement: Statement, arguments: StatementArguments) throws -> Key? {
        try KeyCursor(statement, arguments: arguments).next()
    }
}

/// A `keys` row: every stored column of a key, named once for writing (``insertSQL``, ``updateSQL``) and reading
/// (``decode(_:)``).
/// A key's aliases live in `aliases` and are read back with it (`keyColumns`).
private struct KeyRow {
    static let databaseTableName = "keys"

    let key: Key

    /// The columns a stored key can change, in ``updateArguments()``'s order. The key's identity and origin (`id`,
    /// `instance_id`, `created_at`, `created_by`) are written once by the insert and are not in the SET list, so an
    /// update leaves the id index and `keys_by_instance (instance_id, created_at, id)` untouched.
    static let updateSQL = """
        UPDATE keys SET name = ?, description = ?, tags = ?, key_ring_id = ?, extractable = ?, imported = ?, state = ?,
            updated_at = ?, updated_by = ?, last_action_at = ?, last_sync_at = ?, last_rotate_at = ?, expires_at = ?,
            version_id = ?, version_created_at = ?, version_count = ?, deleted_at = ?, deleted_by = ?,
            dual_auth_enabled = ?, dual_auth_by = ?, dual_auth_expires_at = ?, dual_auth_stamp = ?,
            rotation_enabled = ?, rotation_interval = ?, rotation_stamp = ?, event_sequence = ?
        WHERE id = ?
        """

    /// Every column, for the insert: the key's identity and origin, then ``updateSQL``'s columns in its order.
    static let insertSQL = """
        INSERT INTO keys (id, instance_id, created_at, created_by, name, description, tags, key_ring_id, extractable, imported,
            state, updated_at, updated_by, last_action_at, last_sync_at, last_rotate_at, expires_at, version_id,
            version_created_at, version_count, deleted_at, deleted_by, dual_auth_enabled, dual_auth_by, dual_auth_expires_at,
            dual_auth_stamp, rotation_enabled, rotation_interval, rotation_stamp, event_sequence)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """

    func insertArguments() throws -> StatementArguments {
        var arguments: StatementArguments = [key.id, key.instanceID, ms(key.creationDate), key.createdBy]
        _ = arguments.append(contentsOf: try mutableValues())
        return arguments
    }

    func updateArguments() throws -> StatementArguments {
        var arguments = try mutableValues()
        _ = arguments.append(contentsOf: [key.id])
        return arguments
    }

    private func mutableValues() throws -> StatementArguments {
        [key.name, key.description, try encodeTags(key.tags), key.keyRingID, key.extractable, key.imported, key.state.rawValue,
         ms(key.lastUpdateDate), key.updatedBy, ms(key.lastLifecycleActionDate), ms(key.lastSyncDate), ms(key.lastRotateDate),
         ms(key.expirationDate), key.currentVersion.id, ms(key.currentVersion.creationDate), key.versionCount,
         ms(key.deletionDate), key.deletedBy, key.dualAuthDelete.enabled, key.dualAuthDelete.authorizedBy,
         ms(key.dualAuthDelete.authExpiration), try encodeJSON(key.dualAuthStamp), key.rotation?.enabled,
         key.rotation?.intervalMonth, try encodeJSON(key.rotationStamp), key.eventSequence]
    }

    static func decode(_ r: KeyRowReader) throws -> Key {
        let version = KeyVersion(id: try r.value(.versionID), creationDate: try r.date(.versionCreatedAt))
        var key = Key(id: try r.value(.id), instanceID: try r.value(.instanceID), name: try r.value(.name),
                      description: try r.value(.description), tags: try r.json(.tags, as: [String].self) ?? [],
                      aliases: try r.json(.aliases, as: [String].self) ?? [],
                      keyRingID: try r.value(.keyRingID), extractable: try r.value(.extractable),
                      imported: try r.value(.imported), state: try r.code(.state, as: KeyState.self),
                      creationDate: try r.date(.createdAt), createdBy: try r.value(.createdBy),
                      expirationDate: try r.optionalDate(.expiresAt), currentVersion: version)
        key.lastUpdateDate = try r.date(.updatedAt)
        key.updatedBy = try r.value(.updatedBy)
        key.lastLifecycleActionDate = try r.optionalDate(.lastActionAt)
        key.lastSyncDate = try r.optionalDate(.lastSyncAt)
        key.lastRotateDate = try r.optionalDate(.lastRotateAt)
        key.versionCount = try r.value(.versionCount)
        key.deletionDate = try r.optionalDate(.deletedAt)
        key.deletedBy = try r.value(.deletedBy)
        key.dualAuthDelete = DualAuthDelete(enabled: try r.value(.dualAuthEnabled), authorizedBy: try r.value(.dualAuthBy),
                                            authExpiration: try r.optionalDate(.dualAuthExpiresAt))
        key.dualAuthStamp = try r.json(.dualAuthStamp, as: PolicyStamp.self)
        if let enabled = try r.value(.rotationEnabled, as: Bool?.self) {
            // Written together with rotation_enabled (encode(to:)): a policy without its interval is not readable.
            key.rotation = RotationPolicy(enabled: enabled, intervalMonth: try r.value(.rotationInterval))
        }
        key.rotationStamp = try r.json(.rotationStamp, as: PolicyStamp.self)
        key.eventSequence = try r.value(.eventSequence)
        return key
    }
}

private func decodeRegistration(_ row: Row) throws -> Registration {
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
    if try r.value("protection_ended_at", as: Int64?.self) != nil {
        registration.protectionEndedAt = try r.date("protection_ended_at")
    }
    return registration
}

private func decodeEvent(_ row: Row) throws -> LifecycleEvent { try decodeEvent(row, positions: nil) }

private func decodeEvent(_ row: Row, positions: [String: Int]?) throws -> LifecycleEvent {
    let r = StoredRow(row: row, table: "events", positions: positions)
    return LifecycleEvent(sequence: try r.value("seq"), id: try r.value("id"), instanceID: try r.value("instance_id"),
                          keyID: try r.value("key_id"), keySequence: try r.value("key_seq"),
                          kind: try r.code("kind", as: LifecycleEventKind.self),
                          keyState: try r.code("key_state", as: KeyState.self),
                          keyVersion: KeyVersion(id: try r.value("version_id"), creationDate: try r.date("version_created_at")),
                          date: try r.date("at"), principal: try r.value("principal"), correlationID: try r.value("correlation_id"))
}

private func decodeNotification(_ row: Row) throws -> ResourceNotification {
    let r = StoredRow(row: row, table: "notifications", positions: notificationColumnPositions)
    return ResourceNotification(id: try r.value("notification_id"), event: try decodeEvent(row, positions: notificationColumnPositions),
                                resourceCRN: try r.value("resource_crn"),
                                serviceName: try r.value("service"), status: try r.code("status", as: NotificationStatus.self),
                                attempts: try r.value("attempts"), nextAttemptDate: try r.optionalDate("next_attempt_at"),
                                lastError: try r.value("last_error"), sentDate: try r.optionalDate("sent_at"),
                                acknowledgedDate: try r.optionalDate("acked_at"),
                                incomplete: try r.value("incomplete", as: Int?.self).map { code in
                                    guard let reason = IncompleteReason(rawValue: code) else {
                                        throw StoreError.corruptRow(table: "notifications", column: "incomplete", value: String(code))
                                    }
                                    return reason
                                })
}

// MARK: - Cached statements

// Every query of a transaction goes through SQLite's prepared-statement cache of its connection: compiling a
// statement costs more than running these small indexed lookups, and an HTTP read is a handful of them. The SQL
// strings are fixed, or built from a bounded set of fragments (filters, sort columns); values are always bound as
// arguments, so the cache cannot grow with the data.
extension Database {
    fileprivate func execute(cachedSQL sql: String, arguments: StatementArguments = []) throws {
        try cachedStatement(sql: sql).execute(arguments: arguments)
    }
}

extension Row {
    fileprivate static func fetchAll(_ db: Database, cachedSQL sql: String, arguments: StatementArguments = []) throws -> [Row] {
        try fetchAll(db.cachedStatement(sql: sql), arguments: arguments)
    }

    fileprivate static func fetchOne(_ db: Database, cachedSQL sql: String, arguments: StatementArguments = []) throws -> Row? {
        try fetchOne(db.cachedStatement(sql: sql), arguments: arguments)
    }

    /// Decodes every row as SQLite steps it: a statement row finds a column by the statement's own index (no
    /// per-lookup lowercasing, as a copied row does) and reads values without copying them first.
    fileprivate static func decodeAll<T>(_ db: Database, cachedSQL sql: String, arguments: StatementArguments = [],
                                         _ decode: (Row) throws -> T) throws -> [T] {
        let cursor = try fetchCursor(db.cachedStatement(sql: sql), arguments: arguments)
        var decoded: [T] = []
        while let row = try cursor.next() { decoded.append(try decode(row)) }
        return decoded
    }

    /// ``decodeAll(_:cachedSQL:arguments:_:)`` for the first row only.
    fileprivate static func decodeOne<T>(_ db: Database, cachedSQL sql: String, arguments: StatementArguments = [],
                                         _ decode: (Row) throws -> T) throws -> T? {
        let cursor = try fetchCursor(db.cachedStatement(sql: sql), arguments: arguments)
        return try cursor.next().map(decode)
    }
}

extension DatabaseValueConvertible {
    fileprivate static func fetchAll(_ db: Database, cachedSQL sql: String, arguments: StatementArguments = []) throws -> [Self] {
        try fetchAll(db.cachedStatement(sql: sql), arguments: arguments)
    }

    fileprivate static func fetchOne(_ db: Database, cachedSQL sql: String, arguments: StatementArguments = []) throws -> Self? {
        try fetchOne(db.cachedStatement(sql: sql), arguments: arguments)
    }
}

// MARK: - Transaction

/// One GRDB connection seen through the engine's protocols. Lives only inside a `read` or `write` closure.
struct SQLiteTransaction: StorageTransaction {
    let db: Database

    // MARK: Reads

    func instanceExists(_ id: String) throws -> Bool {
        try Bool.fetchOne(db, cachedSQL: "SELECT EXISTS(SELECT 1 FROM instances WHERE id = ?)", arguments: [id]) ?? false
    }

    func instanceIDs() throws -> [String] {
        try String.fetchAll(db, cachedSQL: "SELECT id FROM instances ORDER BY id")
    }

    func key(id: String, instanceID: String) throws -> Key? {
        try KeyCursor.first(db.cachedStatement(sql: keyByIDSQL), arguments: [id, instanceID])
    }

    func keyID(alias: String, instanceID: String) throws -> String? {
        try String.fetchOne(db, cachedSQL: "SELECT key_id FROM aliases WHERE instance_id = ? AND alias = ?",
                            arguments: [instanceID, alias])
    }

    private func keyWhere(instanceID: String, query: KeyQuery) -> (String, StatementArguments) {
        var clauses = ["k.instance_id = ?"]
        var arguments: StatementArguments = [instanceID]
        let states = query.states.map(\.rawValue).sorted()
        let stateClause = "k.state IN (\(states.map(String.init).joined(separator: ",")))"
        if let awaited = query.alsoDestroyedWithRegistrationNotAcknowledging {
            clauses.append("""
                (\(stateClause) OR (k.state = 5 AND EXISTS (SELECT 1 FROM registrations r WHERE r.key_id = k.id \
                AND (r.ack_state IS NULL OR r.ack_state != ?))))
                """)
            _ = arguments.append(contentsOf: [awaited.rawValue])
        } else {
            clauses.append(stateClause)
        }
        if let extractable = query.extractable {
            clauses.append("k.extractable = ?")
            _ = arguments.append(contentsOf: [extractable])
        }
        if let ring = query.keyRingID {
            clauses.append("k.key_ring_id = ?")
            _ = arguments.append(contentsOf: [ring])
        }
        if let excluded = query.excludedKeyID {
            clauses.append("k.id != ?")
            _ = arguments.append(contentsOf: [excluded])
        }
        // One fixed fragment per date that has conditions, its bounds bound as arguments (NULL when absent): the
        // statement cache holds one statement per set of dates, not one per combination of operators.
        for field in KeyQuery.DateField.allCases {
            guard let range = query.dates[field] else { continue }
            let column = Self.column(field)
            clauses.append("((? = 0 OR \(column) IS NULL) AND (? IS NULL OR \(column) >= ?) AND (? IS NULL OR \(column) < ?))")
            let from = range.from?.storageMilliseconds, before = range.before?.storageMilliseconds
            _ = arguments.append(contentsOf: [range.absent, from, from, before, before])
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
            let comparison = search.exact ? "= ? COLLATE NOCASE" : "LIKE ? ESCAPE '\\'"
            if let id = search.keyID {
                matches.append("k.id = ?")
                _ = arguments.append(contentsOf: [id])
            }
            if search.scopes.contains(.name) {
                matches.append("k.name \(comparison)")
                _ = arguments.append(contentsOf: [pattern])
            }
            if search.scopes.contains(.alias) {
                matches.append("EXISTS (SELECT 1 FROM aliases a WHERE a.key_id = k.id AND a.alias \(comparison))")
                _ = arguments.append(contentsOf: [pattern])
            }
            let any = matches.isEmpty ? "(0)" : "(\(matches.joined(separator: " OR ")))"
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
        let terms = order.map { "\(Self.column($0.field)) \($0.descending ? "DESC" : "ASC")" }
            + ["k.id \(order[0].descending ? "DESC" : "ASC")"]
        let sql = "SELECT \(keyColumns) FROM keys k WHERE \(whereSQL) ORDER BY \(terms.joined(separator: ", ")) LIMIT ? OFFSET ?"
        var all = arguments
        _ = all.append(contentsOf: [query.limit, query.offset])
        // Orders of several terms are as many as their permutations: compiled each time, not cached.
        if order.count > 1 { return try KeyCursor.all(db.makeStatement(sql: sql), arguments: all) }
        return try KeyCursor.all(db.cachedStatement(sql: sql), arguments: all)
    }

    func countKeys(instanceID: String, query: KeyQuery) throws -> Int {
        let (whereSQL, arguments) = keyWhere(instanceID: instanceID, query: query)
        return try Int.fetchOne(db, cachedSQL: "SELECT COUNT(*) FROM keys k WHERE \(whereSQL)", arguments: arguments) ?? 0
    }

    func keysDueForExpiry(at date: Date, limit: Int) throws -> [Key] {
        try KeyCursor.all(db.cachedStatement(sql: "SELECT \(keyColumns) FROM keys k WHERE k.state = 1 AND k.expires_at IS NOT NULL AND k.expires_at <= ? ORDER BY k.expires_at, k.id LIMIT ?"),
                          arguments: [date.storageMilliseconds, limit])
    }

    func keysDueForPolicyRotation(at date: Date, month: TimeInterval, limit: Int) throws -> [Key] {
        // The partial index keys_rotation_policy holds exactly the candidates (enabled policy, active generated
        // root key): the due instant is computed on those rows only.
        let due = "COALESCE(k.last_rotate_at, k.created_at) + k.rotation_interval * ?"
        let monthMilliseconds = Int64((month * 1000).rounded())
        return try KeyCursor.all(db.cachedStatement(sql: """
            SELECT \(keyColumns) FROM keys k INDEXED BY keys_rotation_policy
            WHERE k.rotation_enabled = 1 AND k.state = 1 AND k.extractable = 0 AND k.imported = 0
              AND \(due) <= ?
            ORDER BY \(due), k.id LIMIT ?
            """), arguments: [monthMilliseconds, date.storageMilliseconds, monthMilliseconds, limit])
    }

    func destroyedKeys(deletedAtOrBefore date: Date, limit: Int) throws -> [Key] {
        try KeyCursor.all(db.cachedStatement(sql: "SELECT \(keyColumns) FROM keys k WHERE k.state = 5 AND k.deleted_at <= ? ORDER BY k.deleted_at, k.id LIMIT ?"),
                          arguments: [date.storageMilliseconds, limit])
    }

    func aliases(keyID: String) throws -> [AliasRecord] {
        try Row.fetchAll(db, cachedSQL: "SELECT alias, key_id, created_at, created_by FROM aliases WHERE key_id = ? ORDER BY created_at, alias",
                         arguments: [keyID]).map {
            let r = StoredRow(row: $0, table: "aliases")
            return AliasRecord(alias: try r.value("alias"), keyID: try r.value("key_id"), creationDate: try r.date("created_at"),
                               createdBy: try r.value("created_by"))
        }
    }

    func versions(keyID: String, limit: Int, offset: Int) throws -> [KeyVersion] {
        try Row.fetchAll(db, cachedSQL: "SELECT id, created_at FROM key_versions WHERE key_id = ? ORDER BY ordinal DESC LIMIT ? OFFSET ?",
                         arguments: [keyID, limit, offset]).map {
            let r = StoredRow(row: $0, table: "key_versions")
            return KeyVersion(id: try r.value("id"), creationDate: try r.date("created_at"))
        }
    }

    func sealedMaterial(keyID: String, versionID: String) throws -> Data? {
        try Data.fetchOne(db, cachedSQL: "SELECT sealed_material FROM key_versions WHERE key_id = ? AND id = ?",
                          arguments: [keyID, versionID])
    }

    func keyRings(instanceID: String) throws -> [KeyRingRecord] {
        let stored = try Row.fetchAll(db, cachedSQL: "SELECT id, created_at, created_by FROM key_rings WHERE instance_id = ? ORDER BY created_at, id",
                                      arguments: [instanceID]).map {
            let r = StoredRow(row: $0, table: "key_rings")
            return KeyRingRecord(id: try r.value("id"), creationDate: try r.date("created_at"), createdBy: try r.value("created_by"))
        }
        return [KeyRingRecord(id: KeyRing.defaultID, creationDate: nil, createdBy: nil)] + stored
    }

    func countKeys(instanceID: String, keyRingID: String, excludingDestroyed: Bool) throws -> Int {
        try Int.fetchOne(db, cachedSQL: "SELECT COUNT(*) FROM keys WHERE instance_id = ? AND key_ring_id = ?\(excludingDestroyed ? " AND state != 5" : "")",
                         arguments: [instanceID, keyRingID]) ?? 0
    }

    func registration(keyID: String, resourceCRN: String) throws -> Registration? {
        try Row.decodeOne(db, cachedSQL: "SELECT \(registrationColumns) FROM registrations r WHERE r.key_id = ? AND r.resource_crn = ?",
                         arguments: [keyID, resourceCRN], decodeRegistration)
    }

    private func registrationWhere(instanceID: String, keyID: String?, filter: RegistrationFilter) -> (String, StatementArguments) {
        var clauses = ["r.instance_id = ?"]
        var arguments: StatementArguments = [instanceID]
        if let keyID {
            clauses.append("r.key_id = ?")
            _ = arguments.append(contentsOf: [keyID])
        }
        if let query = filter.crnQuery {
            if query.hasSuffix("*") {
                clauses.append("substr(r.resource_crn, 1, ?) = ?")
                let prefix = String(query.dropLast())
                _ = arguments.append(contentsOf: [prefix.count, prefix])
            } else {
                clauses.append("r.resource_crn = ?")
                _ = arguments.append(contentsOf: [query])
            }
        }
        if let prevent = filter.preventKeyDeletion {
            clauses.append("r.prevent_key_deletion = ?")
            _ = arguments.append(contentsOf: [prevent])
        }
        return (clauses.joined(separator: " AND "), arguments)
    }

    func registrations(instanceID: String, keyID: String?, filter: RegistrationFilter, limit: Int, offset: Int) throws -> [Registration] {
        let (whereSQL, arguments) = registrationWhere(instanceID: instanceID, keyID: keyID, filter: filter)
        var all = arguments
        _ = all.append(contentsOf: [limit, offset])
        return try Row.decodeAll(db, cachedSQL: "SELECT \(registrationColumns) FROM registrations r WHERE \(whereSQL) ORDER BY r.key_id, r.resource_crn LIMIT ? OFFSET ?",
                                arguments: all, decodeRegistration)
    }

    func countRegistrations(instanceID: String, keyID: String?, filter: RegistrationFilter) throws -> Int {
        let (whereSQL, arguments) = registrationWhere(instanceID: instanceID, keyID: keyID, filter: filter)
        return try Int.fetchOne(db, cachedSQL: "SELECT COUNT(*) FROM registrations r WHERE \(whereSQL)", arguments: arguments) ?? 0
    }

    func forEachRegistration(keyID: String, _ body: (Registration) throws -> Void) throws {
        let cursor = try Row.fetchCursor(db, sql: "SELECT \(registrationColumns) FROM registrations r WHERE r.key_id = ? ORDER BY r.resource_crn",
                                         arguments: [keyID])
        while let row = try cursor.next() { try body(try decodeRegistration(row)) }
    }

    func registrationSummary(keyID: String) throws -> RegistrationSummary {
        let row = try Row.fetchOne(db, cachedSQL: "SELECT \(summaryColumns) FROM registrations WHERE key_id = ?",
                                   arguments: [keyID])
        guard let row else { return RegistrationSummary(count: 0, preventingDeletion: 0) }
        return try decodeSummary(row)
    }

    func event(id: String) throws -> LifecycleEvent? {
        try Row.decodeOne(db, cachedSQL: "SELECT \(eventColumns) FROM events e WHERE e.id = ?", arguments: [id], decodeEvent)
    }

    func events(instanceID: String?, keyID: String?, after sequence: Int64, limit: Int) throws -> [LifecycleEvent] {
        var clauses = ["e.seq > ?"]
        var arguments: StatementArguments = [sequence]
        if let instanceID {
            clauses.append("e.instance_id = ?")
            _ = arguments.append(contentsOf: [instanceID])
        }
        if let keyID {
            clauses.append("e.key_id = ?")
            _ = arguments.append(contentsOf: [keyID])
        }
        _ = arguments.append(contentsOf: [limit])
        return try Row.decodeAll(db, cachedSQL: "SELECT \(eventColumns) FROM events e WHERE \(clauses.joined(separator: " AND ")) ORDER BY e.seq LIMIT ?",
                                arguments: arguments, decodeEvent)
    }

    func latestEventSequence() throws -> Int64 {
        try Int64.fetchOne(db, cachedSQL: "SELECT COALESCE(MAX(seq), 0) FROM events") ?? 0
    }

    func notifications(keyID: String?, eventSequence: Int64?, status: NotificationStatus?, limit: Int, offset: Int) throws -> [ResourceNotification] {
        var clauses = ["1"]
        var arguments: StatementArguments = []
        if let keyID {
            clauses.append("n.target_id IN (SELECT t.id FROM notification_targets t WHERE t.key_id = ?)")
            _ = arguments.append(contentsOf: [keyID])
        }
        if let eventSequence {
            clauses.append("n.event_seq = ?")
            _ = arguments.append(contentsOf: [eventSequence])
        }
        if let status {
            clauses.append("n.status = ?")
            _ = arguments.append(contentsOf: [status.rawValue])
        }
        _ = arguments.append(contentsOf: [limit, offset])
        return try Row.decodeAll(db, cachedSQL: "SELECT \(notificationColumns) FROM notifications n JOIN events e ON e.seq = n.event_seq WHERE \(clauses.joined(separator: " AND ")) ORDER BY n.id DESC LIMIT ? OFFSET ?",
                                arguments: arguments, decodeNotification)
    }

    func notification(eventID: String, resourceCRN: String) throws -> ResourceNotification? {
        try Row.decodeOne(db, cachedSQL: "SELECT \(notificationColumns) FROM notifications n JOIN events e ON e.seq = n.event_seq WHERE e.id = ? AND n.resource_crn = ?",
                         arguments: [eventID, resourceCRN], decodeNotification)
    }

    func deliveryCounts(instanceID: String?, keyID: String?, service: String?) throws -> DeliveryCounts {
        var clauses = ["1"]
        var arguments: StatementArguments = []
        if let instanceID {
            clauses.append("n.target_id IN (SELECT t.id FROM notification_targets t JOIN keys k ON k.id = t.key_id WHERE k.instance_id = ?)")
            _ = arguments.append(contentsOf: [instanceID])
        }
        if let keyID {
            clauses.append("n.target_id IN (SELECT t.id FROM notification_targets t WHERE t.key_id = ?)")
            _ = arguments.append(contentsOf: [keyID])
        }
        if let service {
            clauses.append("n.service = ?")
            _ = arguments.append(contentsOf: [service])
        }
        var counts = DeliveryCounts()
        for row in try Row.fetchAll(db, cachedSQL: "SELECT n.status, COUNT(*) AS c FROM notifications n WHERE \(clauses.joined(separator: " AND ")) GROUP BY n.status",
                                    arguments: arguments) {
            let r = StoredRow(row: row, table: "notifications")
            counts[try r.code("status", as: NotificationStatus.self)] = try r.value("c")
        }
        return counts
    }

    /// The due-notification query (pending whose time has come, sent past their deadline, none held back behind an
    /// earlier pending one of its resource), in due order; `unclaimed` adds "no live claim" (a second `?`: the date).
    /// The order check seeks the target's unfinished notifications in `notifications_by_target` (the expression as
    /// indexed, migration 0008); `+p.status` keeps SQLite from folding `status = 'pending'` into that expression.
    private static func makeDueSQL(unclaimed: Bool) -> String {
        """
        SELECT \(notificationColumns) FROM notifications n JOIN events e ON e.seq = n.event_seq
        WHERE n.status IN ('pending', 'sent') AND n.next_attempt_at <= ?
          \(unclaimed ? "AND (n.claimed_until IS NULL OR n.claimed_until <= ?)" : "")
          AND NOT EXISTS (SELECT 1 FROM notifications p
                          WHERE p.target_id = n.target_id AND (p.status != 'acknowledged') = 1 AND p.id < n.id
                            AND +p.status = 'pending')
        ORDER BY n.next_attempt_at, n.id LIMIT ?
        """
    }
    private static let dueSQL = makeDueSQL(unclaimed: false)
    private static let unclaimedDueSQL = makeDueSQL(unclaimed: true)

    func dueNotifications(at date: Date, limit: Int) throws -> [ResourceNotification] {
        try Row.decodeAll(db, cachedSQL: Self.dueSQL, arguments: [date.storageMilliseconds, limit], decodeNotification)
    }

    func claimDueNotifications(at date: Date, limit: Int, leaseUntil: Date) throws -> [ResourceNotification] {
        // dueNotifications' query (same plan: notifications_due_at in due order), skipping live claims. SQLite has one
        // writer, so the select and the updates below are one atomic step: no other claimer sees these rows unclaimed.
        let now = date.storageMilliseconds
        let claimed = try Row.decodeAll(db, cachedSQL: Self.unclaimedDueSQL, arguments: [now, now, limit], decodeNotification)
        let statement = try db.cachedStatement(sql: "UPDATE notifications SET claimed_until = ? WHERE id = ?")
        for notification in claimed {
            try statement.execute(arguments: [leaseUntil.storageMilliseconds, notification.id])
        }
        return claimed
    }

    func instancePolicies(instanceID: String) throws -> [InstancePolicy] {
        try Row.fetchAll(db, cachedSQL: "SELECT policy_type, enabled, attributes, stamp FROM instance_policies WHERE instance_id = ? ORDER BY policy_type",
                         arguments: [instanceID]).map { row in
            let r = StoredRow(row: row, table: "instance_policies")
            guard let stamp = try r.json("stamp", as: PolicyStamp.self) else { throw r.corrupt("stamp") }
            return InstancePolicy(policyType: try r.value("policy_type"), enabled: try r.value("enabled"),
                                  attributesJSON: try r.value("attributes"), stamp: stamp)
        }
    }

    func meta(_ name: String) throws -> Data? {
        try Data.fetchOne(db, cachedSQL: "SELECT value FROM meta WHERE name = ?", arguments: [name])
    }

    // MARK: Writes

    func ensureInstance(_ id: String, at date: Date) throws {
        try db.execute(cachedSQL: "INSERT OR IGNORE INTO instances (id, created_at) VALUES (?, ?)", arguments: [id, date.storageMilliseconds])
    }

    func insertKey(_ key: Key) throws {
        // A cached statement (issue #16): GRDB's record `insert` builds its SQL text and a column dictionary per call.
        try db.execute(cachedSQL: KeyRow.insertSQL, arguments: try KeyRow(key: key).insertArguments())
    }

    func updateKey(_ key: Key) throws {
        // Only the columns a key can change (KeyRow.updateSQL), as a cached statement: SQLite rewrites every index that
        // has a column in the SET list, whether its value changed or not, so GRDB's record `update`, which sets every
        // column, also rewrote the id index and `keys_by_instance` on every lifecycle command; and it built its SQL
        // text and a column dictionary per call, the largest CPU cost of a command (issue #16).
        try db.execute(cachedSQL: KeyRow.updateSQL, arguments: try KeyRow(key: key).updateArguments())
        // Updating a key that is gone is a bug, not a no-op (as GRDB's `update` reports it).
        guard db.changesCount > 0 else {
            throw RecordError.recordNotFound(databaseTableName: KeyRow.databaseTableName, key: ["id": key.id.databaseValue])
        }
    }

    func purgeKey(id: String) throws {
        // Unfinished notifications of a purged key can never be honoured: they end dead.
        try db.execute(cachedSQL: """
            UPDATE notifications SET status = 'dead', last_error = 'key purged', next_attempt_at = NULL
            WHERE target_id IN (SELECT id FROM notification_targets WHERE key_id = ?) AND status IN ('pending', 'sent')
            """,
                       arguments: [id])
        try db.execute(cachedSQL: "DELETE FROM keys WHERE id = ?", arguments: [id])
    }

    func insertVersion(keyID: String, version: KeyVersion, ordinal: Int, sealedMaterial: Data) throws {
        try db.execute(cachedSQL: "INSERT INTO key_versions (id, key_id, ordinal, created_at, sealed_material) VALUES (?, ?, ?, ?, ?)",
                       arguments: [version.id, keyID, ordinal, version.creationDate.storageMilliseconds, sealedMaterial])
    }

    func insertAlias(_ alias: AliasRecord, instanceID: String) throws {
        try db.execute(cachedSQL: "INSERT INTO aliases (instance_id, alias, key_id, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
                       arguments: [instanceID, alias.alias, alias.keyID, alias.creationDate.storageMilliseconds, alias.createdBy])
    }

    func deleteAlias(_ alias: String, instanceID: String) throws -> Bool {
        try db.execute(cachedSQL: "DELETE FROM aliases WHERE instance_id = ? AND alias = ?", arguments: [instanceID, alias])
        return db.changesCount > 0
    }

    func insertKeyRing(instanceID: String, id: String, at date: Date, by principal: String) throws {
        try db.execute(cachedSQL: "INSERT INTO key_rings (instance_id, id, created_at, created_by) VALUES (?, ?, ?, ?)",
                       arguments: [instanceID, id, date.storageMilliseconds, principal])
    }

    func deleteKeyRing(instanceID: String, id: String) throws {
        try db.execute(cachedSQL: "DELETE FROM key_rings WHERE instance_id = ? AND id = ?", arguments: [instanceID, id])
    }

    func moveKeys(instanceID: String, fromRing: String, toRing: String) throws {
        try db.execute(cachedSQL: "UPDATE keys SET key_ring_id = ? WHERE instance_id = ? AND key_ring_id = ?",
                       arguments: [toRing, instanceID, fromRing])
    }

    func upsertRegistration(_ r: Registration) throws {
        // The (key, resource) pair's notification target, made once and kept (schema 0006): the fan-out copies its id
        // into every notification, whose per-resource lookups then read a small integer index.
        try db.execute(cachedSQL: "INSERT INTO notification_targets (key_id, resource_crn) VALUES (?, ?) ON CONFLICT (key_id, resource_crn) DO NOTHING",
                       arguments: [r.keyID, r.resourceCRN])
        try db.execute(cachedSQL: """
            INSERT INTO registrations (key_id, resource_crn, instance_id, service, description, metadata, prevent_key_deletion,
                key_version_id, key_version_created_at, created_by, created_at, updated_by, updated_at, ack_event_id, ack_state,
                ack_key_version_id, ack_processed_at, ack_received_at, protection_ended_at, target_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
                    (SELECT id FROM notification_targets WHERE key_id = ? AND resource_crn = ?))
            ON CONFLICT (key_id, resource_crn) DO UPDATE SET
                description = excluded.description, metadata = excluded.metadata,
                prevent_key_deletion = excluded.prevent_key_deletion, key_version_id = excluded.key_version_id,
                key_version_created_at = excluded.key_version_created_at, updated_by = excluded.updated_by,
                updated_at = excluded.updated_at, ack_event_id = excluded.ack_event_id, ack_state = excluded.ack_state,
                ack_key_version_id = excluded.ack_key_version_id, ack_processed_at = excluded.ack_processed_at,
                ack_received_at = excluded.ack_received_at, protection_ended_at = excluded.protection_ended_at
            """, arguments: [
                r.keyID, r.resourceCRN, r.instanceID, r.serviceName, r.description, r.registrationMetadata,
                r.preventKeyDeletion, r.keyVersion.id, ms(r.keyVersion.creationDate), r.createdBy, ms(r.creationDate),
                r.updatedBy, ms(r.lastUpdated), r.acknowledgement?.eventID, r.acknowledgement?.adopterKeyState.rawValue,
                r.acknowledgement?.keyVersionID, ms(r.acknowledgement?.processedAt), ms(r.acknowledgement?.receivedAt),
                ms(r.protectionEndedAt), r.keyID, r.resourceCRN,
            ])
    }

    func endRegistrationProtection(keyID: String, at date: Date) throws -> Int {
        try db.execute(cachedSQL: "UPDATE registrations SET protection_ended_at = ? WHERE key_id = ? AND protection_ended_at IS NULL",
                       arguments: [date.storageMilliseconds, keyID])
        return db.changesCount
    }

    func deleteRegistration(keyID: String, resourceCRN: String) throws -> Bool {
        try db.execute(cachedSQL: "DELETE FROM registrations WHERE key_id = ? AND resource_crn = ?", arguments: [keyID, resourceCRN])
        return db.changesCount > 0
    }

    func recordAcknowledgement(keyID: String, resourceCRN: String, _ ack: Acknowledgement) throws {
        try db.execute(cachedSQL: """
            UPDATE registrations SET ack_event_id = ?, ack_state = ?, ack_key_version_id = ?, ack_processed_at = ?, ack_received_at = ?
            WHERE key_id = ? AND resource_crn = ?
            """, arguments: [ack.eventID, ack.adopterKeyState.rawValue, ack.keyVersionID, ms(ack.processedAt),
                             ms(ack.receivedAt), keyID, resourceCRN])
    }

    func appendEvent(_ event: LifecycleEvent) throws -> Int64 {
        try db.execute(cachedSQL: """
            INSERT INTO events (id, instance_id, key_id, key_seq, kind, key_state, version_id, version_created_at, at, principal, correlation_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [event.id, event.instanceID, event.keyID, event.keySequence, event.kind.rawValue,
                             event.keyState.rawValue, event.keyVersion.id, ms(event.keyVersion.creationDate),
                             ms(event.date), event.principal, event.correlationID])
        return db.lastInsertedRowID
    }

    func fanOut(eventSequence: Int64, keyID: String, dueAt date: Date) throws -> Int {
        try db.execute(cachedSQL: """
            INSERT INTO notifications (event_seq, key_id, resource_crn, service, status, attempts, next_attempt_at, target_id)
            SELECT ?, key_id, resource_crn, service, 'pending', 0, ?, target_id FROM registrations WHERE key_id = ?
            """, arguments: [eventSequence, date.storageMilliseconds, keyID])
        return db.changesCount
    }

    func recordDelivery(notificationID: Int64, _ outcome: DeliveryOutcome) throws {
        switch outcome {
        case .sent(let at, let deadline):
            try db.execute(cachedSQL: "UPDATE notifications SET status = 'sent', attempts = attempts + 1, sent_at = ?, next_attempt_at = ?, last_error = NULL, claimed_until = NULL WHERE id = ? AND status IN ('pending', 'sent')",
                           arguments: [at.storageMilliseconds, deadline.storageMilliseconds, notificationID])
        case .failed(_, let error, let retryAt):
            try db.execute(cachedSQL: "UPDATE notifications SET status = 'pending', attempts = attempts + 1, next_attempt_at = ?, last_error = ?, claimed_until = NULL WHERE id = ? AND status IN ('pending', 'sent')",
                           arguments: [retryAt.storageMilliseconds, error, notificationID])
        case .dead(_, let error):
            // The attempt that ran the attempts out counts too: "dead after N attempts" has attempts = N.
            try db.execute(cachedSQL: "UPDATE notifications SET status = 'dead', attempts = attempts + 1, next_attempt_at = NULL, last_error = ?, claimed_until = NULL WHERE id = ? AND status IN ('pending', 'sent')",
                           arguments: [error, notificationID])
        case .unacknowledged(_, let error):
            try db.execute(cachedSQL: "UPDATE notifications SET status = 'dead', next_attempt_at = NULL, last_error = ?, incomplete = 408, claimed_until = NULL WHERE id = ? AND status = 'sent'",
                           arguments: [error, notificationID])
        }
    }

    func recordStateConflict(keyID: String, resourceCRN: String, eventSequence: Int64, error: String) throws {
        try db.execute(cachedSQL: """
            UPDATE notifications SET incomplete = 409, last_error = ?
            WHERE target_id = (SELECT id FROM notification_targets WHERE key_id = ? AND resource_crn = ?) AND event_seq = ?
            """,
                       arguments: [error, keyID, resourceCRN, eventSequence])
    }

    func incompleteNotifications(instanceID: String, limit: Int) throws -> [ResourceNotification] {
        try Row.decodeAll(db, cachedSQL: """
            SELECT \(notificationColumns) FROM notifications n JOIN events e ON e.seq = n.event_seq
            WHERE n.incomplete IS NOT NULL AND e.instance_id = ?
            ORDER BY n.id DESC LIMIT ?
            """, arguments: [instanceID, limit], decodeNotification)
    }

    func countIncompleteNotifications(instanceID: String) throws -> [IncompleteReason: Int] {
        var counts: [IncompleteReason: Int] = [:]
        for row in try Row.fetchAll(db, cachedSQL: """
            SELECT n.incomplete, COUNT(*) AS c FROM notifications n JOIN events e ON e.seq = n.event_seq
            WHERE n.incomplete IS NOT NULL AND e.instance_id = ? GROUP BY n.incomplete
            """, arguments: [instanceID]) {
            let r = StoredRow(row: row, table: "notifications")
            let code: Int = try r.value("incomplete")
            guard let reason = IncompleteReason(rawValue: code) else {
                throw StoreError.corruptRow(table: "notifications", column: "incomplete", value: String(code))
            }
            counts[reason] = try r.value("c")
        }
        return counts
    }

    /// Every in-process delivery acknowledges once, so this avoids SQLite's ephemeral tables (a B-tree with its own
    /// pager, whose first page allocation is a bulk one of ≈ 86 KB: freeing it can trim the allocator's heap, and the
    /// next one then faults its pages in again — ≈ 12 page faults per delivery with both below, 0.7 without, in the
    /// quick delivery benchmark; none either way once glibc's dynamic trim threshold has risen, as in the full one):
    /// - The unfinished notifications (pending, sent, dead: the status `CHECK` allows nothing else besides
    ///   acknowledged) are `(status != 'acknowledged') = 1`, the expression `notifications_by_target` indexes, and
    ///   not also `status IN ('pending', 'sent', 'dead')`: SQLite tests a list of more than two constants against an
    ///   ephemeral table it builds on every execution (128,000 → 96,000 instructions per call under callgrind).
    /// - They are selected, then updated by id: an `UPDATE` that changes the indexed expression it searches by first
    ///   collects the rowids in an ephemeral table (two passes). Another 96,000 → 89,000 instructions.
    func acknowledgeNotifications(keyID: String, resourceCRN: String, upToEventSequence: Int64, at date: Date) throws -> Int {
        let ids = try Int64.fetchAll(db, cachedSQL: """
            SELECT id FROM notifications
            WHERE target_id = (SELECT id FROM notification_targets WHERE key_id = ? AND resource_crn = ?)
              AND (status != 'acknowledged') = 1
              AND event_seq <= ?
              AND (status != 'dead' OR event_seq = ?)
            """, arguments: [keyID, resourceCRN, upToEventSequence, upToEventSequence])
        let update = try db.cachedStatement(sql: "UPDATE notifications SET status = 'acknowledged', acked_at = ?, next_attempt_at = NULL WHERE id = ?")
        for id in ids { try update.execute(arguments: [date.storageMilliseconds, id]) }
        return ids.count
    }

    /// One indexed lookup (the registration's primary key, then the events' id index), nothing decoded but an integer:
    /// the default reads and decodes the whole registration (its CRN parsed) and the whole acknowledged event.
    func acknowledgementState(keyID: String, resourceCRN: String) throws -> RegistrationAcknowledgementState? {
        let row = try Row.fetchOne(db, cachedSQL: """
            SELECT (SELECT e.seq FROM events e WHERE e.id = r.ack_event_id) FROM registrations r
            WHERE r.key_id = ? AND r.resource_crn = ?
            """, arguments: [keyID, resourceCRN])
        guard let row else { return nil }
        return RegistrationAcknowledgementState(acknowledgedEventSequence: row[0])
    }

    func putInstancePolicy(_ policy: InstancePolicy, instanceID: String) throws {
        try db.execute(cachedSQL: """
            INSERT INTO instance_policies (instance_id, policy_type, enabled, attributes, stamp) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (instance_id, policy_type) DO UPDATE SET enabled = excluded.enabled, attributes = excluded.attributes, stamp = excluded.stamp
            """, arguments: [instanceID, policy.policyType, policy.enabled, policy.attributesJSON, try encodeJSON(policy.stamp)])
    }

    func setMeta(_ name: String, _ value: Data) throws {
        try db.execute(cachedSQL: "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                       arguments: [name, value])
    }
}

// MARK: - Overview queries

/// The queries behind the engine's overview, drift and events-with-deliveries views: each reads one page of keys or
/// events in one statement (a list of ids travels as one JSON array parameter, so the statement text, and SQLite's
/// cached plan, is the same whatever the page size).
extension SQLiteTransaction {
    private func jsonArray<T: Encodable>(_ values: [T]) throws -> String {
        String(decoding: try JSONEncoder().encode(values), as: UTF8.self)
    }

    func registrationSummaries(keyIDs: [String]) throws -> [String: RegistrationSummary] {
        guard !keyIDs.isEmpty else { return [:] }
        let rows = try Row.fetchAll(db, cachedSQL: """
            SELECT key_id, \(summaryColumns) FROM registrations
            WHERE key_id IN (SELECT value FROM json_each(?)) GROUP BY key_id
            """, arguments: [try jsonArray(keyIDs)])
        var summaries: [String: RegistrationSummary] = [:]
        for row in rows {
            let r = StoredRow(row: row, table: "registrations")
            summaries[try r.value("key_id", as: String.self)] = try decodeSummary(row)
        }
        return summaries
    }

    func deliveryCounts(keyIDs: [String]) throws -> [String: DeliveryCounts] {
        guard !keyIDs.isEmpty else { return [:] }
        let rows = try Row.fetchAll(db, cachedSQL: """
            SELECT key_id, status, COUNT(*) AS c FROM notifications
            WHERE target_id IN (SELECT id FROM notification_targets WHERE key_id IN (SELECT value FROM json_each(?)))
            GROUP BY key_id, status
            """, arguments: [try jsonArray(keyIDs)])
        var counts: [String: DeliveryCounts] = [:]
        for row in rows {
            let r = StoredRow(row: row, table: "notifications")
            let status = try r.code("status", as: NotificationStatus.self)
            counts[try r.value("key_id", as: String.self), default: DeliveryCounts()][status] = try r.value("c")
        }
        return counts
    }

    func forEachRegistration(keyIDs: [String], _ body: (Registration) throws -> Void) throws {
        guard !keyIDs.isEmpty else { return }
        let cursor = try Row.fetchCursor(db, sql: """
            SELECT \(registrationColumns) FROM registrations r WHERE r.key_id IN (SELECT value FROM json_each(?))
            ORDER BY r.key_id, r.resource_crn
            """, arguments: [try jsonArray(keyIDs)])
        while let row = try cursor.next() { try body(try decodeRegistration(row)) }
    }

    func eventsNewestFirst(keyID: String, limit: Int, offset: Int) throws -> [LifecycleEvent] {
        // (key_id, key_seq) is unique and indexed; key_seq grows with seq within a key.
        try Row.decodeAll(db, cachedSQL: "SELECT \(eventColumns) FROM events e WHERE e.key_id = ? ORDER BY e.key_seq DESC LIMIT ? OFFSET ?",
                         arguments: [keyID, limit, offset], decodeEvent)
    }

    func countEvents(keyID: String) throws -> Int {
        try Int.fetchOne(db, cachedSQL: "SELECT COUNT(*) FROM events WHERE key_id = ?", arguments: [keyID]) ?? 0
    }

    func notifications(eventSequences: [Int64]) throws -> [ResourceNotification] {
        guard !eventSequences.isEmpty else { return [] }
        return try Row.decodeAll(db, cachedSQL: """
            SELECT \(notificationColumns) FROM notifications n JOIN events e ON e.seq = n.event_seq
            WHERE n.event_seq IN (SELECT value FROM json_each(?)) ORDER BY n.event_seq DESC, n.resource_crn
            """, arguments: [try jsonArray(eventSequences)], decodeNotification)
    }
}

// MARK: - KMIP adapter management

private func decodeKMIPAdapter(_ row: Row) throws -> KMIPAdapter {
    let r = StoredRow(row: row, table: "kmip_adapters")
    return KMIPAdapter(id: try r.value("id"), instanceID: try r.value("instance_id"), name: try r.value("name"),
                       description: try r.value("description"), profile: try r.value("profile"), crkID: try r.value("crk_id"),
                       createdAt: try r.date("created_at"), createdBy: try r.value("created_by"),
                       updatedAt: try r.date("updated_at"), updatedBy: try r.value("updated_by"))
}

private func decodeKMIPClientCertificate(_ row: Row) throws -> KMIPClientCertificate {
    let r = StoredRow(row: row, table: "kmip_client_certificates")
    return KMIPClientCertificate(id: try r.value("id"), adapterID: try r.value("adapter_id"), name: try r.value("name"),
                                 certificate: try r.value("certificate"), createdAt: try r.date("created_at"),
                                 createdBy: try r.value("created_by"))
}

private func decodeKMIPObject(_ row: Row) throws -> KMIPObject {
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

private let kmipAdapterColumns = "id, instance_id, name, description, profile, crk_id, created_at, created_by, updated_at, updated_by"
private let kmipCertificateColumns = "id, adapter_id, name, certificate, created_at, created_by"
private let kmipObjectColumns = """
    id, adapter_id, object_type, state, created_at, created_by, created_by_certificate_id, updated_at, updated_by,
    updated_by_certificate_id, destroyed_at, destroyed_by, destroyed_by_certificate_id
    """

extension SQLiteTransaction {
    func kmipAdapter(id: String, instanceID: String) throws -> KMIPAdapter? {
        try Row.decodeOne(db, cachedSQL: "SELECT \(kmipAdapterColumns) FROM kmip_adapters WHERE id = ? AND instance_id = ?",
                         arguments: [id, instanceID], decodeKMIPAdapter)
    }

    func kmipAdapter(name: String, instanceID: String) throws -> KMIPAdapter? {
        try Row.decodeOne(db, cachedSQL: "SELECT \(kmipAdapterColumns) FROM kmip_adapters WHERE instance_id = ? AND name = ?",
                         arguments: [instanceID, name], decodeKMIPAdapter)
    }

    private func adapterFilter(instanceID: String, crkID: String?, keyRingID: String?) -> (String, StatementArguments) {
        var sql = "instance_id = ?"
        var arguments: StatementArguments = [instanceID]
        if let crkID {
            sql += " AND crk_id = ?"
            arguments += [crkID]
        }
        if let keyRingID {
            sql += " AND crk_id IN (SELECT id FROM keys WHERE instance_id = ? AND key_ring_id = ?)"
            arguments += [instanceID, keyRingID]
        }
        return (sql, arguments)
    }

    func kmipAdapters(instanceID: String, crkID: String?, keyRingID: String?, limit: Int, offset: Int) throws -> [KMIPAdapter] {
        let (filter, arguments) = adapterFilter(instanceID: instanceID, crkID: crkID, keyRingID: keyRingID)
        return try Row.decodeAll(db, cachedSQL: "SELECT \(kmipAdapterColumns) FROM kmip_adapters WHERE \(filter) ORDER BY created_at, id LIMIT ? OFFSET ?",
                                arguments: arguments + [limit, offset], decodeKMIPAdapter)
    }

    func countKMIPAdapters(instanceID: String, crkID: String?, keyRingID: String?) throws -> Int {
        let (filter, arguments) = adapterFilter(instanceID: instanceID, crkID: crkID, keyRingID: keyRingID)
        return try Int.fetchOne(db, cachedSQL: "SELECT COUNT(*) FROM kmip_adapters WHERE \(filter)", arguments: arguments) ?? 0
    }

    func kmipClientCertificate(id: String, adapterID: String) throws -> KMIPClientCertificate? {
        try Row.decodeOne(db, cachedSQL: "SELECT \(kmipCertificateColumns) FROM kmip_client_certificates WHERE id = ? AND adapter_id = ?",
                         arguments: [id, adapterID], decodeKMIPClientCertificate)
    }

    func kmipClientCertificate(name: String, adapterID: String) throws -> KMIPClientCertificate? {
        try Row.decodeOne(db, cachedSQL: "SELECT \(kmipCertificateColumns) FROM kmip_client_certificates WHERE adapter_id = ? AND name = ?",
                         arguments: [adapterID, name], decodeKMIPClientCertificate)
    }

    func kmipClientCertificates(adapterID: String, limit: Int, offset: Int) throws -> [KMIPClientCertificate] {
        try Row.decodeAll(db, cachedSQL: "SELECT \(kmipCertificateColumns) FROM kmip_client_certificates WHERE adapter_id = ? ORDER BY created_at, id LIMIT ? OFFSET ?",
                         arguments: [adapterID, limit, offset], decodeKMIPClientCertificate)
    }

    func countKMIPClientCertificates(adapterID: String) throws -> Int {
        try Int.fetchOne(db, cachedSQL: "SELECT COUNT(*) FROM kmip_client_certificates WHERE adapter_id = ?", arguments: [adapterID]) ?? 0
    }

    func kmipObject(id: String, adapterID: String) throws -> KMIPObject? {
        try Row.decodeOne(db, cachedSQL: "SELECT \(kmipObjectColumns) FROM kmip_objects WHERE id = ? AND adapter_id = ?",
                         arguments: [id, adapterID], decodeKMIPObject)
    }

    /// `state IN (…)` from the states' codes: at most 2^6 distinct statements, values are codes, never user text.
    private func stateList(_ states: Set<KMIPObjectState>) -> String {
        states.isEmpty ? "NULL" : states.sorted().map { String($0.rawValue) }.joined(separator: ", ")
    }

    func kmipObjects(adapterID: String, states: Set<KMIPObjectState>, limit: Int, offset: Int) throws -> [KMIPObject] {
        try Row.decodeAll(db, cachedSQL: "SELECT \(kmipObjectColumns) FROM kmip_objects WHERE adapter_id = ? AND state IN (\(stateList(states))) ORDER BY created_at, id LIMIT ? OFFSET ?",
                         arguments: [adapterID, limit, offset], decodeKMIPObject)
    }

    func countKMIPObjects(adapterID: String, states: Set<KMIPObjectState>) throws -> Int {
        try Int.fetchOne(db, cachedSQL: "SELECT COUNT(*) FROM kmip_objects WHERE adapter_id = ? AND state IN (\(stateList(states)))",
                         arguments: [adapterID]) ?? 0
    }

    func insertKMIPAdapter(_ a: KMIPAdapter) throws {
        try db.execute(cachedSQL: "INSERT INTO kmip_adapters (\(kmipAdapterColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       arguments: [a.id, a.instanceID, a.name, a.description, a.profile, a.crkID, a.createdAt.storageMilliseconds,
                                   a.createdBy, a.updatedAt.storageMilliseconds, a.updatedBy])
    }

    func deleteKMIPAdapter(id: String) throws -> Bool {
        // Certificates and objects go by ON DELETE CASCADE.
        try db.execute(cachedSQL: "DELETE FROM kmip_adapters WHERE id = ?", arguments: [id])
        return db.changesCount > 0
    }

    func insertKMIPClientCertificate(_ c: KMIPClientCertificate) throws {
        try db.execute(cachedSQL: "INSERT INTO kmip_client_certificates (\(kmipCertificateColumns)) VALUES (?, ?, ?, ?, ?, ?)",
                       arguments: [c.id, c.adapterID, c.name, c.certificate, c.createdAt.storageMilliseconds, c.createdBy])
    }

    func deleteKMIPClientCertificate(id: String) throws -> Bool {
        try db.execute(cachedSQL: "DELETE FROM kmip_client_certificates WHERE id = ?", arguments: [id])
        return db.changesCount > 0
    }

    func saveKMIPObject(_ o: KMIPObject) throws {
        try db.execute(cachedSQL: "INSERT OR REPLACE INTO kmip_objects (\(kmipObjectColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       arguments: [o.id, o.adapterID, o.objectType, o.state.rawValue, o.createdAt.storageMilliseconds, o.createdBy,
                                   o.createdByCertificateID, ms(o.updatedAt), o.updatedBy, o.updatedByCertificateID, ms(o.destroyedAt),
                                   o.destroyedBy, o.destroyedByCertificateID])
    }
}
