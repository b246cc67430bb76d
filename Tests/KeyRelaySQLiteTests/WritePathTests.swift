import Foundation
import GRDB
import KeyRelayCore
import KeyRelayStore
import Testing
@testable import KeyRelaySQLite

/// Schema 0006 (issue #16): fewer B-trees per command. A database written at 0005 must read back whole after the
/// upgrade, and the rewritten statements must still find their rows through an index.
@Suite("SQLite write path (schema 0006)")
struct WritePathTests {
    static let crnA = CRN.bucket(account: "acct", serviceInstance: "cos", bucket: "a")
    static let crnB = CRN.bucket(account: "acct", serviceInstance: "cos", bucket: "b")
    static let crnC = CRN.bucket(account: "acct", serviceInstance: "cos", bucket: "c")

    /// A database at migration 0005 with a key (two versions), three events, two registrations and five
    /// notifications (one to a resource whose registration is gone), written as 0005's SQL wants them.
    static func databaseAt0005() throws -> String {
        let path = try temporaryDatabasePath()
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        var migrator = DatabaseMigrator()
        let upTo0005 = SQLiteStore.migrations.filter { $0.identifier < "0006" }
        #expect(upTo0005.map(\.identifier).last == "0005_time_driven")
        for migration in upTo0005 {
            migrator.registerMigration(migration.identifier) { db in try db.execute(sql: migration.sql) }
        }
        try migrator.migrate(queue)
        let t = epoch.storageMilliseconds
        try queue.write { db in
            try db.execute(sql: "INSERT INTO instances (id, created_at) VALUES ('i1', ?)", arguments: [t])
            try db.execute(sql: """
                INSERT INTO keys (id, instance_id, name, extractable, imported, state, created_at, created_by, updated_at,
                                  updated_by, last_rotate_at, version_id, version_created_at, version_count, event_sequence)
                VALUES ('k1', 'i1', 'name-k1', 0, 0, 1, ?, 'alice', ?, 'alice', ?, 'k1-v2', ?, 2, 3)
                """, arguments: [t, t + 2000, t + 1000, t + 1000])
            try db.execute(sql: "INSERT INTO key_versions (id, key_id, ordinal, created_at, sealed_material) VALUES ('k1-v1', 'k1', 1, ?, x'0102'), ('k1-v2', 'k1', 2, ?, x'0304')",
                           arguments: [t, t + 1000])
            for (seq, kind, version) in [(1, "create", "k1-v1"), (2, "rotate", "k1-v2"), (3, "sync", "k1-v2")] {
                try db.execute(sql: """
                    INSERT INTO events (id, instance_id, key_id, key_seq, kind, key_state, version_id, version_created_at, at, principal)
                    VALUES (?, 'i1', 'k1', ?, ?, 1, ?, ?, ?, 'alice')
                    """, arguments: ["e\(seq)", seq, kind, version, t, t + Int64(seq) * 1000])
            }
            for crn in [crnA, crnB] {
                try db.execute(sql: """
                    INSERT INTO registrations (key_id, resource_crn, instance_id, service, key_version_id, key_version_created_at,
                                               created_by, created_at, updated_by, updated_at)
                    VALUES ('k1', ?, 'i1', 'cloud-object-storage', 'k1-v2', ?, 'cos', ?, 'cos', ?)
                    """, arguments: [crn, t, t, t])
            }
            for (seq, crn, status) in [(2, crnA, "acknowledged"), (2, crnB, "pending"), (2, crnC, "dead"), (3, crnA, "pending"), (3, crnB, "pending")] {
                try db.execute(sql: """
                    INSERT INTO notifications (event_seq, key_id, resource_crn, service, status, next_attempt_at)
                    VALUES (?, 'k1', ?, 'cloud-object-storage', ?, ?)
                    """, arguments: [seq, crn, status, status == "pending" ? t as Int64? : nil])
            }
        }
        try queue.close()
        return path
    }

    @Test func aDatabaseAt0005IsUpgradedAndReadsBackWhole() async throws {
        let store = try SQLiteStore(.file(try Self.databaseAt0005()))
        defer { try? store.close() }
        let applied = try await store.writer.read { try String.fetchAll($0, sql: "SELECT identifier FROM grdb_migrations ORDER BY identifier") }
        #expect(applied == SQLiteStore.migrations.map(\.identifier))

        let read = try await store.read { tx in
            (key: try tx.key(id: "k1", instanceID: "i1"), versions: try tx.versions(keyID: "k1", limit: 10, offset: 0),
             v1: try tx.sealedMaterial(keyID: "k1", versionID: "k1-v1"), v2: try tx.sealedMaterial(keyID: "k1", versionID: "k1-v2"),
             events: try tx.events(instanceID: "i1", keyID: nil, after: 0, limit: 10),
             registrations: try tx.registrations(instanceID: "i1", keyID: "k1", filter: RegistrationFilter(), limit: 10, offset: 0),
             notifications: try tx.notifications(keyID: "k1", eventSequence: nil, status: nil, limit: 10, offset: 0),
             counts: try tx.deliveryCounts(instanceID: "i1", keyID: "k1", service: nil),
             byKey: try tx.deliveryCounts(keyIDs: ["k1"]),
             due: try tx.dueNotifications(at: epoch.addingTimeInterval(3600), limit: 10))
        }
        let key = try #require(read.key)
        #expect(key.currentVersion.id == "k1-v2" && key.versionCount == 2 && key.eventSequence == 3)
        #expect(read.versions.map(\.id) == ["k1-v2", "k1-v1"])
        #expect(read.v1 == Data([1, 2]) && read.v2 == Data([3, 4]))
        #expect(read.events.map(\.sequence) == [1, 2, 3] && read.events.map(\.id) == ["e1", "e2", "e3"])
        #expect(read.registrations.map(\.resourceCRN) == [Self.crnA, Self.crnB])
        #expect(read.notifications.count == 5)
        #expect(read.counts == DeliveryCounts(pending: 3, acknowledged: 1, dead: 1))
        #expect(read.byKey["k1"] == read.counts)
        // Per-resource order across the upgrade: b's event 3 waits behind its pending event 2.
        #expect(Set(read.due.map { "\($0.resourceCRN)@\($0.event.sequence)" }) == ["\(Self.crnA)@3", "\(Self.crnB)@2"])

        // New writes continue the old rows: the next seq follows the largest, the fan-out joins the migrated pairs.
        let written = try await store.write { tx in
            let event = LifecycleEvent(id: "e4", instanceID: "i1", keyID: "k1", keySequence: 4, kind: .sync, keyState: .active,
                                       keyVersion: key.currentVersion, date: epoch.addingTimeInterval(4), principal: "op", correlationID: nil)
            let sequence = try tx.appendEvent(event)
            let fanned = try tx.fanOut(eventSequence: sequence, keyID: "k1", dueAt: epoch)
            let acknowledged = try tx.acknowledgeNotifications(keyID: "k1", resourceCRN: Self.crnB, upToEventSequence: 2, at: epoch)
            try tx.recordStateConflict(keyID: "k1", resourceCRN: Self.crnA, eventSequence: 3, error: "conflict")
            return (sequence, fanned, acknowledged)
        }
        #expect(written.0 == 4 && written.1 == 2 && written.2 == 1)
        let after = try await store.read { tx in
            (due: try tx.dueNotifications(at: epoch.addingTimeInterval(3600), limit: 10),
             incomplete: try tx.incompleteNotifications(instanceID: "i1", limit: 10))
        }
        #expect(Set(after.due.map { "\($0.resourceCRN)@\($0.event.sequence)" }) == ["\(Self.crnA)@3", "\(Self.crnB)@3"])
        #expect(after.incomplete.map { "\($0.resourceCRN)@\($0.event.sequence)" } == ["\(Self.crnA)@3"])

        // Registering c again reuses its pair (made from its old notification), and purging the key ends the
        // unfinished notifications, migrated ones included.
        try await store.write { tx in
            var registration = try #require(read.registrations.first)
            registration.resourceCRN = Self.crnC
            try tx.upsertRegistration(registration)
        }
        #expect(try await store.writer.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM notification_targets") } == 3)
        try await store.write { tx in try tx.purgeKey(id: "k1") }
        let purged = try await store.read { tx in try tx.deliveryCounts(instanceID: nil, keyID: "k1", service: nil) }
        #expect(purged.pending == 0 && purged.sent == 0)
        #expect(try store.integrityCheck() == "ok")
        let violations = try store.writer.read { db in try Row.fetchAll(db, sql: "PRAGMA foreign_key_check") }
        #expect(violations.isEmpty)
    }

    /// Every statement a port method runs, by running it on a traced in-memory store (one connection).
    static func statements(_ store: SQLiteStore, _ body: @escaping @Sendable (any StorageTransaction) throws -> Void) async throws -> [String] {
        final class Box: @unchecked Sendable { var sql: [String] = [] }
        let box = Box()
        try await store.writer.write { db in
            db.trace { event in if case .statement(let statement) = event { box.sql.append(statement.sql) } }
            defer { db.trace(options: [], nil) }
            try body(SQLiteTransaction(db: db))
        }
        return box.sql
    }

    /// The plan of each statement that reads or writes notifications or key versions: no full scan of a table (a
    /// scan of `json_each`, the list of ids bound as one argument, is expected).
    @Test func theRewrittenStatementsUseAnIndex() async throws {
        let store = try SQLiteStore(.inMemory)
        let key = sampleKey()
        try await store.write { tx in
            try tx.ensureInstance("i1", at: epoch)
            try tx.insertKey(key)
            try tx.insertVersion(keyID: key.id, version: key.currentVersion, ordinal: 1, sealedMaterial: Data([1]))
            for bucket in ["a", "b"] { try tx.upsertRegistration(try sampleRegistration(key: key, bucket: bucket)) }
        }
        let crn = try sampleRegistration(key: key, bucket: "a").resourceCRN
        let sql = try await Self.statements(store) { tx in
            let event = LifecycleEvent(id: "e1", instanceID: "i1", keyID: key.id, keySequence: 1, kind: .sync, keyState: .active,
                                       keyVersion: key.currentVersion, date: epoch, principal: "op", correlationID: nil)
            let sequence = try tx.appendEvent(event)
            _ = try tx.fanOut(eventSequence: sequence, keyID: key.id, dueAt: epoch)
            _ = try tx.dueNotifications(at: epoch, limit: 10)
            _ = try tx.acknowledgeNotifications(keyID: key.id, resourceCRN: crn, upToEventSequence: sequence, at: epoch)
            try tx.recordStateConflict(keyID: key.id, resourceCRN: crn, eventSequence: sequence, error: "x")
            _ = try tx.notifications(keyID: key.id, eventSequence: nil, status: nil, limit: 10, offset: 0)
            _ = try tx.deliveryCounts(instanceID: "i1", keyID: key.id, service: nil)
            _ = try tx.deliveryCounts(keyIDs: [key.id])
            _ = try tx.versions(keyID: key.id, limit: 10, offset: 0)
            _ = try tx.sealedMaterial(keyID: key.id, versionID: key.currentVersion.id)
            var next = key
            next.state = .suspended
            try tx.updateKey(next)
            try tx.purgeKey(id: key.id)
        }
        let relevant = sql.filter { $0.contains("notifications") || $0.contains("key_versions") || $0.hasPrefix("UPDATE keys") }
        #expect(relevant.count >= 11)
        for statement in relevant {
            let plan = try await store.writer.read { db in
                // The plan of the statement as written: its parameters unbound (NULL), which is what a plan is made for.
                let explain = try db.makeStatement(sql: "EXPLAIN QUERY PLAN " + statement)
                explain.setUncheckedArguments([])
                return try Row.fetchAll(explain).map { $0["detail"] as String }
            }
            let scans = plan.filter { $0.hasPrefix("SCAN") && !$0.contains("json_each") && !$0.contains("CONSTANT ROW") }
            #expect(scans.isEmpty, "\(statement)\n\(plan.joined(separator: "\n"))")
        }
    }

    /// A key's update sets only what a key can change: its id, instance and creation stay out of the SET list, so
    /// SQLite leaves the id index and `keys_by_instance` alone.
    @Test func aKeyUpdateLeavesTheKeysIdentityOutOfTheSetList() async throws {
        let store = try SQLiteStore(.inMemory)
        let key = sampleKey()
        let sql = try await Self.statements(store) { tx in
            try tx.ensureInstance("i1", at: epoch)
            try tx.insertKey(key)
            var next = key
            next.state = .suspended
            try tx.updateKey(next)
        }
        let update = try #require(sql.first { $0.hasPrefix("UPDATE keys") })
        let setList = update.components(separatedBy: "WHERE").first ?? ""
        for column in ["id", "instance_id", "created_at", "created_by"] {
            #expect(!setList.contains(" \(column) = ?"), "\(column) in \(setList)")
        }
        #expect(try await store.read { tx in try tx.key(id: key.id, instanceID: "i1") }?.state == .suspended)
        await #expect(throws: RecordError.self) {
            try await store.write { tx in try tx.updateKey(sampleKey("gone")) }
        }
    }
}
