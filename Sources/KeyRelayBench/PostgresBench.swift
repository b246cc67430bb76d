import Foundation
import KeyRelay
import KeyRelayPostgres
import KeyRelayStore
import Logging
import PostgresNIO

/// The PostgreSQL figures (issue #12, item 5), each on a fresh database of the server `--postgres URL` names (its
/// user needs CREATEDB), each measured against a baseline the bench takes itself with plain postgres-nio on the same
/// server, a few seconds apart.
///
/// - `pg_durable_commit_per_s`: one connection, autocommit `INSERT` of one 200-byte row, as many as fit.
/// - `pg_lifecycle_ops_per_s`: ``Bench/lifecycle(engines:clock:callers:started:)`` on one `PostgresStore`, one caller.
/// - `pg_lifecycle_ops_per_s_64_on_1` / `_64_on_2`: 64 callers on one engine, and 32 + 32 on two engines, each with
///   its own `PostgresStore` (its own pool and LISTEN connection) on one database: two replicas in one process.
/// - `pg_insert_100k_s`: 100,000 rows of the `notifications` table's shape (its columns, its primary key, no
///   secondary index, as the SQLite baseline) inserted by one `INSERT … SELECT … FROM generate_series` in one
///   transaction, committed: the server builds the rows itself, no round trip per row.
/// - `pg_sync_fanout_100k_s`: an accepted `sync` of a key with 100,000 registrations until it returns (its
///   notifications committed). The registrations are loaded through the store before the clock starts.
struct PostgresBench {
    let server: PostgresStore.Configuration
    let bench: Bench
    private let logger = Logger(label: "keyrelay.bench.postgres", factory: { _ in SwiftLogNoOpLogHandler() })

    init(url: String, bench: Bench) throws {
        server = try PostgresStore.Configuration(url: url)
        self.bench = bench
    }

    var options: BenchOptions { bench.options }

    // MARK: Plain postgres-nio

    /// The bench's own connections are plain postgres-nio ones, without TLS (a loopback server, as
    /// `scripts/bench-postgres` starts): a URL that requires TLS is refused rather than measured differently.
    func connectionConfiguration(_ database: String) throws -> PostgresConnection.Configuration {
        if let directory = server.socketDirectory {
            return PostgresConnection.Configuration(unixSocketPath: "\(directory)/.s.PGSQL.\(server.port)",
                                                    username: server.username, password: server.password, database: database)
        }
        guard server.tls == .disable || server.tls == .prefer else {
            throw BenchError("the PostgreSQL benches connect without TLS: use a URL with sslmode=disable or prefer (a loopback server)")
        }
        return PostgresConnection.Configuration(host: server.host, port: server.port, username: server.username,
                                                password: server.password, database: database, tls: .disable)
    }

    func withConnection<T>(_ database: String, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        let connection = try await PostgresConnection.connect(configuration: try connectionConfiguration(database), id: 1, logger: logger)
        do {
            let value = try await body(connection)
            try await connection.close()
            return value
        } catch {
            try? await connection.close()
            throw error
        }
    }

    func execute(_ connection: PostgresConnection, _ sql: String) async throws {
        _ = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
    }

    /// One integer (or nil) from a one-row, one-column query.
    func integer(_ connection: PostgresConnection, _ sql: String) async throws -> Int64? {
        for try await row in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger) {
            return try row.decode(Int64?.self)
        }
        return nil
    }

    /// The server's WAL position in bytes: the difference of two is what the server wrote to its log in between.
    func walPosition(_ database: String) async throws -> Double {
        try await withConnection(database) { Double(try await integer($0, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint") ?? 0) }
    }

    /// A fresh database on the server (`krbench_<random>`), dropped after `body`.
    func withDatabase<T>(_ body: (PostgresStore.Configuration) async throws -> T) async throws -> T {
        let name = "krbench_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        // The name is made here of [a-z0-9_]: it can be spliced (CREATE DATABASE takes no parameter).
        try await withConnection(server.database) { try await execute($0, "CREATE DATABASE \(name)") }
        var configuration = server
        configuration.database = String(name)
        do {
            let value = try await body(configuration)
            try await drop(name)
            return value
        } catch {
            try? await drop(name)
            throw error
        }
    }

    private func drop(_ name: String) async throws {
        try await withConnection(server.database) { try await execute($0, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
    }

    /// `CHECKPOINT` where the user may (a superuser or `pg_checkpoint`): the measured transaction does not pay for
    /// the bulk load's dirty pages. Without the right it is skipped and a note says so.
    func checkpoint(_ connection: PostgresConnection, notes: inout [String]) async {
        do {
            try await execute(connection, "CHECKPOINT")
        } catch {
            let note = "pg: CHECKPOINT refused (\(String(describing: error).prefix(80))): the 100k figures may include a checkpoint"
            if !notes.contains(note) { notes.append(note) }
        }
    }

    // MARK: Figures

    /// One caller, one-row durable transactions (autocommit), as many as fit in the measuring time.
    func durableCommits(_ database: PostgresStore.Configuration) async throws
        -> (rate: Double, walBytesPerCommit: Double, cpuMicrosecondsPerCommit: Double) {
        try await withConnection(database.database) { connection in
            try await execute(connection, "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL)")
            var bindings = PostgresBindings(capacity: 1)
            bindings.append(String(repeating: "Z", count: 200))
            let insert = PostgresQuery(unsafeSQL: "INSERT INTO t (v) VALUES ($1)", binds: bindings)
            for _ in 0..<20 { _ = try await connection.query(insert, logger: logger) }
            let wal = Double(try await integer(connection, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint") ?? 0)
            var count = 0
            let cpu = LoadGenerator.processCPUSeconds()
            let start = now()
            let deadline = start + options.throughputSeconds
            while now() < deadline {
                _ = try await connection.query(insert, logger: logger)
                count += 1
            }
            let elapsed = now() - start
            let after = Double(try await integer(connection, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint") ?? 0)
            return (Double(count) / elapsed, (after - wal) / Double(max(count, 1)),
                    (LoadGenerator.processCPUSeconds() - cpu) / Double(max(count, 1)) * 1e6)
        }
    }

    /// The lifecycle mix on `replicas` engines, each with its own `PostgresStore` on `database`, from `callers`
    /// callers spread evenly over them.
    func lifecycle(_ database: PostgresStore.Configuration, replicas: Int, callers: Int) async throws
        -> (rate: Double, cpuMicrosecondsPerOp: Double, ops: Double) {
        let clock = ManualClock()
        let masterKey = MasterKey.generate()
        var stores: [PostgresStore] = []
        var engines: [KeyRelayEngine] = []
        do {
            for _ in 0..<replicas {
                let store = try await PostgresStore(database)
                stores.append(store)
                // Engines one after another: the first records the master key's check value, the second verifies it.
                engines.append(try await KeyRelayEngine(storage: store, masterKey: masterKey, clock: clock, ids: RandomIdentifiers()))
            }
            let (rate, operations) = try await bench.lifecycle(engines: engines, clock: clock, callers: callers)
            for store in stores { await store.close() }
            return (rate, bench.lastCPUMicrosecondsPerOp, Double(operations))
        } catch {
            for store in stores { await store.close() }
            throw error
        }
    }

    /// 100,000 rows of the notifications table's shape in one transaction, by one `INSERT … SELECT … FROM
    /// generate_series`; `indexed` adds the notifications table's secondary indexes as of schema 0003 (a detail,
    /// not a baseline). The rows carry `target_id` like the fan-out's (since 0003).
    func rawInsert(_ database: PostgresStore.Configuration, rows: Int, indexed: Bool, notes: inout [String]) async throws
        -> (seconds: Double, walBytes: Double) {
        try await withConnection(database.database) { connection in
            try await execute(connection, """
                CREATE TABLE raw_notifications (
                    id BIGSERIAL PRIMARY KEY, event_seq BIGINT NOT NULL, target_id BIGINT NOT NULL, key_id TEXT COLLATE "C" NOT NULL,
                    resource_crn TEXT COLLATE "C" NOT NULL, service TEXT COLLATE "C" NOT NULL, status TEXT COLLATE "C" NOT NULL,
                    attempts BIGINT NOT NULL DEFAULT 0, next_attempt_at BIGINT, last_error TEXT COLLATE "C", sent_at BIGINT,
                    acked_at BIGINT, incomplete INTEGER, claimed_until BIGINT)
                """)
            if indexed {
                try await execute(connection, "CREATE INDEX ON raw_notifications (next_attempt_at, id) WHERE status IN ('pending', 'sent')")
                try await execute(connection, "CREATE INDEX ON raw_notifications (target_id, event_seq)")
                try await execute(connection, "CREATE INDEX ON raw_notifications (id) WHERE incomplete IS NOT NULL")
            }
            await checkpoint(connection, notes: &notes)
            let keyID = UUID().uuidString.lowercased()
            let wal = Double(try await integer(connection, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint") ?? 0)
            let start = now()
            try await execute(connection, "BEGIN")
            try await execute(connection, """
                INSERT INTO raw_notifications (event_seq, target_id, key_id, resource_crn, service, status, attempts, next_attempt_at)
                SELECT 1, i + 1, '\(keyID)', 'crn:v1:bluemix:public:cloud-object-storage:global:a/0123456789abcdef:instance-0001:bucket:bucket-' || i,
                       'cloud-object-storage', 'pending', 0, 1767225600000
                FROM generate_series(0, \(rows - 1)) AS i
                """)
            try await execute(connection, "COMMIT")
            let elapsed = now() - start
            let after = Double(try await integer(connection, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint") ?? 0)
            return (elapsed, after - wal)
        }
    }

    /// An accepted sync on a key with `registrations` registrations (loaded through the store, 2,500 per
    /// transaction, 8 transactions at a time, then `ANALYZE` and `CHECKPOINT`), until the sync returns.
    func syncFanout(_ database: PostgresStore.Configuration, registrations: Int, notes: inout [String]) async throws
        -> (seconds: Double, loadSeconds: Double, walBytes: Double) {
        let clock = ManualClock()
        let store = try await PostgresStore(database)
        do {
            let engine = try await KeyRelayEngine(storage: store, masterKey: .generate(), clock: clock, ids: RandomIdentifiers())
            let key = try await engine.createKey(KeySpec(name: "fanout-key"), context: Bench.context)
            let loadStart = now()
            try await BulkLoad.registrations(store: store, key: key, count: registrations, chunk: 2_500,
                                             parallel: database.maximumConnections)
            let loadSeconds = now() - loadStart
            try await withConnection(database.database) { connection in
                try await execute(connection, "ANALYZE")
                await checkpoint(connection, notes: &notes)
            }
            clock.advance(by: 7200)
            let wal = try await walPosition(database.database)
            let start = now()
            let receipt = try await engine.sync(key.id, context: Bench.context)
            let elapsed = now() - start
            let walBytes = try await walPosition(database.database) - wal
            await store.close()
            guard receipt.notifications == registrations else {
                throw BenchError("sync wrote \(receipt.notifications) notifications, expected \(registrations)")
            }
            return (elapsed, loadSeconds, walBytes)
        } catch {
            await store.close()
            throw error
        }
    }

    // MARK: The run

    /// Runs the PostgreSQL figures `options` asks for (`--only pg_durable,pg_lifecycle,pg_concurrent,pg_insert,pg_fanout`).
    func run(into report: inout Report, step: (String) -> Void) async throws {
        var notes: [String] = []
        if options.wants("pg_durable") {
            step("pg_durable_commit_per_s")
            let result = try await withDatabase { try await durableCommits($0) }
            report.set("pg_durable_commit_per_s", result.rate)
            report.details["pg_durable_commit_wal_kib_per_commit"] = result.walBytesPerCommit / 1024
            // This process's CPU (postgres-nio, the event loop) per one-round-trip commit: to compare with the
            // lifecycle's per operation (the server's CPU is in its own processes, not counted).
            report.details["pg_durable_commit_cpu_us_per_commit"] = result.cpuMicrosecondsPerCommit
        }
        if options.wants("pg_lifecycle") {
            step("pg_lifecycle_ops_per_s")
            let result = try await withDatabase { database in
                try await measuredWAL(database) { try await lifecycle(database, replicas: 1, callers: 1) }
            }
            report.set("pg_lifecycle_ops_per_s", result.value.rate)
            report.details["pg_lifecycle_cpu_us_per_op"] = result.value.cpuMicrosecondsPerOp
            report.details["pg_lifecycle_ops"] = result.value.ops
            report.details["pg_lifecycle_wal_kib_per_op"] = result.wal / max(result.value.ops, 1) / 1024
        }
        if options.wants("pg_concurrent") {
            for replicas in [1, 2] {
                let name = "pg_lifecycle_ops_per_s_64_on_\(replicas)"
                step(name)
                let result = try await withDatabase { database in
                    try await measuredWAL(database) { try await lifecycle(database, replicas: replicas, callers: 64) }
                }
                report.set(name, result.value.rate)
                report.details["pg_64_on_\(replicas)_cpu_us_per_op"] = result.value.cpuMicrosecondsPerOp
                report.details["pg_64_on_\(replicas)_ops"] = result.value.ops
                report.details["pg_64_on_\(replicas)_wal_kib_per_op"] = result.wal / max(result.value.ops, 1) / 1024
            }
        }
        if options.wants("pg_insert") {
            step("pg_insert_100k_s")
            let rows = options.fanoutRegistrations
            let plain = try await withDatabase { try await rawInsert($0, rows: rows, indexed: false, notes: &notes) }
            report.set("pg_insert_100k_s", plain.seconds)
            report.details["pg_insert_100k_wal_mib"] = plain.walBytes / 1_048_576
            step("pg_insert_100k_indexed_s (detail)")
            let indexed = try await withDatabase { try await rawInsert($0, rows: rows, indexed: true, notes: &notes) }
            report.details["pg_insert_100k_indexed_s"] = indexed.seconds
            report.details["pg_insert_100k_indexed_wal_mib"] = indexed.walBytes / 1_048_576
        }
        if options.wants("pg_fanout") {
            step("pg_sync_fanout_100k_s")
            let registrations = options.fanoutRegistrations
            let result = try await withDatabase { try await syncFanout($0, registrations: registrations, notes: &notes) }
            report.set("pg_sync_fanout_100k_s", result.seconds)
            report.details["pg_fanout_bulk_load_s"] = result.loadSeconds
            report.details["pg_sync_fanout_100k_wal_mib"] = result.walBytes / 1_048_576
        }
        report.notes.append(contentsOf: notes)
    }

    /// `body`'s value and the bytes the server wrote to its WAL meanwhile (the whole server's, other databases too;
    /// the stores' opening and the warm-up's 8 operations per engine included).
    private func measuredWAL<T>(_ database: PostgresStore.Configuration, _ body: () async throws -> T) async throws -> (value: T, wal: Double) {
        let before = try await walPosition(database.database)
        let value = try await body()
        return (value, try await walPosition(database.database) - before)
    }
}
