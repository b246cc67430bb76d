import Foundation
import Testing
@testable import KeyRelay

/// The engine opens its database from a location value that names no backend type.
@Suite("Store locations")
struct StoreLocationTests {
    @Test func aPathAFileURLAndMemoryAreRead() throws {
        #expect(try StoreLocation(parsing: "data/keyrelay.sqlite") == .file("data/keyrelay.sqlite"))
        #expect(try StoreLocation(parsing: "file:///var/lib/keyrelay.sqlite") == .file("/var/lib/keyrelay.sqlite"))
        #expect(try StoreLocation(parsing: ":memory:") == .inMemory)
        #expect(StoreLocation.file("a.sqlite").description == "a.sqlite")
        #expect(StoreLocation.inMemory.description == ":memory:")
    }

    @Test func aPostgreSQLURLIsReadAndShownWithoutItsPassword() throws {
        let location = try StoreLocation(parsing: "postgres://kms:s3cret@db.example:6432/keyrelay?sslmode=require")
        #expect(location == (try .postgres("postgresql://kms:s3cret@db.example:6432/keyrelay?sslmode=require")))
        #expect(location.description == "postgres://kms:***@db.example:6432/keyrelay?sslmode=require")
        #expect(try StoreLocation(parsing: "POSTGRES://kms@db/x").description == "postgres://kms@db:5432/x")
        #expect(try StoreLocation(parsing: "postgresql://kms@db/x") != StoreLocation(parsing: "postgresql://kms@db/y"))
    }

    @Test(arguments: ["postgres://db.example/keyrelay", "postgresql://kms@db.example", "postgres://kms:s3cret@db/k?sslmode=often"])
    func aMalformedPostgreSQLURLIsRefusedWithoutItsPassword(_ url: String) {
        let error = #expect(throws: KeyRelayError.self) { try StoreLocation(parsing: url) }
        #expect(error?.message.hasPrefix("The PostgreSQL URL") == true)
        #expect(error?.message.contains("s3cret") == false)
    }

    @Test func anotherSchemeOrNothingIsRefused() {
        let error = #expect(throws: KeyRelayError.self) { try StoreLocation(parsing: "mysql://db/x") }
        #expect(error?.message.contains("scheme 'mysql' is not supported") == true)
        #expect(throws: KeyRelayError.self) { try StoreLocation(parsing: "") }
    }

    @Test func anEngineOpenedFromAFileLocationKeepsItsKeys() async throws {
        let location = try StoreLocation(parsing: "file://" + (try temporaryPath()))
        let first = try await KeyRelayEngine.open(location, masterKey: testMaster, clock: ManualClock(start: start))
        let key = try await first.createKey(KeySpec(name: "kept"), context: alice)
        let second = try await KeyRelayEngine.open(location, masterKey: testMaster, clock: ManualClock(start: start))
        #expect(try await second.key(key.id, context: alice).name == "kept")
        let memory = try await KeyRelayEngine.open(.inMemory, masterKey: testMaster, clock: ManualClock(start: start))
        await expectError(.keyNotFound) { _ = try await memory.key(key.id, context: alice) }
    }
}
