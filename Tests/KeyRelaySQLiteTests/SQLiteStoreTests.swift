import Foundation
import GRDB
import KeyRelayCore
import KeyRelayStore
import Testing
@testable import KeyRelaySQLite

/// A fresh directory for one test's database files.
func temporaryDatabasePath(_ name: String = "store.sqlite") throws -> String {
    let dir = FileManager.default.temporaryDirectory.appending(path: "keyrelay-store-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appending(path: name).path
}

let epoch = Date(timeIntervalSince1970: 1_767_225_600)

func sampleKey(_ id: String = "k1", instance: String = "i1") -> Key {
    Key(id: id, instanceID: instance, name: "name-\(id)", extractable: false, imported: false, creationDate: epoch,
        createdBy: "alice", currentVersion: KeyVersion(id: "\(id)-v1", creationDate: epoch))
}

func sampleRegistration(key: Key, bucket: String, prevent: Bool = false) throws -> Registration {
    Registration(keyID: key.id, instanceID: key.instanceID,
                 resourceCRN: try CRN(parsing: CRN.bucket(account: "acct", serviceInstance: "cos", bucket: bucket)),
                 preventKeyDeletion: prevent, keyVersion: key.currentVersion, createdBy: "cos", creationDate: epoch)
}

/// What only the SQLite backend can show (pragmas, migrations, the embedded schema). The behaviour every backend
/// shares is the store contract (StoreContractTests); the few contract-like tests below predate it and stay as
/// SQLite's own regression tests.
@Suite("SQLite store")
struct SQLiteStoreTests {
    @Test func theWriterConnectionCommitsDurablyInWALMode() throws {
        let store = try SQLiteStore(.file(try temporaryDatabasePath()))
        // GRDB's pool switches to synchronous=NORMAL when it enables WAL; the store must put FULL (2) back.
        #expect(try store.writerPragma("synchronous") == "2")
        #expect(try store.writerPragma("journal_mode") == "wal")
        #expect(try store.writerPragma("foreign_keys") == "1")
        #expect(try store.writerPragma("secure_delete") == "1")
    }

    @Test func anEmptyFileIsMigratedToTheLatestSchema() throws {
        let path = try temporaryDatabasePath()
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        _ = try SQLiteStore(.file(path))
        let queue = try DatabaseQueue(path: path)
        let applied = try queue.read { try String.fetchAll($0, sql: "SELECT identifier FROM grdb_migrations ORDER BY identifier") }
        #expect(applied == SQLiteStore.migrations.map(\.identifier))
        #expect(try queue.read { try $0.tableExists("notifications") })
    }

    @Test func aDatabaseFromANewerKeyRelayIsRefusedWithAClearError() throws {
        let path = try temporaryDatabasePath()
        try SQLiteStore(.file(path)).close()
        let queue = try DatabaseQueue(path: path)
        try queue.write { try $0.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('9999_from_the_future')") }
        try queue.close()
        #expect(throws: StoreError.newerSchema(unknown: ["9999_from_the_future"])) { try SQLiteStore(.file(path)) }
        #expect(StoreError.newerSchema(unknown: ["x"]).description.contains("newer version of KeyRelay"))
    }

    @Test func theEmbeddedMigrationsAreExactlyTheFilesInSchemaDirectory() throws {
        // schema/sqlite/ is the single source of truth: the binary must embed every file, in order, byte for byte.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let files = try FileManager.default.contentsOfDirectory(at: root.appending(path: "schema/sqlite"), includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "sql" }.sorted { $0.lastPathComponent < $1.lastPathComponent }
        #expect(!files.isEmpty)
        #expect(files.map { $0.deletingPathExtension().lastPathComponent } == SQLiteStore.migrations.map(\.identifier))
        for (file, migration) in zip(files, SQLiteStore.migrations) {
            #expect(try String(contentsOf: file, encoding: .utf8) == migration.sql)
        }
    }

    @Test func dataSurvivesCloseAndReopen() async throws {
        let path = try temporaryDatabasePath()
        let first = try SQLiteStore(.file(path))
        let key = sampleKey()
        try await first.write { tx in
            try tx.ensureInstance("i1", at: epoch)
            try tx.insertKey(key)
        }
        try first.close()
        let second = try SQLiteStore(.file(path))
        let loaded = try await second.read { tx in try tx.key(id: "k1", instanceID: "i1") }
        #expect(loaded == key)
        #expect(try second.integrityCheck() == "ok")
    }

    @Test func aCommandThatThrowsLeavesNothingBehind() async throws {
        let store = try SQLiteStore(.file(try temporaryDatabasePath()))
        struct Refused: Error {}
        await #expect(throws: Refused.self) {
            try await store.write { tx in
                try tx.ensureInstance("i1", at: epoch)
                try tx.insertKey(sampleKey())
                throw Refused()
            }
        }
        #expect(try await store.read { tx in try tx.key(id: "k1", instanceID: "i1") } == nil)
        #expect(try await store.read { tx in try tx.instanceExists("i1") } == false)
    }

    @Test func fanOutWritesOneNotificationPerRegistrationInTheSameTransaction() async throws {
        let store = try SQLiteStore(.inMemory)
        let key = sampleKey()
        let count = try await store.write { tx -> Int in
            try tx.ensureInstance("i1", at: epoch)
            try tx.insertKey(key)
            for index in 0..<250 { try tx.upsertRegistration(try sampleRegistration(key: key, bucket: "b\(index)")) }
            let event = LifecycleEvent(id: "e1", instanceID: "i1", keyID: key.id, keySequence: 1, kind: .sync,
                                       keyState: .active, keyVersion: key.currentVersion, date: epoch, principal: "op", correlationID: nil)
            let sequence = try tx.appendEvent(event)
            return try tx.fanOut(eventSequence: sequence, keyID: key.id, dueAt: epoch)
        }
        #expect(count == 250)
        let counts = try await store.read { tx in try tx.deliveryCounts(instanceID: nil, keyID: key.id, service: nil) }
        #expect(counts == DeliveryCounts(pending: 250))
        let seen = try await store.read { tx -> Int in
            var n = 0
            try tx.forEachRegistration(keyID: key.id) { _ in n += 1 }
            return n
        }
        #expect(seen == 250)
    }

    @Test func registrationSummaryCountsPreventingRegistrations() async throws {
        let store = try SQLiteStore(.inMemory)
        let key = sampleKey()
        let summary = try await store.write { tx -> RegistrationSummary in
            try tx.ensureInstance("i1", at: epoch)
            try tx.insertKey(key)
            try tx.upsertRegistration(try sampleRegistration(key: key, bucket: "a"))
            try tx.upsertRegistration(try sampleRegistration(key: key, bucket: "b", prevent: true))
            return try tx.registrationSummary(keyID: key.id)
        }
        #expect(summary == RegistrationSummary(count: 2, preventingDeletion: 1))
    }

    @Test func dueNotificationsKeepPerResourceOrderBehindPendingOnesOnly() async throws {
        let store = try SQLiteStore(.inMemory)
        let key = sampleKey()
        let due = try await store.write { tx -> [ResourceNotification] in
            try tx.ensureInstance("i1", at: epoch)
            try tx.insertKey(key)
            try tx.upsertRegistration(try sampleRegistration(key: key, bucket: "a"))
            for n in 1...2 {
                let event = LifecycleEvent(id: "e\(n)", instanceID: "i1", keyID: key.id, keySequence: n, kind: .sync, keyState: .active,
                                           keyVersion: key.currentVersion, date: epoch, principal: "op", correlationID: nil)
                _ = try tx.fanOut(eventSequence: try tx.appendEvent(event), keyID: key.id, dueAt: epoch)
            }
            return try tx.dueNotifications(at: epoch, limit: 10)
        }
        #expect(due.map(\.event.id) == ["e1"])  // e2 waits behind the pending e1
        let afterSend = try await store.write { tx -> [ResourceNotification] in
            try tx.recordDelivery(notificationID: due[0].id, .sent(at: epoch, ackDeadline: epoch.addingTimeInterval(14400)))
            return try tx.dueNotifications(at: epoch, limit: 10)
        }
        #expect(afterSend.map(\.event.id) == ["e2"])  // a sent one awaiting its ack does not hold e2 back
    }
}
