import Foundation
import KeyRelayStore
import KeyRelayStoreTesting
import Synchronization
import Testing
@testable import KeyRelayPostgres

/// Whether a PostgreSQL server to test on is configured: `KEYRELAY_TEST_POSTGRES_URL` (see PostgresScratchDatabase).
/// Without it, every test that needs a server is reported skipped, never passed.
let hasServer = PostgresScratchDatabase.server != nil
let serverMissing: Comment = "set KEYRELAY_TEST_POSTGRES_URL (e.g. postgres://keyrelay@127.0.0.1:55432/postgres) to run the PostgreSQL tests"

/// The scratch databases one test made and the stores it opened on them: closed and dropped at the end of the test.
final class ScratchDatabases: Sendable {
    private let made = Mutex<[(PostgresStore.Configuration, [PostgresStore])]>([])

    /// A fresh database (4 connections per store: tests run side by side on one server).
    func database(icuLocale: PostgresScratchDatabase.ICULocale? = nil) async throws -> PostgresStore.Configuration {
        var configuration = try await PostgresScratchDatabase.create(icuLocale: icuLocale)
        configuration.maximumConnections = 4
        made.withLock { $0.append((configuration, [])) }
        return configuration
    }

    /// Opens a store on `configuration`, to be closed by ``dropAll()``.
    func open(_ configuration: PostgresStore.Configuration, ordersEventSequences: Bool = true) async throws -> PostgresStore {
        let store = try await PostgresStore(configuration, logger: .init(label: "test"), ordersEventSequences: ordersEventSequences)
        made.withLock { entries in
            if let index = entries.firstIndex(where: { $0.0 == configuration }) { entries[index].1.append(store) }
        }
        return store
    }

    /// Two stores on one fresh database, as two replicas have.
    func replicas() async throws -> (PostgresStore, PostgresStore) {
        let database = try await database()
        return (try await open(database), try await open(database))
    }

    /// A store on a fresh database.
    func store(ordersEventSequences: Bool = true) async throws -> PostgresStore {
        try await open(try await database(), ordersEventSequences: ordersEventSequences)
    }

    func dropAll() async throws {
        for (configuration, stores) in made.withLock({ $0 }) {
            for store in stores { await store.close() }
            try await PostgresScratchDatabase.drop(configuration)
        }
    }

    /// The contract's view: fresh stores, reopened on the same database.
    func backend(ordersEventSequences: Bool = true) -> StoreContractBackend {
        StoreContractBackend(
            name: "PostgreSQL",
            makeStore: { try await self.store(ordersEventSequences: ordersEventSequences) },
            reopening: .init(
                reopen: { store in
                    let postgres = try #require(store as? PostgresStore)
                    await postgres.close()
                    return try await self.open(postgres.configuration)
                },
                recordUnknownMigration: { store, identifier in
                    let postgres = try #require(store as? PostgresStore)
                    try await postgres.execute("INSERT INTO keyrelay_migrations (identifier, applied_at) VALUES (?, 0)", [identifier])
                }))
    }
}

/// Runs `body` with a fresh set of scratch databases, dropped afterwards whether it passed or not.
func withScratch<T>(_ body: (ScratchDatabases) async throws -> T) async throws -> T {
    let scratch = ScratchDatabases()
    do {
        let value = try await body(scratch)
        try await scratch.dropAll()
        return value
    } catch {
        try? await scratch.dropAll()
        throw error
    }
}
