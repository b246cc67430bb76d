import Foundation
import GRDB
import KeyRelay
import KeyRelayBus
import KeyRelaySQLite

struct BenchOptions: Sendable {
    var quick: Bool
    var jsonPath: String?
    var only: Set<String>?
    var directory: String?
    /// `--postgres URL`: the server of the PostgreSQL figures (`pg_*`), which run only with it.
    var postgres: String?

    func wants(_ name: String) -> Bool { only?.contains(name) ?? true }

    /// How long each throughput figure is measured.
    var throughputSeconds: Double { quick ? 2 : 10 }
    var httpSeconds: Double { quick ? 2 : 5 }
    var fanoutRegistrations: Int { 100_000 }
    var rssRegistrations: Int { quick ? 100_000 : 1_000_000 }
    var httpConnections: Int { 8 }
    /// Buckets on the delivery benchmark's key (one notification each per sync).
    var deliveryBuckets: Int { quick ? 500 : 2_000 }
    /// Hand-overs at once in the delivery and webhook benchmarks (`--delivery-concurrency`; the dispatcher's default).
    var deliveryConcurrency: Int = DeliveryPolicy.defaultConcurrency
    /// How the dispatcher paces them (`--delivery-scheduling`): continuous, as `serve` runs it, unless asked for rounds.
    var deliveryScheduling: DeliveryPolicy.Scheduling = .continuous
}

/// Monotonic seconds.
func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// Runs every benchmark in one process, on databases in one temporary directory with KeyRelay's pragmas
/// (WAL, `synchronous = FULL`).
final class Bench {
    let options: BenchOptions
    /// Bytes written to storage per commit (durable baseline) or per operation, by the latest measurement.
    var lastWrittenBytesPerCommit = 0.0
    var lastWrittenBytes = 0.0
    /// Process CPU (user + system) per lifecycle operation of the latest lifecycle measurement, in microseconds.
    var lastCPUMicrosecondsPerOp = 0.0
    /// Bytes the checkpoint after the fan-out's bulk load wrote (counted in the fan-out's figure before issue #16).
    var lastCheckpointBytes = 0.0

    init(options: BenchOptions) { self.options = options }

    func run() async throws -> Report {
        let base = options.directory.map { URL(fileURLWithPath: $0) } ?? FileManager.default.temporaryDirectory
        let directory = base.appendingPathComponent("keyrelay-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var report = Report(quick: options.quick, directory: base.path)
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        func step(_ name: String) { FileHandle.standardError.write(Data("· \(name)…\n".utf8)) }

        if options.wants("durable") {
            step("sqlite_durable_commit_per_s")
            report.set("sqlite_durable_commit_per_s", try durableCommits(path: path("durable.sqlite")))
            report.details["durable_commit_written_kib_per_commit"] = lastWrittenBytesPerCommit / 1024
            report.written["sqlite_durable_commit_per_s"] = (lastWrittenBytesPerCommit / 1024, "commit")
        }
        if options.wants("lifecycle") {
            step("lifecycle_ops_per_s")
            let (rate, statistics) = try await lifecycle(path: path("lifecycle.sqlite"), callers: 1)
            report.set("lifecycle_ops_per_s", rate)
            report.details["lifecycle_written_kib_per_op"] = lastWrittenBytesPerCommit / 1024
            report.details["lifecycle_ops"] = Double(statistics.commands)
            report.details["lifecycle_cpu_us_per_op"] = lastCPUMicrosecondsPerOp
            report.written["lifecycle_ops_per_s"] = (lastWrittenBytesPerCommit / 1024, "op")
        }
        if options.wants("same_rows") {
            step("sqlite_same_rows_batched_per_s")
            let result = try SameRowsBench.run(path: path("same-rows.sqlite"), seconds: options.throughputSeconds)
            report.set("sqlite_same_rows_batched_per_s", result.rate)
            report.details["same_rows_written_kib_per_command"] = result.writtenBytesPerCommand / 1024
            report.details["same_rows_commands"] = Double(result.commands)
            report.details["same_rows_cpu_us_per_command"] = result.cpuMicrosecondsPerCommand
            report.written["sqlite_same_rows_batched_per_s"] = (result.writtenBytesPerCommand / 1024, "command")
        }
        if options.wants("concurrent") {
            step("lifecycle_ops_per_s_concurrent")
            let (rate, statistics) = try await lifecycle(path: path("concurrent.sqlite"), callers: 64)
            report.set("lifecycle_ops_per_s_concurrent", rate)
            report.details["group_commit_mean_batch"] = statistics.meanBatch
            report.details["group_commit_largest_batch"] = Double(statistics.largestBatch)
            report.details["concurrent_written_kib_per_op"] = lastWrittenBytesPerCommit / 1024
            report.details["concurrent_written_kib_per_commit"] = lastWrittenBytesPerCommit * statistics.meanBatch / 1024
            report.details["concurrent_ops"] = Double(statistics.commands)
            report.details["concurrent_cpu_us_per_op"] = lastCPUMicrosecondsPerOp
            report.written["lifecycle_ops_per_s_concurrent"] = (lastWrittenBytesPerCommit / 1024, "op")
        }
        if options.wants("insert") {
            step("sqlite_insert_100k_s")
            report.set("sqlite_insert_100k_s", try rawInsert(path: path("insert.sqlite"), rows: options.fanoutRegistrations))
            report.details["insert_100k_written_mib"] = lastWrittenBytes / 1_048_576
            report.set("sqlite_insert_100k_written_mib", lastWrittenBytes / 1_048_576)
            report.written["sqlite_insert_100k_s"] = (lastWrittenBytes / 1024 / Double(options.fanoutRegistrations), "row")
        }
        if options.wants("fanout") {
            step("sync_fanout_100k_s")
            report.set("sync_fanout_100k_s", try await syncFanout(path: path("fanout.sqlite"), registrations: options.fanoutRegistrations))
            report.details["sync_fanout_100k_written_mib"] = lastWrittenBytes / 1_048_576
            report.set("sync_fanout_100k_written_mib", lastWrittenBytes / 1_048_576)
            report.details["fanout_bulk_load_checkpoint_mib"] = lastCheckpointBytes / 1_048_576
            report.written["sync_fanout_100k_s"] = (lastWrittenBytes / 1024 / Double(options.fanoutRegistrations), "notification")
        }
        if options.wants("delivery") {
            step("delivery_per_s")
            let result = try await DeliveryBench.run(path: path("delivery.sqlite"), seconds: options.throughputSeconds,
                                                     buckets: options.deliveryBuckets, concurrency: options.deliveryConcurrency,
                                                     scheduling: options.deliveryScheduling)
            report.set("delivery_per_s", result.rate)
            report.details["delivery_buckets"] = Double(result.buckets)
            report.details["delivery_rounds"] = Double(result.rounds)
            report.details["delivery_concurrency"] = Double(result.concurrency)
            report.details["delivery_continuous"] = options.deliveryScheduling == .continuous ? 1 : 0
            report.details["delivery_group_commit_mean_batch"] = result.groupCommitMeanBatch
            report.details["delivery_commits_per_delivery"] = result.commitsPerDelivery
            report.details["delivery_cpu_us_per_delivery"] = result.cpuMicrosecondsPerDelivery
        }
        if options.wants("webhook") {
            step("webhook_delivery_per_s, webhook_bare_post_per_s")
            let result = try await WebhookBench.run(path: path("webhook.sqlite"), seconds: options.throughputSeconds,
                                                    resources: options.deliveryBuckets, concurrency: options.deliveryConcurrency,
                                                    scheduling: options.deliveryScheduling)
            report.set("webhook_delivery_per_s", result.deliveryRate)
            report.set("webhook_bare_post_per_s", result.bareRate)
            report.details["webhook_resources"] = Double(result.resources)
            report.details["webhook_rounds"] = Double(result.rounds)
            report.details["webhook_body_bytes"] = Double(result.bodyBytes)
            report.details["webhook_group_commit_mean_batch"] = result.groupCommitMeanBatch
        }
        if options.wants("http") {
            step("http_baseline_rps, http_get_key_rps, http_sync_rps")
            let results = try await HTTPBench.run(path: path("http.sqlite"), seconds: options.httpSeconds,
                                                  connections: options.httpConnections)
            for (name, outcome) in results {
                switch outcome {
                case .measured(let rate): report.set(name, rate)
                case .pending(let why): report.pending[name] = why
                }
            }
        }
        if options.wants("rss") {
            step("peak_rss_mb (\(options.rssRegistrations) registrations, separate process)")
            let result = try rssChild(path: path("rss.sqlite"), registrations: options.rssRegistrations)
            report.set("peak_rss_mb", result.peak)
            report.details["rss_registrations"] = Double(options.rssRegistrations)
            report.details["rss_before_sync_mb"] = result.before
            report.details["rss_sync_s"] = result.seconds
            if !result.reset { report.notes.append("peak_rss_mb: /proc/self/clear_refs unavailable, the peak includes the bulk load") }
        }
        if let url = options.postgres {
            let postgres = try PostgresBench(url: url, bench: self)
            report.postgres = postgres.server.description
            try await postgres.run(into: &report, step: step)
        }
        report.details["process_peak_rss_mb"] = Memory.peak()
        return report
    }

    // MARK: Baselines: plain GRDB

    /// A plain GRDB pool with the store's pragmas.
    static func plainPool(_ path: String) throws -> DatabasePool {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        let pool = try DatabasePool(path: path, configuration: configuration)
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        return pool
    }

    /// One caller, one-row durable transactions, as many as fit in the measuring time.
    func durableCommits(path: String) throws -> Double {
        let pool = try Self.plainPool(path)
        defer { try? pool.close() }
        try pool.write { db in try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)") }
        let payload = Data(repeating: 0x5A, count: 200)
        for _ in 0..<20 { try pool.write { db in try db.execute(sql: "INSERT INTO t (v) VALUES (?)", arguments: [payload]) } }
        var count = 0
        let bytes = Memory.writtenBytes()
        let start = now()
        let deadline = start + options.throughputSeconds
        while now() < deadline {
            try pool.write { db in try db.execute(sql: "INSERT INTO t (v) VALUES (?)", arguments: [payload]) }
            count += 1
        }
        let elapsed = now() - start
        lastWrittenBytesPerCommit = (Memory.writtenBytes() - bytes) / Double(max(count, 1))
        return Double(count) / elapsed
    }

    /// 100,000 registration-sized rows in one transaction with one prepared statement, committed durably.
    func rawInsert(path: String, rows: Int) throws -> Double {
        let pool = try Self.plainPool(path)
        defer { try? pool.close() }
        try pool.write { db in
            try db.execute(sql: """
                CREATE TABLE rows (
                    id INTEGER PRIMARY KEY, key_id TEXT NOT NULL, resource_crn TEXT NOT NULL, service TEXT NOT NULL,
                    status TEXT NOT NULL, attempts INTEGER NOT NULL, next_attempt_at INTEGER, event_seq INTEGER NOT NULL)
                """)
        }
        let keyID = UUID().uuidString.lowercased()
        let bytes = Memory.writtenBytes()
        let start = now()
        try pool.write { db in
            let statement = try db.makeStatement(sql: "INSERT INTO rows (key_id, resource_crn, service, status, attempts, next_attempt_at, event_seq) VALUES (?, ?, ?, 'pending', 0, ?, 1)")
            for i in 0..<rows {
                try statement.execute(arguments: [
                    keyID, "crn:v1:bluemix:public:cloud-object-storage:global:a/0123456789abcdef:instance-0001:bucket:bucket-\(i)",
                    "cloud-object-storage", 1_767_225_600_000,
                ])
            }
        }
        let elapsed = now() - start
        lastWrittenBytes = Memory.writtenBytes() - bytes
        return elapsed
    }

    // MARK: KeyRelay

    static let context = RequestContext(instanceID: "bench-instance", principal: "bench")

    /// The lifecycle mix (create, rotate, disable, enable, repeated), from `callers` concurrent callers each on its
    /// own keys. The manual clock moves 1 h 1 s before every operation, so that every rule (one rotation per hour,
    /// enable 30 s after disable) accepts it.
    func lifecycle(path: String, callers: Int) async throws -> (Double, GroupCommitStatistics) {
        let clock = ManualClock()
        let store = try SQLiteStore(.file(path))
        defer { try? store.close() }
        let engine = try await KeyRelayEngine(storage: store, masterKey: .generate(), clock: clock, ids: RandomIdentifiers())
        var before = GroupCommitStatistics()
        let (rate, _) = try await lifecycle(engines: [engine], clock: clock, callers: callers) { before = store.groupCommitStatistics }
        var statistics = store.groupCommitStatistics
        statistics.batches -= before.batches
        statistics.commands -= before.commands
        return (rate, statistics)
    }

    /// The lifecycle mix on any store: `callers` concurrent callers, caller `i` on `engines[i % engines.count]` (two
    /// engines on one PostgreSQL database are two replicas in one process). Every engine is warmed up first (8
    /// operations each), then `started` runs, then the measurement: the rate and the operations measured. Sets ``lastCPUMicrosecondsPerOp`` and
    /// ``lastWrittenBytesPerCommit`` (this process's writes to storage per operation).
    func lifecycle(engines: [KeyRelayEngine], clock: ManualClock, callers: Int,
                   started: () -> Void = {}) async throws -> (rate: Double, operations: Int) {
        precondition(!engines.isEmpty)
        let context = Self.context
        @Sendable func cycle(_ engine: KeyRelayEngine, _ keyID: inout String?, _ step: Int, _ caller: Int) async throws {
            clock.advance(by: 3601)
            switch step % 4 {
            case 0: keyID = try await engine.createKey(KeySpec(name: "bench-\(caller)-\(step)"), context: context).id
            case 1: try await engine.rotate(keyID!, context: context)
            case 2: try await engine.disable(keyID!, context: context)
            default: try await engine.enable(keyID!, context: context)
            }
        }
        // Warm up (statement caches, allocator).
        for (index, engine) in engines.enumerated() {
            var warm: String?
            for step in 0..<8 { try await cycle(engine, &warm, step, -1 - index) }
        }
        started()
        let bytes = Memory.writtenBytes()
        let cpu = LoadGenerator.processCPUSeconds()
        let seconds = options.throughputSeconds
        let start = now()
        let deadline = start + seconds
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for caller in 0..<callers {
                let engine = engines[caller % engines.count]
                group.addTask {
                    var keyID: String?
                    var step = 0
                    // Finish whole cycles so that every key ends enabled.
                    while step % 4 != 0 || now() < deadline {
                        try await cycle(engine, &keyID, step, caller)
                        step += 1
                    }
                    return step
                }
            }
            return try await group.reduce(0, +)
        }
        let elapsed = now() - start
        lastCPUMicrosecondsPerOp = (LoadGenerator.processCPUSeconds() - cpu) / Double(max(total, 1)) * 1e6
        lastWrittenBytesPerCommit = (Memory.writtenBytes() - bytes) / Double(max(total, 1))
        return (Double(total) / elapsed, total)
    }

    /// An accepted sync on a key with `registrations` registrations, until all its notifications are written.
    func syncFanout(path: String, registrations: Int) async throws -> Double {
        let clock = ManualClock()
        let store = try SQLiteStore(.file(path))
        defer { try? store.close() }
        let engine = try await KeyRelayEngine(storage: store, masterKey: .generate(), clock: clock, ids: RandomIdentifiers())
        let key = try await engine.createKey(KeySpec(name: "fanout-key"), context: Self.context)
        try await BulkLoad.registrations(store: store, key: key, count: registrations)
        // The bulk load's pages go to the database file now, not in the measured sync's checkpoint: the raw insert
        // it is compared with starts from an empty database too.
        let beforeCheckpoint = Memory.writtenBytes()
        try store.checkpoint()
        lastCheckpointBytes = Memory.writtenBytes() - beforeCheckpoint
        clock.advance(by: 7200)
        let bytes = Memory.writtenBytes()
        let start = now()
        let receipt = try await engine.sync(key.id, context: Self.context)
        let elapsed = now() - start
        lastWrittenBytes = Memory.writtenBytes() - bytes
        guard receipt.notifications == registrations else {
            throw BenchError("sync wrote \(receipt.notifications) notifications, expected \(registrations)")
        }
        return elapsed
    }

    /// Runs the peak-RSS measurement in a fresh copy of this executable.
    func rssChild(path: String, registrations: Int) throws -> (peak: Double, before: Double, seconds: Double, reset: Bool) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = ["--rss-child", path, "--registrations", "\(registrations)"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let peak = (object["peak_rss_mb"] as? NSNumber)?.doubleValue else {
            throw BenchError("the peak-RSS child failed (status \(process.terminationStatus)): \(String(decoding: data, as: UTF8.self))")
        }
        return (peak, (object["rss_before_sync_mb"] as? NSNumber)?.doubleValue ?? -1,
                (object["sync_s"] as? NSNumber)?.doubleValue ?? -1, (object["peak_reset"] as? NSNumber)?.boolValue ?? false)
    }
}

/// A figure that could be measured, or why not yet.
enum Outcome: Sendable {
    case measured(Double)
    case pending(String)
}
