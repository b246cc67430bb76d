import Foundation
import KeyRelayCore
import KeyRelayStore
import Synchronization
import Testing
@testable import KeyRelayPostgres

private let epoch = Date(timeIntervalSince1970: 1_767_225_600)

private func key(_ id: String) -> Key {
    Key(id: id, instanceID: "i1", name: "name-\(id)", extractable: false, imported: false, creationDate: epoch, createdBy: "alice",
        currentVersion: KeyVersion(id: "\(id)-v1", creationDate: epoch))
}

private func seed(_ store: PostgresStore, _ key: Key, buckets: [String] = []) async throws {
    try await store.write { tx in
        try tx.ensureInstance(key.instanceID, at: epoch)
        try tx.insertKey(key)
        for bucket in buckets {
            try tx.upsertRegistration(Registration(
                keyID: key.id, instanceID: key.instanceID,
                resourceCRN: try CRN(parsing: CRN.bucket(account: "acct", serviceInstance: "cos", bucket: bucket)),
                keyVersion: key.currentVersion, createdBy: "cos", creationDate: epoch))
        }
    }
}

/// Adds 1 to a key's event sequence, reading it as a command does (inside a write: under its row lock).
private func bump(_ tx: any StorageTransaction, _ id: String) throws {
    var stored = try #require(try tx.key(id: id, instanceID: "i1"))
    stored.eventSequence += 1
    try tx.updateKey(stored)
}

/// Waits inside `tx` (60 s at most) until another backend waits for a lock this transaction holds: the other
/// command has reached the statement that must wait for this one. `pg_blocking_pids` reads the lock manager live
/// (`pg_stat_activity` would be the transaction's snapshot), and only waiters blocked by this backend count, so
/// another test's locks on the same server do not.
private func waitUntilAnotherCommandWaitsForThisOne(_ tx: any StorageTransaction, timeout: TimeInterval = 60) throws {
    let session = try #require(tx as? PostgresTransaction).session
    let deadline = Date().addingTimeInterval(timeout)
    while try session.rows("SELECT 1 FROM pg_locks WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid))").isEmpty {
        guard Date() < deadline else { throw PostgresStoreError(sqlState: nil, message: "no other command came to wait for this one") }
        Thread.sleep(forTimeInterval: 0.005)
    }
}

/// Two parties meeting, one of them on a pool thread: each says it has arrived, then waits (5 s at most) for the other.
private final class Rendezvous: Sendable {
    let arrived = Mutex([false, false])
    let runs = Mutex(0)

    /// Bounded, and generous: under a full suite on 2 cores the other store's command can take seconds to start
    /// (its thread pool and connection); a healthy run returns as soon as it has.
    func arrive(_ me: Int, thenWaitFor other: Int, timeout: TimeInterval = 60) throws {
        arrived.withLock { $0[me] = true }
        let deadline = Date().addingTimeInterval(timeout)
        while !arrived.withLock({ $0[other] }) {
            guard Date() < deadline else { throw PostgresStoreError(sqlState: nil, message: "the other command never started") }
            Thread.sleep(forTimeInterval: 0.005)
        }
    }
}

/// What only a shared database shows: migrations under a lock, row locks between replicas, claims, LISTEN/NOTIFY.
@Suite("PostgreSQL store", .enabled(if: hasServer, serverMissing))
struct PostgresStoreTests {
    @Test func twoReplicasOpeningAFreshDatabaseAtOnceMigrateItOnce() async throws {
        try await withScratch { scratch in
            let database = try await scratch.database()
            async let first = scratch.open(database)
            async let second = scratch.open(database)
            let (a, b) = try await (first, second)
            let applied = try await a.read { tx in try tx.meta("none") }
            #expect(applied == nil)
            try await b.write { tx in try tx.setMeta("m", Data([1])) }
            #expect(try await a.read { tx in try tx.meta("m") } == Data([1]))
            // Each migration recorded exactly once (the second replica found the work done under the lock).
            let probe = try await scratch.open(database)
            try await probe.execute("""
                DO $$ BEGIN IF (SELECT COUNT(*) FROM keyrelay_migrations) <> \(PostgresStore.migrations.count)
                THEN RAISE EXCEPTION 'migrations recorded twice or missing'; END IF; END $$
                """)
        }
    }

    @Test func aDatabaseANewerKeyRelayMigratedIsRefusedNamingTheMigration() async throws {
        try await withScratch { scratch in
            let store = try await scratch.store()
            try await store.execute("INSERT INTO keyrelay_migrations (identifier, applied_at) VALUES ('0099_future', 0)")
            await #expect(throws: StoreError.newerSchema(unknown: ["0099_future"])) { _ = try await scratch.open(store.configuration) }
        }
    }

    /// Two replicas change one key at once: the second one's read waits for the first one's row lock and then sees
    /// its committed update (FOR UPDATE in READ COMMITTED), so neither update is lost.
    @Test func twoReplicasWritingOneKeySerializeAndTheSecondSeesTheFirst() async throws {
        try await withScratch { scratch in
            let (a, b) = try await scratch.replicas()
            try await seed(a, key("k1"))
            let firstHasRead = Mutex(false)
            let first = Task {
                try await a.write { tx in
                    var stored = try #require(try tx.key(id: "k1", instanceID: "i1"))
                    firstHasRead.withLock { $0 = true }
                    // Holds the row lock until the second's read waits for it (a pool thread, not an event loop).
                    try waitUntilAnotherCommandWaitsForThisOne(tx)
                    stored.eventSequence += 1
                    try tx.updateKey(stored)
                }
            }
            while !firstHasRead.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
            let seenBySecond = try await b.write { tx in
                var stored = try #require(try tx.key(id: "k1", instanceID: "i1"))
                let seen = stored.eventSequence
                stored.eventSequence += 1
                try tx.updateKey(stored)
                return seen
            }
            try await first.value
            #expect(seenBySecond == 1, "the second replica read the key before the first one's update committed")
            #expect(try await a.read { tx in try tx.key(id: "k1", instanceID: "i1")?.eventSequence } == 2)
        }
    }

    /// Many commands over two replicas, contending on a few keys, each reading its key, bumping it and appending
    /// the key's next event: none is lost (each key's count is its number of commands) and each key's events are
    /// numbered 1…n without a gap or a repeat, more commands than either pool has connections.
    @Test func contendedCommandsOverTwoReplicasLoseNothing() async throws {
        try await withScratch { scratch in
            let (a, b) = try await scratch.replicas()
            let keys = (0..<5).map { key("k\($0)") }
            for key in keys { try await seed(a, key) }
            let commands = 200
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<commands {
                    let store = i % 2 == 0 ? a : b, id = keys[i % keys.count].id
                    group.addTask {
                        try await store.write { tx in
                            var stored = try #require(try tx.key(id: id, instanceID: "i1"))
                            stored.eventSequence += 1
                            try tx.updateKey(stored)
                            _ = try tx.appendEvent(LifecycleEvent(
                                id: "\(id)-e\(stored.eventSequence)", instanceID: "i1", keyID: id, keySequence: stored.eventSequence,
                                kind: .sync, keyState: .active, keyVersion: stored.currentVersion, date: epoch, principal: "op",
                                correlationID: nil))
                        }
                    }
                }
                try await group.waitForAll()
            }
            for key in keys {
                let (count, sequences) = try await b.read { tx in
                    (try tx.key(id: key.id, instanceID: "i1")?.eventSequence,
                     try tx.events(instanceID: "i1", keyID: key.id, after: 0, limit: 1000).map(\.keySequence))
                }
                #expect(count == commands / keys.count)
                #expect(sequences == Array(1...(commands / keys.count)))
            }
        }
    }

    /// Two replicas locking two keys in opposite orders deadlock; PostgreSQL aborts one of them, and the store runs
    /// that command again once the other has committed: both commit, neither update is lost.
    @Test func aDeadlockBetweenReplicasIsResolvedByRunningTheLoserAgain() async throws {
        try await withScratch { scratch in
            let (a, b) = try await scratch.replicas()
            try await seed(a, key("k1"))
            try await seed(a, key("k2"))
            let rendezvous = Rendezvous()
            async let first: Void = a.write { tx in
                rendezvous.runs.withLock { $0 += 1 }
                try bump(tx, "k1")
                try rendezvous.arrive(0, thenWaitFor: 1)
                try bump(tx, "k2")
            }
            async let second: Void = b.write { tx in
                rendezvous.runs.withLock { $0 += 1 }
                try bump(tx, "k2")
                try rendezvous.arrive(1, thenWaitFor: 0)
                try bump(tx, "k1")
            }
            _ = try await (first, second)
            // At least one command ran again (its retry can meet the other's lock once more before that one commits).
            #expect(rendezvous.runs.withLock { $0 } >= 3, "no command was run again: there was no deadlock to resolve")
            let sequences = try await a.read { tx in
                [try tx.key(id: "k1", instanceID: "i1")?.eventSequence, try tx.key(id: "k2", instanceID: "i1")?.eventSequence]
            }
            #expect(sequences == [2, 2])
        }
    }

    /// Two replicas registering one new (key, resource) pair at once, neither holding the key's row: the second's
    /// statement starts while the first has made the pair and not committed, waits for it, and still gets the pair's
    /// id (a lookup in its own snapshot would find none). Both registrations commit, on one target.
    @Test func twoReplicasRegisteringOneNewResourceAtOnceShareItsTarget() async throws {
        try await withScratch { scratch in
            let (a, b) = try await scratch.replicas()
            try await seed(a, key("k1"))
            let crn = CRN.bucket(account: "acct", serviceInstance: "cos", bucket: "b1")
            @Sendable func registration(_ description: String) throws -> Registration {
                Registration(keyID: "k1", instanceID: "i1", resourceCRN: try CRN(parsing: crn), description: description,
                             keyVersion: KeyVersion(id: "k1-v1", creationDate: epoch), createdBy: "cos", creationDate: epoch)
            }
            let rendezvous = Rendezvous()
            async let first: Void = a.write { tx in
                try tx.upsertRegistration(try registration("first"))
                // Waits for the upsert's answer: the pair and the registration are written, uncommitted.
                _ = try tx.registration(keyID: "k1", resourceCRN: crn)
                try rendezvous.arrive(0, thenWaitFor: 1)
                // The second's statement waits on this transaction's pair until COMMIT.
                try waitUntilAnotherCommandWaitsForThisOne(tx)
            }
            async let second: Void = b.write { tx in
                try rendezvous.arrive(1, thenWaitFor: 0)
                try tx.upsertRegistration(try registration("second"))
            }
            _ = try await (first, second)
            let stored = try await a.read { tx in try tx.registration(keyID: "k1", resourceCRN: crn) }
            #expect(stored?.description == "second")
            try await a.execute("""
                DO $$ BEGIN IF (SELECT COUNT(*) FROM notification_targets) <> 1
                   OR (SELECT target_id FROM registrations) <> (SELECT id FROM notification_targets)
                THEN RAISE EXCEPTION 'the pair has no single target'; END IF; END $$
                """)
        }
    }

    /// A read outside a write takes no lock: it completes while a write holds the key's row (the write waits for the
    /// read to finish before it lets go, so a read that waited for the lock would time the write out).
    @Test func aReadDoesNotWaitForAWritersRowLock() async throws {
        try await withScratch { scratch in
            let store = try await scratch.store()
            try await seed(store, key("k1"))
            let rendezvous = Rendezvous()
            let writer = Task {
                try await store.write { tx in
                    _ = try tx.key(id: "k1", instanceID: "i1")
                    try rendezvous.arrive(0, thenWaitFor: 1, timeout: 10)
                }
            }
            while !rendezvous.arrived.withLock({ $0[0] }) { try await Task.sleep(for: .milliseconds(5)) }
            #expect(try await store.read { tx in try tx.key(id: "k1", instanceID: "i1")?.id } == "k1")
            rendezvous.arrived.withLock { $0[1] = true }
            try await writer.value
        }
    }

    @Test func aSecondStoreOnTheDatabaseSeesTheFirstOnesCommitsOnItsFeed() async throws {
        try await withScratch { scratch in
            let (writer, listener) = try await scratch.replicas()
            let before = listener.commits.generation
            let woken = Task { await listener.commits.wait(after: before, timeout: .seconds(5)); return listener.commits.generation }
            try await writer.write { tx in try tx.setMeta("announced", Data([1])) }
            #expect(await woken.value != before, "the other store's commit never reached this store's feed")
        }
    }

    @Test func aRefusedWriteIsNotAnnounced() async throws {
        try await withScratch { scratch in
            let (writer, listener) = try await scratch.replicas()
            let before = listener.commits.generation
            struct Refused: Error {}
            await #expect(throws: Refused.self) { try await writer.write { tx in try tx.setMeta("x", Data([1])); throw Refused() } }
            await listener.commits.wait(after: before, timeout: .milliseconds(500))
            #expect(listener.commits.generation == before)
        }
    }

    /// Migration 0002: the fan-out's INSERT … SELECT into notifications fires no trigger per row (the foreign key to
    /// events was one, a third of a 100k-registration sync); the columns the fan-out copies stay as they were.
    @Test func theFanOutFiresNoTriggerPerNotification() async throws {
        try await withScratch { scratch in
            let store = try await scratch.store()
            try await store.execute("""
                DO $$ BEGIN IF (SELECT COUNT(*) FROM pg_trigger WHERE tgrelid = 'notifications'::regclass) <> 0
                THEN RAISE EXCEPTION 'notifications has a trigger'; END IF; END $$
                """)
            try await seed(store, key("k1"), buckets: ["b1", "b2", "b3"])
            let count = try await store.write { tx in
                var event = LifecycleEvent(id: "e1", instanceID: "i1", keyID: "k1", keySequence: 1, kind: .sync, keyState: .active,
                                           keyVersion: KeyVersion(id: "k1-v1", creationDate: epoch), date: epoch, principal: "op",
                                           correlationID: nil)
                event.sequence = try tx.appendEvent(event)
                return try tx.fanOut(eventSequence: event.sequence, keyID: "k1", dueAt: epoch)
            }
            #expect(count == 3)
            let notifications = try await store.read { tx in try tx.notifications(eventSequences: [1]) }
            #expect(notifications.map(\.event.id) == ["e1", "e1", "e1"])
            #expect(notifications.map(\.status) == [.pending, .pending, .pending])
        }
    }

    /// The fan-out writes no index entry that repeats a notification's key id or CRN (schema 0003): per-resource
    /// lookups go through the pair's integer `target_id`.
    @Test func noIndexOfNotificationsRepeatsTheKeyOrTheResource() async throws {
        try await withScratch { scratch in
            let store = try await scratch.store()
            try await store.execute("""
                DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                                       WHERE i.indrelid = 'notifications'::regclass AND a.attname IN ('key_id', 'resource_crn'))
                THEN RAISE EXCEPTION 'an index of notifications holds key_id or resource_crn'; END IF; END $$
                """)
        }
    }

    /// Migration 0003 on a database 0002 left with notifications and registrations in it: every (key, resource) pair
    /// gets one target, the per-resource order check, acknowledgements and per-key questions find the old rows, a
    /// pair only old notifications name (a purged key's) has one too, and a later fan-out follows the old rows.
    @Test func theTargetMigrationKeepsOrderAndAcknowledgementsOfExistingNotifications() async throws {
        try await withScratch { scratch in
            let database = try await scratch.database()
            let b1 = CRN.bucket(account: "acct", serviceInstance: "cos", bucket: "b1")
            let b2 = CRN.bucket(account: "acct", serviceInstance: "cos", bucket: "b2")
            let b3 = CRN.bucket(account: "acct", serviceInstance: "cos", bucket: "b3")
            let at = Int64(epoch.timeIntervalSince1970 * 1000), deadline = at + 4 * 3_600_000
            func event(_ seq: Int, _ key: String) -> String {
                "INSERT INTO events (seq, id, instance_id, key_id, key_seq, kind, key_state, version_id, version_created_at, at, principal) VALUES (\(seq), 'e\(seq)', 'i1', '\(key)', \(seq), 'rotate', 1, '\(key)-v1', \(at), \(at), 'op')"
            }
            func notification(_ seq: Int, _ key: String, _ crn: String, _ status: String, next: Int64?) -> String {
                "INSERT INTO notifications (event_seq, key_id, resource_crn, service, status, attempts, next_attempt_at) VALUES (\(seq), '\(key)', '\(crn)', 'cos', '\(status)', 0, \(next.map(String.init) ?? "NULL"))"
            }
            func registration(_ key: String, _ crn: String) -> String {
                "INSERT INTO registrations (key_id, resource_crn, instance_id, service, key_version_id, key_version_created_at, created_by, created_at, updated_by, updated_at) VALUES ('\(key)', '\(crn)', 'i1', 'cos', '\(key)-v1', \(at), 'cos', \(at), 'cos', \(at))"
            }
            let keyColumns = "id, instance_id, name, extractable, imported, state, created_at, created_by, updated_at, updated_by, version_id, version_created_at, version_count"
            try await PostgresScratchDatabase.migrate(database, through: "0002_fanout_without_event_foreign_key", then: [
                "INSERT INTO instances (id, created_at) VALUES ('i1', \(at))",
                "INSERT INTO keys (\(keyColumns)) VALUES ('k1', 'i1', 'n1', false, false, 1, \(at), 'a', \(at), 'a', 'k1-v1', \(at), 1)",
                registration("k1", b2), registration("k1", b1),
                event(1, "k1"), event(2, "k1"), event(3, "gone"),
                // b1: e1 sent (its deadline ahead), e2 pending: e2 is due. b2: e1 and e2 pending: only e1 is due.
                notification(1, "k1", b1, "sent", next: deadline), notification(1, "k1", b2, "pending", next: at),
                notification(2, "k1", b1, "pending", next: at), notification(2, "k1", b2, "pending", next: at),
                // A purged key's notification: its key and registrations are gone, its pair is only here.
                notification(3, "gone", b1, "dead", next: nil),
                "SELECT setval('events_seq_seq', 3)",
            ])
            let store = try await scratch.open(database)
            let now = epoch.addingTimeInterval(1)
            let due = try await store.read { tx in try tx.dueNotifications(at: now, limit: 10) }
            #expect(due.map { "\($0.event.id) \($0.resourceCRN)" }.sorted() == ["e1 \(b2)", "e2 \(b1)"])
            let (gone, counts) = try await store.read { tx in
                (try tx.notifications(keyID: "gone", eventSequence: nil, status: nil, limit: 10, offset: 0),
                 try tx.deliveryCounts(keyIDs: ["k1", "gone"]))
            }
            #expect(gone.map(\.resourceCRN) == [b1])
            #expect(counts["k1"]?[.pending] == 3 && counts["k1"]?[.sent] == 1 && counts["gone"]?[.dead] == 1)
            // Registering b3 and registering b1 again; a sync after the migration fans out to the three.
            let acknowledged = try await store.write { tx in
                for crn in [b3, b1] {
                    try tx.upsertRegistration(Registration(keyID: "k1", instanceID: "i1", resourceCRN: try CRN(parsing: crn),
                                                           keyVersion: KeyVersion(id: "k1-v1", creationDate: epoch),
                                                           createdBy: "cos", creationDate: epoch))
                }
                var event = LifecycleEvent(id: "e4", instanceID: "i1", keyID: "k1", keySequence: 4, kind: .sync, keyState: .active,
                                           keyVersion: KeyVersion(id: "k1-v1", creationDate: epoch), date: epoch, principal: "op",
                                           correlationID: nil)
                event.sequence = try tx.appendEvent(event)
                #expect(event.sequence == 4)
                #expect(try tx.fanOut(eventSequence: event.sequence, keyID: "k1", dueAt: epoch) == 3)
                return try tx.acknowledgeNotifications(keyID: "k1", resourceCRN: b2, upToEventSequence: 2, at: now)
            }
            #expect(acknowledged == 2)
            // b1: e2 still pending holds e4 back; b2: both earlier ones acknowledged, e4 is due; b3: e4, its first.
            let dueAfter = try await store.read { tx in try tx.dueNotifications(at: now, limit: 10) }
            #expect(dueAfter.map { "\($0.event.id) \($0.resourceCRN)" }.sorted() == ["e2 \(b1)", "e4 \(b2)", "e4 \(b3)"])
            let found = try await store.read { tx in try tx.notification(eventID: "e1", resourceCRN: b1) }
            #expect(found?.status == .sent)
            // One target per pair, and every row points at its own pair's.
            try await store.execute("""
                DO $$ BEGIN
                IF (SELECT COUNT(*) FROM notification_targets) <> 4
                   OR EXISTS (SELECT 1 FROM notifications n JOIN notification_targets t ON t.id = n.target_id
                              WHERE (t.key_id, t.resource_crn) <> (n.key_id, n.resource_crn))
                   OR EXISTS (SELECT 1 FROM registrations r JOIN notification_targets t ON t.id = r.target_id
                              WHERE (t.key_id, t.resource_crn) <> (r.key_id, r.resource_crn))
                THEN RAISE EXCEPTION 'targets do not match their rows'; END IF; END $$
                """)
        }
    }

    /// Writes the closure needs no answer from are sent without waiting (PostgresSession): one that fails still fails
    /// its transaction, with its own error, and nothing of the transaction is committed.
    @Test func aWriteSentWithoutWaitingThatFailsFailsItsTransaction() async throws {
        try await withScratch { scratch in
            let store = try await scratch.store()
            try await seed(store, key("k1"))
            // The second INSERT INTO keys of k1 is refused (23505); the closure went on and returned.
            let duplicate = await #expect(throws: PostgresStoreError.self) {
                try await store.write { tx in
                    try tx.setMeta("after-begin", Data([1]))
                    try tx.insertKey(key("k1"))
                    try tx.setMeta("after-duplicate", Data([2]))
                    return 1
                }
            }
            #expect(duplicate?.sqlState == "23505")
            // Refused before the closure's own error: the store's failure is what is reported, as on SQLite, where
            // the closure would have stopped at the write.
            struct Refused: Error {}
            let first = await #expect(throws: PostgresStoreError.self) {
                try await store.write { tx in
                    try tx.insertKey(key("k1"))
                    throw Refused()
                }
            }
            #expect(first?.sqlState == "23505")
            // An UPDATE of a key that is not there changes no row: checked when its answer arrives.
            await #expect(throws: PostgresStoreError.self) {
                try await store.write { tx in
                    try tx.updateKey(key("ghost"))
                    try tx.setMeta("after-ghost", Data([3]))
                }
            }
            for name in ["after-begin", "after-duplicate", "after-ghost"] {
                #expect(try await store.read { tx in try tx.meta(name) } == nil, "\(name) was committed")
            }
            // A later read sees the writes sent before it, in the same transaction.
            let seen = try await store.write { tx in
                var stored = try #require(try tx.key(id: "k1", instanceID: "i1"))
                stored.eventSequence = 7
                try tx.updateKey(stored)
                return try tx.key(id: "k1", instanceID: "i1")?.eventSequence
            }
            #expect(seen == 7)
        }
    }

    /// The round trips of a lifecycle command's shape (read the key under its lock, write it and its new version,
    /// append the event, fan out): the thread waits for the key, the event's sequence and, when the key has
    /// registrations, the fan-out's count — and COMMIT; BEGIN and the notification of `keyrelay_commits` (in the
    /// event's statement) are not waited for, the key's and version's writes ride on the event's statement, and the
    /// event-sequence lock is in it too. A key the transaction locked and found without registrations fans out with
    /// no statement.
    @Test func aLifecycleCommandWaitsForTheAnswersItReadsOnly() async throws {
        try await withScratch { scratch in
            let store = try await scratch.store()
            try await seed(store, key("k1"), buckets: ["b1", "b2"])
            try await seed(store, key("k2"))
            @Sendable func rotate(_ id: String, registering bucket: String? = nil) async throws -> (sent: Int, waits: Int, count: Int) {
                try await store.write { tx in
                    var stored = try #require(try tx.key(id: id, instanceID: "i1"))
                    let version = KeyVersion(id: "\(id)-v\(stored.eventSequence + 2)", creationDate: epoch)
                    try tx.insertVersion(keyID: id, version: version, ordinal: stored.eventSequence + 2, sealedMaterial: Data([1, 2, 3]))
                    stored.currentVersion = version
                    var event = stored.recordEvent(.rotate, id: "\(id)-e\(stored.eventSequence + 1)", at: epoch, by: "op", correlationID: nil)
                    try tx.updateKey(stored)
                    event.sequence = try tx.appendEvent(event)
                    if let bucket {
                        try tx.upsertRegistration(Registration(
                            keyID: id, instanceID: "i1",
                            resourceCRN: try CRN(parsing: CRN.bucket(account: "acct", serviceInstance: "cos", bucket: bucket)),
                            keyVersion: version, createdBy: "cos", creationDate: epoch))
                    }
                    let count = try tx.fanOut(eventSequence: event.sequence, keyID: id, dueAt: epoch)
                    let session = try #require(tx as? PostgresTransaction).session
                    return (session.sent, session.waits, count)
                }
            }
            // BEGIN, SELECT … FOR UPDATE, the event (INSERT INTO key_versions and UPDATE keys carried, lock +
            // pg_notify + INSERT + whether the key has registrations), the fan-out; COMMIT follows.
            let registered = try await rotate("k1")
            #expect(registered.count == 2)
            #expect(registered.sent == 4)
            #expect(registered.waits == 3)
            // Without registrations: no fan-out statement, one wait less.
            let unregistered = try await rotate("k2")
            #expect(unregistered.count == 0)
            #expect(unregistered.sent == 3)
            #expect(unregistered.waits == 2)
            // A registration the transaction itself makes after the event is fanned out to (one statement with its
            // (key, resource) target, not waited for).
            let registering = try await rotate("k2", registering: "b3")
            #expect(registering.count == 1)
            #expect(registering.sent == 5)
            #expect(registering.waits == 3)
            let notified = try await store.read { tx in
                try tx.notifications(keyID: nil, eventSequence: nil, status: nil, limit: 10, offset: 0).map(\.event.keyID)
            }
            #expect(notified.sorted() == ["k1", "k1", "k2"])
            #expect(try await store.read { tx in try tx.latestEventSequence() } == 3)
        }
    }

    /// Writes carried by the next statement (PostgresSession, "Writes carried by the next statement") fail their
    /// transaction as they would have failed on their own: with their own error, before the closure's, checked for
    /// the one row an update must change, and with nothing committed. A new key and its version ride together on the
    /// event's statement (the version's foreign key is checked at the end of the statement), the instance on the
    /// policies' read.
    @Test func writesCarriedByTheEventsStatementFailAsTheirOwnStatementsWould() async throws {
        try await withScratch { scratch in
            let store = try await scratch.store()
            @Sendable func version(_ id: String) -> KeyVersion { KeyVersion(id: id, creationDate: epoch) }
            struct Missing: Error {}
            @Sendable func rotate(_ tx: any StorageTransaction, to versionID: String) throws -> Int64 {
                guard var stored = try tx.key(id: "k1", instanceID: "i1") else { throw Missing() }
                try tx.insertVersion(keyID: "k1", version: version(versionID), ordinal: stored.eventSequence + 2, sealedMaterial: Data([1]))
                stored.currentVersion = version(versionID)
                let event = stored.recordEvent(.rotate, id: "e-\(versionID)", at: epoch, by: "op", correlationID: nil)
                try tx.updateKey(stored)
                return try tx.appendEvent(event)
            }
            // Create's shape: BEGIN, the instance carried by the policies' read, the key and its version by the
            // event's statement.
            let created = try await store.write { tx in
                try tx.ensureInstance("i1", at: epoch)
                #expect(try tx.instancePolicies(instanceID: "i1").isEmpty)
                var new = key("k1")
                let event = new.recordEvent(.create, id: "e-create", at: epoch, by: "op", correlationID: nil)
                try tx.insertKey(new)
                try tx.insertVersion(keyID: "k1", version: new.currentVersion, ordinal: 1, sealedMaterial: Data([1]))
                _ = try tx.appendEvent(event)
                return try #require(tx as? PostgresTransaction).session.sent
            }
            #expect(created == 3)
            #expect(try await store.read { tx in try tx.versions(keyID: "k1", limit: 10, offset: 0).map(\.id) } == ["k1-v1"])
            _ = try await store.write { tx in try rotate(tx, to: "k1-v2") }
            // The version's id is taken: the carried INSERT fails the event's statement with its own error.
            let duplicate = await #expect(throws: PostgresStoreError.self) {
                try await store.write { tx in try rotate(tx, to: "k1-v2") }
            }
            #expect(duplicate?.sqlState == "23505")
            // Held and not yet carried when the closure refuses: the write is sent, and its failure comes first.
            struct Refused: Error {}
            let first = await #expect(throws: PostgresStoreError.self) {
                try await store.write { tx in
                    let stored = try #require(try tx.key(id: "k1", instanceID: "i1"))
                    try tx.insertVersion(keyID: "k1", version: version("k1-v2"), ordinal: stored.eventSequence + 2, sealedMaterial: Data([1]))
                    throw Refused()
                }
            }
            #expect(first?.sqlState == "23505")
            // An update of a held key that is gone changes no row: the carrier's count says so.
            let gone = await #expect(throws: PostgresStoreError.self) {
                try await store.write { tx in
                    var stored = try #require(try tx.key(id: "k1", instanceID: "i1"))
                    try tx.purgeKey(id: "k1")
                    try tx.updateKey(stored)
                    _ = try tx.appendEvent(stored.recordEvent(.disable, id: "e-gone", at: epoch, by: "op", correlationID: nil))
                }
            }
            #expect(gone?.message == "key 'k1' to update is not in the database")
            let after = try await store.read { tx in
                (try tx.key(id: "k1", instanceID: "i1")?.currentVersion.id, try tx.versions(keyID: "k1", limit: 10, offset: 0).count,
                 try tx.latestEventSequence())
            }
            #expect(after.0 == "k1-v2" && after.1 == 2 && after.2 == 2)
        }
    }

    /// Two dispatchers claiming at once get disjoint notifications; a claim holds until its lease ends or a delivery
    /// outcome is recorded.
    @Test func claimsAreDisjointAndHeldUntilTheLeaseEnds() async throws {
        try await withScratch { scratch in
            let (a, b) = try await scratch.replicas()
            let keys = (0..<6).map { key("k\($0)") }
            for key in keys { try await seed(a, key, buckets: ["b-\(key.id)"]) }
            try await a.write { tx in
                for key in keys {
                    var event = LifecycleEvent(id: "\(key.id)-e1", instanceID: "i1", keyID: key.id, keySequence: 1, kind: .sync,
                                               keyState: .active, keyVersion: key.currentVersion, date: epoch, principal: "op",
                                               correlationID: nil)
                    event.sequence = try tx.appendEvent(event)
                    _ = try tx.fanOut(eventSequence: event.sequence, keyID: key.id, dueAt: epoch)
                }
            }
            let now = epoch.addingTimeInterval(10), lease = epoch.addingTimeInterval(70)
            async let first = a.write { tx in try tx.claimDueNotifications(at: now, limit: 4, leaseUntil: lease) }
            async let second = b.write { tx in try tx.claimDueNotifications(at: now, limit: 4, leaseUntil: lease) }
            let (x, y) = try await (first, second)
            #expect(x.count + y.count == 6)
            #expect(Set(x.map(\.id)).isDisjoint(with: y.map(\.id)))
            #expect(try await a.write { tx in try tx.claimDueNotifications(at: now, limit: 10, leaseUntil: lease) }.isEmpty)
            // An outcome ends the claim; the lease's end frees the rest.
            let delivered = try #require(x.first)
            try await a.write { tx in try tx.recordDelivery(notificationID: delivered.id, .failed(at: now, error: "503", retryAt: now)) }
            #expect(try await a.write { tx in try tx.claimDueNotifications(at: now, limit: 10, leaseUntil: lease) }.map(\.id) == [delivered.id])
            let afterLease = try await b.write { tx in
                try tx.claimDueNotifications(at: lease, limit: 10, leaseUntil: lease.addingTimeInterval(60))
            }
            #expect(afterLease.count == 6)
        }
    }

    /// Registrations stream in pages of 500: more than two pages come back whole, once each, in order.
    @Test func registrationsStreamAcrossPages() async throws {
        try await withScratch { scratch in
            let store = try await scratch.store()
            let buckets = (0..<1101).map { String(format: "b%05d", $0) }
            try await seed(store, key("k1"), buckets: buckets)
            try await seed(store, key("k2"), buckets: ["other"])
            let (one, both) = try await store.read { tx in
                var one: [String] = [], both: [String] = []
                try tx.forEachRegistration(keyID: "k1") { one.append($0.resourceCRN) }
                try tx.forEachRegistration(keyIDs: ["k2", "k1"]) { both.append("\($0.keyID) \($0.resourceCRN)") }
                return (one, both)
            }
            let crns = buckets.map { CRN.bucket(account: "acct", serviceInstance: "cos", bucket: $0) }
            #expect(one == crns)
            #expect(both == crns.map { "k1 \($0)" } + ["k2 \(CRN.bucket(account: "acct", serviceInstance: "cos", bucket: "other"))"])
        }
    }

    /// On a database whose locale sorts "_x" before "B" (ICU en-US), text still sorts by its bytes, as on SQLite:
    /// "B" < "_x" < "a"; and case-blind matching folds ASCII letters only, as SQLite's LIKE and NOCASE do.
    @Test func textSortsByBytesAndMatchesASCIICaseBlindWhateverTheLocale() async throws {
        try await withScratch { scratch in
            let store = try await scratch.open(try await scratch.database(icuLocale: .englishUS))
            try await store.write { tx in for id in ["a", "_x", "B"] { try tx.ensureInstance(id, at: epoch) } }
            #expect(try await store.read { tx in try tx.instanceIDs() } == ["B", "_x", "a"])
            var stored = key("k1")
            stored.name = "Ärger Key"
            try await store.write { [stored] tx in
                try tx.ensureInstance("i1", at: epoch)
                try tx.insertKey(stored)
            }
            @Sendable func searching(_ text: String) -> KeyQuery {
                var query = KeyQuery()
                query.search = KeySearch(text)
                return query
            }
            let (ascii, nonASCII) = try await store.read { tx in
                (try tx.countKeys(instanceID: "i1", query: searching("KEY")), try tx.countKeys(instanceID: "i1", query: searching("ärger")))
            }
            #expect(ascii == 1)
            #expect(nonASCII == 0)
        }
    }

    @Test func aStoredValueThisBuildDoesNotKnowFailsClosed() async throws {
        try await withScratch { scratch in
            let store = try await scratch.store()
            try await seed(store, key("k1"))
            _ = try await store.write { tx in
                try tx.appendEvent(LifecycleEvent(id: "e1", instanceID: "i1", keyID: "k1", keySequence: 1, kind: .sync, keyState: .active,
                                                  keyVersion: key("k1").currentVersion, date: epoch, principal: "op", correlationID: nil))
            }
            try await store.execute("UPDATE events SET kind = 'teleport'")
            await #expect(throws: StoreError.corruptRow(table: "events", column: "kind", value: "teleport")) {
                _ = try await store.read { tx in try tx.event(id: "e1") }
            }
        }
    }

    @Test func anUnreachableServerIsAnErrorNamingItWithoutThePassword() async throws {
        let configuration = try PostgresStore.Configuration(url: "postgres://kms:s3cret@127.0.0.1:1/keyrelay?sslmode=disable")
        let error = await #expect(throws: PostgresStoreError.self) { _ = try await PostgresStore(configuration) }
        let text = String(describing: error)
        #expect(text.contains("cannot connect to postgres://kms:***@127.0.0.1:1/keyrelay"))
        #expect(!text.contains("s3cret"))
    }
}
