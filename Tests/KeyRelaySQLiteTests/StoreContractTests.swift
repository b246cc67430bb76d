import Foundation
import GRDB
import KeyRelayStore
import KeyRelayStoreTesting
import Testing
@testable import KeyRelaySQLite

extension StoreContractBackend {
    /// SQLite on a file in a fresh temporary directory: durable, so the checks that reopen the database apply.
    static let sqliteFile = StoreContractBackend(
        name: "SQLite file",
        makeStore: { try SQLiteStore(.file(try temporaryDatabasePath())) },
        reopening: Reopening(
            reopen: { store in
                let sqlite = try #require(store as? SQLiteStore)
                try sqlite.close()
                return try SQLiteStore(sqlite.location)
            },
            recordUnknownMigration: { store, identifier in
                let sqlite = try #require(store as? SQLiteStore)
                try await sqlite.writer.write { db in
                    try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES (?)", arguments: [identifier])
                }
            }))

    /// SQLite in memory: the database ends with the store.
    static let sqliteInMemory = StoreContractBackend(name: "SQLite in memory", makeStore: { try SQLiteStore(.inMemory) })
}

/// The store contract (KeyRelayStoreTesting), on every way KeyRelay opens SQLite.
@Suite("Store contract on SQLite")
struct StoreContractTests {
    @Test("On a file", arguments: StoreContract.checks)
    func onAFile(_ check: StoreContractCheck) async throws {
        try await check.run(.sqliteFile)
    }

    @Test("In memory", arguments: StoreContract.checks(for: .sqliteInMemory))
    func inMemory(_ check: StoreContractCheck) async throws {
        try await check.run(.sqliteInMemory)
    }

    @Test func onlyTheChecksThatReopenAreLeftOutInMemory() {
        let skipped = Set(StoreContract.checks.map(\.name)).subtracting(StoreContract.checks(for: .sqliteInMemory).map(\.name))
        #expect(skipped == ["durableAcrossReopen", "newerSchemaRefused"])
    }
}
