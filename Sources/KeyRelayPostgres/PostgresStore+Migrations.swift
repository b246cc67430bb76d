import Foundation
import KeyRelayStore

extension PostgresStore {
    /// The embedded migrations (`schema/postgres/*.sql`, by the EmbedSchema plugin), in order: (identifier, SQL).
    public static var migrations: [(identifier: String, sql: String)] { EmbeddedSchema.migrations }

    /// The advisory lock (two `int4` keys) that migrations take: replicas starting together migrate one at a time, and
    /// the second finds the work done.
    static let migrationLock = (classID: 0x4B52, objectID: 1)
    /// The advisory lock `appendEvent` takes so that event sequences commit in order (see the type's DocC).
    static let eventSequenceLock = (classID: 0x4B52, objectID: 2)

    /// Applies the migrations this database lacks, in one transaction under ``migrationLock``, recording each in
    /// `keyrelay_migrations`; refuses a database that records a migration this build does not know.
    /// - Parameter last: stop after this migration (tests: a database as an older KeyRelay left it); nil: all.
    static func migrate(_ session: PostgresSession, through last: String? = nil) throws {
        try session.execute("BEGIN")
        do {
            try session.execute("SELECT pg_advisory_xact_lock(?::int4, ?::int4)", [migrationLock.classID, migrationLock.objectID])
            try session.execute("""
                CREATE TABLE IF NOT EXISTS keyrelay_migrations (identifier TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)
                """)
            let applied = try session.rows("SELECT identifier FROM keyrelay_migrations").map {
                try StoredRow(row: $0, table: "keyrelay_migrations").value("identifier", as: String.self)
            }
            let known = Set(migrations.map(\.identifier))
            let unknown = applied.filter { !known.contains($0) }.sorted()
            if !unknown.isEmpty { throw StoreError.newerSchema(unknown: unknown) }
            for migration in migrations where !applied.contains(migration.identifier) {
                try session.script(migration.sql)
                try session.execute("INSERT INTO keyrelay_migrations (identifier, applied_at) VALUES (?, ?)",
                                    [migration.identifier, Date().storageMilliseconds])
                if migration.identifier == last { break }
            }
            try session.execute("COMMIT")
        } catch {
            _ = try? session.execute("ROLLBACK")
            throw error
        }
    }
}
