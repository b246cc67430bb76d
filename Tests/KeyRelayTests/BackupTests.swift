import Foundation
import KeyRelaySQLite
import Testing
@testable import KeyRelay

/// `KeyRelayEngine.backup(to:)`: an online copy, consistent while commands go on, that the master key opens.
@Suite("Online backup")
struct BackupTests {
    /// While a task creates, registers and force-deletes keys, a backup is taken. The copy must hold exactly a
    /// prefix of the source's events, and the keys and notifications that prefix implies: nothing torn.
    @Test func aBackupTakenDuringWritesIsAConsistentSnapshotTheMasterKeyOpens() async throws {
        let path = try temporaryPath("source.sqlite")
        let copy = URL(fileURLWithPath: path).deletingLastPathComponent().appending(path: "copy.sqlite").path
        let (engine, _) = try await makeEngine(path: path)
        let writer = Task {
            for index in 0..<60 {
                let key = try await engine.createKey(KeySpec(name: "key-\(index)"), context: alice)
                try await engine.register(keyID: key.id, resourceCRN: CRN.bucket(account: "acct", serviceInstance: "cos-1", bucket: "b\(index)"),
                                          context: alice)
                _ = try await engine.delete(key.id, force: true, context: alice)
            }
        }
        while try await engine.events(limit: 10_000).count < 20 { await Task.yield() }
        try await engine.backup(to: copy)
        try await writer.value

        let store = try SQLiteStore(.file(copy))
        #expect(try store.integrityCheck() == "ok")
        try store.close()

        let restored = try await KeyRelayEngine.open(.file(copy).mustExist, masterKey: testMaster, clock: ManualClock(start: start))
        let sourceEvents = try await engine.events(limit: 10_000)
        let copiedEvents = try await restored.events(limit: 10_000)
        #expect(copiedEvents.count >= 20 && copiedEvents.count < sourceEvents.count, "the backup ran while writes went on")
        #expect(copiedEvents.map(\.id) == sourceEvents.prefix(copiedEvents.count).map(\.id))

        // Keys: those created in the prefix, destroyed exactly when their delete is in it.
        var all = KeyQuery()
        all.states = [.active, .suspended, .deactivated, .destroyed]
        all.limit = 5000
        let copiedKeys = try await restored.listKeys(all, context: alice).items
        let created = Set(copiedEvents.filter { $0.kind == .create }.map(\.keyID))
        let deleted = Set(copiedEvents.filter { $0.kind == .delete }.map(\.keyID))
        #expect(Set(copiedKeys.map(\.id)) == created)
        for key in copiedKeys { #expect((key.state == .destroyed) == deleted.contains(key.id), "\(key.name)") }

        // Notifications: one per delete in the prefix, as the source wrote them.
        let sourceNotifications = try await engine.notifications(limit: 10_000)
            .filter { notification in copiedEvents.contains { $0.id == notification.event.id } }
        let copiedNotifications = try await restored.notifications(limit: 10_000)
        #expect(copiedNotifications.count == deleted.count)
        #expect(copiedNotifications.map { "\($0.event.id) \($0.resourceCRN) \($0.status)" }
                == sourceNotifications.map { "\($0.event.id) \($0.resourceCRN) \($0.status)" })

        await expectError(.unauthorized) {
            _ = try await KeyRelayEngine.open(.file(copy), masterKey: .generate(), clock: ManualClock(start: start))
        }
    }

    @Test func aBackupNeverOverwritesAFile() async throws {
        let path = try temporaryPath("source.sqlite")
        let target = URL(fileURLWithPath: path).deletingLastPathComponent().appending(path: "taken.txt").path
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: target))
        let (engine, _) = try await makeEngine(path: path)
        let error = await #expect(throws: (any Error).self) { try await engine.backup(to: target) }
        #expect("\(error.map { String(describing: $0) } ?? "")".contains("already exists"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == Data("keep me".utf8))
    }

    @Test func aLocationThatMustExistIsNotCreated() async throws {
        let path = try temporaryPath("typo.sqlite")
        let error = await #expect(throws: (any Error).self) {
            _ = try await KeyRelayEngine.open(.file(path).mustExist, masterKey: testMaster, clock: ManualClock(start: start))
        }
        #expect(String(describing: error.map { String(describing: $0) } ?? "").contains(path))
        #expect(!FileManager.default.fileExists(atPath: path))
    }
}
