import Foundation
import GRDB
import KeyRelayCore
import KeyRelayStore
import Testing
@testable import KeyRelaySQLite

/// Stored values this build does not know are refused with a clear error, never read as a default: each test writes
/// a bad value with raw SQL, as a foreign tool or a damaged file would, and reads it back through the store.
@Suite("SQLite rows fail closed")
struct FailClosedDecodingTests {
    /// A store holding key k1 of instance i1, registered with bucket "a", with one event fanned out to it.
    static func seededStore() async throws -> SQLiteStore {
        let store = try SQLiteStore(.file(try temporaryDatabasePath()))
        let key = sampleKey()
        try await store.write { tx in
            try tx.ensureInstance("i1", at: epoch)
            try tx.insertKey(key)
            try tx.upsertRegistration(try sampleRegistration(key: key, bucket: "a"))
            let event = LifecycleEvent(id: "e1", instanceID: "i1", keyID: key.id, keySequence: 1, kind: .sync, keyState: .active,
                                       keyVersion: key.currentVersion, date: epoch, principal: "op", correlationID: nil)
            _ = try tx.fanOut(eventSequence: try tx.appendEvent(event), keyID: key.id, dueAt: epoch)
        }
        return store
    }

    /// Runs raw SQL on the store's writer, with CHECK constraints off (as a tool that bypassed them would).
    static func tamper(_ store: SQLiteStore, _ sql: String, _ arguments: StatementArguments = []) async throws {
        try await store.writer.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA ignore_check_constraints = ON")
            defer { try? db.execute(sql: "PRAGMA ignore_check_constraints = OFF") }
            try db.execute(sql: sql, arguments: arguments)
        }
    }

    @Test func anUnknownEventKindIsRefusedNotReadAsSync() async throws {
        let store = try await Self.seededStore()
        try await Self.tamper(store, "UPDATE events SET kind = 'bogus' WHERE id = 'e1'")
        let expected = StoreError.corruptRow(table: "events", column: "kind", value: #""bogus""#)
        await #expect(throws: expected) { try await store.read { tx in try tx.event(id: "e1") } }
        await #expect(throws: expected) { try await store.read { tx in try tx.dueNotifications(at: epoch, limit: 10) } }
        #expect(expected.description.contains("table 'events', column 'kind': \"bogus\""))
    }

    @Test func anUnknownKeyStateIsRefusedNotReadAsActive() async throws {
        let store = try await Self.seededStore()
        try await Self.tamper(store, "UPDATE keys SET state = 9 WHERE id = 'k1'")
        let expected = StoreError.corruptRow(table: "keys", column: "state", value: "9")
        await #expect(throws: expected) { try await store.read { tx in try tx.key(id: "k1", instanceID: "i1") } }
        // The expiry scan reads active keys only, so it must not trip over (or revive) the unreadable one.
        #expect(try await store.read { tx in try tx.keysDueForExpiry(at: .distantFuture, limit: 10) }.isEmpty)
    }

    @Test func anUnknownKMIPObjectStateIsRefusedNotReadAsDestroyed() async throws {
        let store = try await Self.seededStore()
        try await store.write { tx in
            try tx.insertKMIPAdapter(KMIPAdapter(id: "ad1", instanceID: "i1", name: "adapter", description: nil, crkID: "k1",
                                                 createdAt: epoch, createdBy: "op"))
            try tx.saveKMIPObject(KMIPObject(id: "o1", adapterID: "ad1", state: .active, createdAt: epoch))
        }
        try await Self.tamper(store, "UPDATE kmip_objects SET state = 9 WHERE id = 'o1'")
        let expected = StoreError.corruptRow(table: "kmip_objects", column: "state", value: "9")
        await #expect(throws: expected) { try await store.read { tx in try tx.kmipObject(id: "o1", adapterID: "ad1") } }
        // Lists select known states only: the unreadable object is in none of them (never shown as, say, active).
        #expect(try await store.read { tx in
            try tx.kmipObjects(adapterID: "ad1", states: Set(KMIPObjectState.allCases), limit: 10, offset: 0)
        }.isEmpty)
    }

    @Test func anUnknownNotificationStatusIsRefusedInCounts() async throws {
        let store = try await Self.seededStore()
        try await Self.tamper(store, "UPDATE notifications SET status = 'lost'")
        await #expect(throws: StoreError.corruptRow(table: "notifications", column: "status", value: #""lost""#)) {
            try await store.read { tx in try tx.deliveryCounts(instanceID: nil, keyID: nil, service: nil) }
        }
    }

    @Test func aMistypedDateIsRefusedNotForceUnwrapped() async throws {
        let store = try await Self.seededStore()
        try await Self.tamper(store, "UPDATE keys SET created_at = 'yesterday' WHERE id = 'k1'")
        await #expect(throws: StoreError.corruptRow(table: "keys", column: "created_at", value: #""yesterday""#)) {
            try await store.read { tx in try tx.key(id: "k1", instanceID: "i1") }
        }
    }

    /// A key's columns are read in place only when SQLite stores them as KeyRelay writes them; any other storage
    /// class goes through GRDB's conversion, so what it accepts reads the same and what it refuses stays refused.
    @Test func aKeyStoredWithOtherStorageClassesReadsAsGRDBConvertsIt() async throws {
        let store = try await Self.seededStore()
        let stored = try #require(try await store.read { tx in try tx.key(id: "k1", instanceID: "i1") })
        // A name as UTF-8 bytes, a count and flags as REAL: GRDB's conversions read them as text, number and flags.
        try await Self.tamper(store, "UPDATE keys SET name = CAST('name-k1' AS BLOB), version_count = 1.0, extractable = 0.0, imported = 0.0 WHERE id = 'k1'")
        let converted = try #require(try await store.read { tx in try tx.key(id: "k1", instanceID: "i1") })
        #expect(converted == stored)
        // A name of bytes that are not UTF-8, or a count as text, has no conversion: refused, naming the column.
        try await Self.tamper(store, "UPDATE keys SET name = X'FF' WHERE id = 'k1'")
        let error = await #expect(throws: StoreError.self) { try await store.read { tx in try tx.key(id: "k1", instanceID: "i1") } }
        guard case .corruptRow(table: "keys", column: "name", value: _)? = error else {
            Issue.record("expected the name refused, got \(String(describing: error))")
            return
        }
        try await Self.tamper(store, "UPDATE keys SET name = 'name-k1', version_count = 'two' WHERE id = 'k1'")
        await #expect(throws: StoreError.corruptRow(table: "keys", column: "version_count", value: #""two""#)) {
            try await store.read { tx in try tx.key(id: "k1", instanceID: "i1") }
        }
    }

    @Test func anAcknowledgementWithAnUnknownStateOrNoDateIsRefusedNotDropped() async throws {
        let store = try await Self.seededStore()
        try await Self.tamper(store, "UPDATE registrations SET ack_event_id = 'e1', ack_state = 'DEK_MAYBE', ack_processed_at = 1, ack_received_at = 1")
        await #expect(throws: StoreError.corruptRow(table: "registrations", column: "ack_state", value: #""DEK_MAYBE""#)) {
            try await store.read { tx in try tx.registration(keyID: "k1", resourceCRN: try sampleRegistration(key: sampleKey(), bucket: "a").resourceCRN) }
        }
        try await Self.tamper(store, "UPDATE registrations SET ack_state = ?, ack_processed_at = NULL", [AdopterKeyState.disabled.rawValue])
        await #expect(throws: StoreError.corruptRow(table: "registrations", column: "ack_processed_at", value: "NULL")) {
            try await store.read { tx in try tx.registrations(instanceID: "i1", keyID: nil, filter: RegistrationFilter(), limit: 10, offset: 0) }
        }
    }

    @Test func theSameRowsReadBackOnceRepaired() async throws {
        // The refusal is about the value, not the row: put a known value back and the row reads again.
        let store = try await Self.seededStore()
        try await Self.tamper(store, "UPDATE events SET kind = 'bogus' WHERE id = 'e1'")
        try await Self.tamper(store, "UPDATE events SET kind = 'sync' WHERE id = 'e1'")
        #expect(try await store.read { tx in try tx.event(id: "e1") }?.kind == .sync)
    }
}
