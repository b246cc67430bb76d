import Foundation
import Testing
@testable import KeyRelay

/// `events(after:keyID:)` names a key the way every other call does, and an unknown key is an error.
@Suite("A key's events")
struct EventsQueryTests {
    @Test func aKeysEventsAreFoundByIdOrAliasAndAPurgedKeysByItsId() async throws {
        let (engine, clock) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "orders-root", aliases: ["orders"]), context: alice)
        _ = try await engine.createKey(KeySpec(name: "other"), context: alice)
        let byAlias = try await engine.events(keyID: "orders", context: alice)
        #expect(byAlias.map(\.keyID) == [key.id])
        #expect(try await engine.events(keyID: key.id, context: alice).map(\.id) == byAlias.map(\.id))

        await expectError(.keyNotFound) { _ = try await engine.events(keyID: "does-not-exist", context: alice) }
        await expectError(.keyNotFound) { _ = try await engine.events(keyID: "orders", context: mallory) }

        _ = try await engine.delete(key.id, context: alice)
        clock.advance(by: 4 * 3600 + 1)
        _ = try await engine.purge(key.id, context: alice)
        #expect(try await engine.events(keyID: key.id, context: alice).map(\.kind) == [.create, .delete, .purge])
    }
}
