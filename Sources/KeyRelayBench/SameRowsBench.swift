import Foundation
import GRDB
import KeyRelaySQLite

/// `sqlite_same_rows_batched_per_s` (issue #16): plain GRDB writing exactly the rows and index entries that the
/// lifecycle benchmark's commands write, 64 commands per durable commit, on KeyRelay's own schema (every embedded
/// migration, in order) and pragmas (WAL, `synchronous = FULL`, foreign keys, `secure_delete`). It is the physical
/// limit of `lifecycle_ops_per_s_concurrent`: what SQLite costs for those pages, with no engine, no rule, no read,
/// no savepoint.
///
/// The mix is the lifecycle benchmark's, from 64 "callers" each on its own keys:
/// - create: a `keys` row, its first `key_versions` row, a `create` event;
/// - rotate: the key's update, a new `key_versions` row, a `rotate` event;
/// - disable, enable: the key's update and its event.
///
/// The lifecycle benchmark's keys have no registrations, so none of these commands writes a notification row (the
/// engine's fan-out `INSERT … SELECT` selects no registration): neither does the baseline. The key update sets the
/// same columns as `SQLiteStore`'s (everything but the key's identity and origin).
enum SameRowsBench {
    static let instanceID = "bench-instance"
    static let commandsPerCommit = 64

    /// Commands per second, and bytes written to storage per command.
    static func run(path: String, seconds: Double) throws -> (rate: Double, writtenBytesPerCommand: Double, commands: Int, cpuMicrosecondsPerCommand: Double) {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.foreignKeysEnabled = true
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA secure_delete = ON") }
        let pool = try DatabasePool(path: path, configuration: configuration)
        defer { try? pool.close() }
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        try pool.write { db in
            for migration in SQLiteStore.migrations { try db.execute(sql: migration.sql) }
            try db.execute(sql: "INSERT INTO instances (id, created_at) VALUES (?, 0)", arguments: [instanceID])
        }
        var callers = (0..<commandsPerCommit).map { Caller(index: $0) }
        var clock: Int64 = 1_767_225_600_000
        // Warm up: one batch (statement caches, the first pages of each table).
        try pool.write { db in for i in callers.indices { try callers[i].step(db, now: &clock) } }
        let bytes = Memory.writtenBytes()
        let cpu = LoadGenerator.processCPUSeconds()
        var commands = 0
        let start = now()
        let deadline = start + seconds
        while now() < deadline || callers.contains(where: { $0.step % 4 != 0 }) {
            try pool.write { db in for i in callers.indices { try callers[i].step(db, now: &clock) } }
            commands += callers.count
        }
        let elapsed = now() - start
        return (Double(commands) / elapsed, (Memory.writtenBytes() - bytes) / Double(max(commands, 1)), commands,
                (LoadGenerator.processCPUSeconds() - cpu) / Double(max(commands, 1)) * 1e6)
    }

    /// One caller's keys: create → rotate → disable → enable, then a new key.
    struct Caller {
        let index: Int
        var step = 0
        var keyID = ""
        var versionID = ""
        var versionCreatedAt: Int64 = 0
        var lastRotateAt: Int64?
        var versionCount = 0
        var keySequence = 0

        mutating func step(_ db: Database, now clock: inout Int64) throws {
            clock += 3_601_000
            let now = clock
            let eventID = UUID().uuidString.lowercased()
            switch step % 4 {
            case 0:
                keyID = UUID().uuidString.lowercased()
                versionCount = 1
                keySequence = 1
                versionID = UUID().uuidString.lowercased()
                versionCreatedAt = now
                lastRotateAt = nil
                try db.cachedStatement(sql: """
                    INSERT INTO keys (id, instance_id, name, description, tags, key_ring_id, extractable, imported, state,
                        created_at, created_by, updated_at, updated_by, last_action_at, last_sync_at, last_rotate_at, expires_at,
                        version_id, version_created_at, version_count, deleted_at, deleted_by, dual_auth_enabled, dual_auth_by,
                        dual_auth_expires_at, dual_auth_stamp, rotation_enabled, rotation_interval, rotation_stamp, event_sequence)
                    VALUES (?, ?, ?, NULL, '[]', 'default', 0, 0, 1, ?, 'bench', ?, 'bench', NULL, NULL, NULL, NULL,
                        ?, ?, 1, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, 1)
                    """).execute(arguments: [keyID, SameRowsBench.instanceID, "bench-\(index)-\(step)", now, now, versionID, now])
                try insertVersion(db, now)
                try insertEvent(db, eventID, "create", state: 1, now)
            case 1:
                versionCount += 1
                keySequence += 1
                versionID = UUID().uuidString.lowercased()
                versionCreatedAt = now
                lastRotateAt = now
                try updateKey(db, state: 1, now)
                try insertVersion(db, now)
                try insertEvent(db, eventID, "rotate", state: 1, now)
            default:
                keySequence += 1
                let state = step % 4 == 2 ? 2 : 1
                try updateKey(db, state: state, now)
                try insertEvent(db, eventID, state == 2 ? "disable" : "enable", state: state, now)
            }
            step += 1
        }

        private func updateKey(_ db: Database, state: Int, _ now: Int64) throws {
            // The same SET list as SQLiteStore's updateKey.
            try db.cachedStatement(sql: """
                UPDATE keys SET name = ?, description = NULL, tags = '[]', key_ring_id = 'default', extractable = 0, imported = 0,
                    state = ?, updated_at = ?, updated_by = 'bench', last_action_at = ?, last_sync_at = NULL, last_rotate_at = ?,
                    expires_at = NULL, version_id = ?, version_created_at = ?, version_count = ?, deleted_at = NULL,
                    deleted_by = NULL, dual_auth_enabled = 0, dual_auth_by = NULL, dual_auth_expires_at = NULL,
                    dual_auth_stamp = NULL, rotation_enabled = NULL, rotation_interval = NULL, rotation_stamp = NULL,
                    event_sequence = ?
                WHERE id = ?
                """).execute(arguments: [
                    "bench-\(index)-\(step - step % 4)", state, now, now, lastRotateAt, versionID, versionCreatedAt, versionCount, keySequence, keyID,
                ])
        }

        private func insertVersion(_ db: Database, _ now: Int64) throws {
            // 60 bytes: what AES-GCM seals 32 bytes of material into (12-byte nonce, 16-byte tag).
            let sealed = Data((0..<60).map { _ in UInt8.random(in: 0...255) })
            try db.cachedStatement(sql: "INSERT INTO key_versions (id, key_id, ordinal, created_at, sealed_material) VALUES (?, ?, ?, ?, ?)")
                .execute(arguments: [versionID, keyID, versionCount, now, sealed])
        }

        private func insertEvent(_ db: Database, _ eventID: String, _ kind: String, state: Int, _ now: Int64) throws {
            try db.cachedStatement(sql: """
                INSERT INTO events (id, instance_id, key_id, key_seq, kind, key_state, version_id, version_created_at, at, principal, correlation_id)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'bench', NULL)
                """).execute(arguments: [eventID, SameRowsBench.instanceID, keyID, keySequence, kind, state, versionID, versionCreatedAt, now])
        }
    }
}
