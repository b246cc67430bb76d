import Foundation
import GRDB
import KeyRelayCore
@testable import KeyRelaySQLite
import KeyRelayStore
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Group commit (issue #6): correctness only, never timing.
@Suite("Group commit")
struct GroupCommitTests {
    /// A fresh file database directory, removed by the caller.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("keyrelay-gc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Holds the writer inside a first batch until released, so that the commands submitted meanwhile are all
    /// queued and must form the next batch together (deterministic batching, no timing).
    ///
    /// The first command finds the writer idle and runs in place, on its submitting thread: its task runs on
    /// ``executor``, a thread of its own, so that waiting for `release` blocks that thread and not one of the
    /// cooperative pool the other tasks need (a pool of one thread on a one-core machine).
    final class Gate: Sendable {
        let started = AsyncStream<Void>.makeStream()
        let release = DispatchSemaphore(value: 0)
        let executor = DedicatedExecutor()
    }

    /// A task executor on a serial Dispatch queue of its own (not the cooperative pool).
    final class DedicatedExecutor: TaskExecutor {
        let queue = DispatchQueue(label: "keyrelay.tests.group-commit")
        /// The thread running one of this executor's jobs now, if any.
        private let running = Mutex<pthread_t?>(nil)

        func enqueue(_ job: consuming ExecutorJob) {
            let job = UnownedJob(job)
            queue.async {
                self.running.withLock { $0 = pthread_self() }
                job.runSynchronously(on: self.asUnownedTaskExecutor())
                self.running.withLock { $0 = nil }
            }
        }

        /// Whether the calling thread is inside one of this executor's jobs (a task's run up to its next suspension).
        var isCurrent: Bool { running.withLock { $0.map { pthread_equal($0, pthread_self()) != 0 } ?? false } }
    }

    @Test("A command that finds the writer idle runs on its submitting thread, and is committed when it returns")
    func loneCommandRunsInPlace() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteStore(.file(directory.appendingPathComponent("db.sqlite").path))
        let committer = GroupCommitter(writer: store.writer)
        let executor = DedicatedExecutor()
        let inPlace = try await Task(executorPreference: executor) {
            try await committer.submit { db -> Bool in
                try SQLiteTransaction(db: db).setMeta("in-place", Data([1]))
                // Still inside the submitting task's run: it was not suspended and resumed by another thread.
                return executor.isCurrent
            }
        }.value
        #expect(inPlace, "the lone command was handed to another thread")
        // Told "done": committed, visible to a fresh read transaction of another connection.
        #expect(try await store.read { tx in try tx.meta("in-place") } == Data([1]))
        #expect(committer.statistics.batches == 1)
        #expect(committer.statistics.commands == 1)
        try store.close()
    }

    static func refusal(_ i: Int) -> KeyRelayError {
        KeyRelayError(.keyNotFound, "Key does not exist: command \(i) refused on purpose", operation: "Key could not be retrieved")
    }

    @Test("64 queued commands share one commit; the failing one alone is rolled back and its caller gets its error")
    func failingCommandAmongSixtyFour() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteStore(.file(directory.appendingPathComponent("db.sqlite").path))
        let events = AsyncStream<GroupCommitter.Event>.makeStream()
        let committer = GroupCommitter(writer: store.writer, observer: { events.continuation.yield($0) })
        let gate = Gate()
        let failing = 31

        let gateTask = Task(executorPreference: gate.executor) {
            try await committer.submit { db in
                gate.started.continuation.yield()
                gate.release.wait()
                try SQLiteTransaction(db: db).setMeta("gate", Data([1]))
            }
        }
        for await _ in gate.started.stream { break }

        let reader = store.writer
        let tasks = (0..<64).map { i in
            Task { () -> Result<Int, KeyRelayError> in
                do {
                    let value = try await committer.submit { db -> Int in
                        let tx = SQLiteTransaction(db: db)
                        try tx.setMeta("cmd-\(i)", Data("\(i)".utf8))
                        if i == failing {
                            try tx.setMeta("cmd-\(i)-second-write", Data([0]))
                            throw Self.refusal(i)
                        }
                        return i * 10
                    }
                    // Told "done": the change must already be committed, visible to a fresh read transaction.
                    let visible = try await reader.read { db in try SQLiteTransaction(db: db).meta("cmd-\(i)") }
                    #expect(visible == Data("\(i)".utf8), "command \(i) was resumed before its commit")
                    return .success(value)
                } catch let error as KeyRelayError {
                    return .failure(error)
                }
            }
        }
        for await event in events.stream {
            if case .enqueued(64) = event { break }
        }
        gate.release.signal()
        try await gateTask.value

        for (i, task) in tasks.enumerated() {
            let result = try await task.value
            if i == failing {
                #expect(throws: Self.refusal(i)) { try result.get() }
            } else {
                #expect(try result.get() == i * 10)
            }
        }
        let statistics = committer.statistics
        #expect(statistics.batches == 2)
        #expect(statistics.lastBatch == 64)
        #expect(statistics.failedCommands == 1)

        // After a batch of several, the next command goes to the writer queue (callers just resumed are about to
        // submit again and should share a batch); after a batch of one, the next runs in place again.
        for expectedInPlace in [false, true] {
            let inPlace = try await Task(executorPreference: gate.executor) {
                try await committer.submit { _ in gate.executor.isCurrent }
            }.value
            #expect(inPlace == expectedInPlace)
        }

        let stored = try await store.read { tx in
            try (0..<64).map { try tx.meta("cmd-\($0)") != nil } + [try tx.meta("cmd-\(failing)-second-write") != nil]
        }
        for (i, present) in stored.prefix(64).enumerated() {
            #expect(present == (i != failing), "cmd-\(i)")
        }
        #expect(stored.last == false)
        #expect(try store.integrityCheck() == "ok")
        try store.close()
    }

    @Test("Concurrent writes through SQLiteStore.write: refusals roll back alone, every other change is there")
    func concurrentStoreWrites() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteStore(.file(directory.appendingPathComponent("db.sqlite").path))
        let results = await withTaskGroup(of: (Int, Bool).self) { group in
            for i in 0..<64 {
                group.addTask {
                    do {
                        try await store.write { tx in
                            try tx.ensureInstance("instance-\(i)", at: Date(timeIntervalSince1970: 1_700_000_000))
                            if i % 7 == 3 { throw Self.refusal(i) }
                        }
                        return (i, true)
                    } catch {
                        return (i, false)
                    }
                }
            }
            var results: [Int: Bool] = [:]
            for await (i, ok) in group { results[i] = ok }
            return results
        }
        let instances = Set(try await store.read { tx in try tx.instanceIDs() })
        for i in 0..<64 {
            #expect(results[i] == (i % 7 != 3))
            #expect(instances.contains("instance-\(i)") == (i % 7 != 3), "instance-\(i)")
        }
        #expect(store.groupCommitStatistics.commands >= 64)
        try store.close()
    }

    @Test("A batch whose COMMIT fails reports the failure to every command of the batch, and nothing of it is stored")
    func failedCommitFailsEveryone() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        let pool = try DatabasePool(path: directory.appendingPathComponent("db.sqlite").path, configuration: configuration)
        try await pool.write { db in
            try db.execute(sql: """
                CREATE TABLE parent (id INTEGER PRIMARY KEY);
                CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent(id));
                INSERT INTO parent (id) VALUES (1);
                """)
        }
        let events = AsyncStream<GroupCommitter.Event>.makeStream()
        let committer = GroupCommitter(writer: pool, observer: { events.continuation.yield($0) })
        let gate = Gate()
        let gateTask = Task(executorPreference: gate.executor) {
            try await committer.submit { db in
                gate.started.continuation.yield()
                gate.release.wait()
                try db.execute(sql: "INSERT INTO child (id, parent_id) VALUES (1000, 1)")
            }
        }
        for await _ in gate.started.stream { break }

        let tasks = (0..<8).map { i in
            Task { () -> (any Error)? in
                do {
                    try await committer.submit { db in
                        if i == 5 {
                            // Deferred until COMMIT: each statement succeeds, the commit itself fails.
                            try db.execute(sql: "PRAGMA defer_foreign_keys = ON")
                            try db.execute(sql: "INSERT INTO child (id, parent_id) VALUES (?, 999)", arguments: [i])
                        } else {
                            try db.execute(sql: "INSERT INTO child (id, parent_id) VALUES (?, 1)", arguments: [i])
                        }
                    }
                    return nil
                } catch {
                    return error
                }
            }
        }
        for await event in events.stream {
            if case .enqueued(8) = event { break }
        }
        gate.release.signal()
        try await gateTask.value

        for task in tasks {
            let error = try #require(await task.value, "a command of the failed batch was told it succeeded")
            let databaseError = try #require(error as? DatabaseError)
            #expect(databaseError.resultCode == .SQLITE_CONSTRAINT)
        }
        let children = try await pool.read { db in try Int.fetchAll(db, sql: "SELECT id FROM child ORDER BY id") }
        #expect(children == [1000])
        #expect(committer.statistics.failedCommands == 8)

        // The committer recovers: the next command commits normally.
        try await committer.submit { db in try db.execute(sql: "INSERT INTO child (id, parent_id) VALUES (2000, 1)") }
        #expect(try await pool.read { db in try Int.fetchAll(db, sql: "SELECT id FROM child ORDER BY id") } == [1000, 2000])
        try pool.close()
    }

    @Test("A lone command that throws leaves nothing behind and does not disturb the next one")
    func loneRefusal() async throws {
        let store = try SQLiteStore(.inMemory)
        await #expect(throws: Self.refusal(1)) {
            try await store.write { tx in
                try tx.setMeta("lone", Data([1]))
                throw Self.refusal(1)
            }
        }
        try await store.write { tx in try tx.setMeta("next", Data([2])) }
        let (lone, next) = try await store.read { tx in (try tx.meta("lone"), try tx.meta("next")) }
        #expect(lone == nil)
        #expect(next == Data([2]))
    }

    // MARK: Crash

    /// The shared crash-test child (`KeyRelayCrashChild`, a dependency of this test target, so always built),
    /// found next to the test runner the way Tests/KeyRelayTests/CrashTests.swift finds it.
    static func crashChild() -> URL {
        let runner = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        for candidate in [runner.deletingLastPathComponent(), Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
        where FileManager.default.fileExists(atPath: candidate.appending(path: "KeyRelayCrashChild").path) {
            return candidate.appending(path: "KeyRelayCrashChild")
        }
        return runner.deletingLastPathComponent().appending(path: "KeyRelayCrashChild")
    }

    @Test("SIGKILL while batches are in flight: every command reported committed is there after reopening, and the file is sound")
    func crashWhileBatchesInFlight() async throws {
        let child = Self.crashChild()
        try #require(FileManager.default.isExecutableFile(atPath: child.path), "build KeyRelayCrashChild first: \(child.path)")
        // The child's entry point requires a master key (its `groupcommit` mode opens the store directly and never
        // uses it): any well-formed 256-bit key.
        var environment = ProcessInfo.processInfo.environment
        environment["KEYRELAY_MASTER_KEY"] = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("crash.sqlite").path

        for round in 0..<3 {
            let process = Process()
            process.executableURL = child
            process.arguments = ["groupcommit", path, "\(round)"]
            process.environment = environment
            let output = Pipe()
            process.standardOutput = output
            try process.run()

            // Kill once enough commands have been acknowledged (a different count each round, so the kill lands at
            // different points of the batching).
            let killAfter = 150 + round * 137
            let handle = output.fileHandleForReading
            var text = ""
            var acknowledged = 0
            while acknowledged < killAfter {
                let chunk = handle.availableData
                if chunk.isEmpty { break }  // the child ended on its own: caught by the #expect below
                text += String(decoding: chunk, as: UTF8.self)
                acknowledged = text.split(separator: "\n").count(where: { $0.hasPrefix("ok ") })
            }
            #expect(process.isRunning, "the crash child exited before it was killed")
            kill(process.processIdentifier, SIGKILL)
            // Everything the child wrote before dying is still in the pipe.
            text += String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal)

            let lines = text.split(separator: "\n", omittingEmptySubsequences: true)
            // Only complete lines count: a line cut by the kill is ignored.
            let complete = text.hasSuffix("\n") ? lines[...] : lines.dropLast()
            let committed = complete.filter { $0.hasPrefix("ok ") }.map { String($0.dropFirst(3)) }
            let refused = complete.filter { $0.hasPrefix("refused ") }.map { String($0.dropFirst(8)) }
            #expect(committed.count >= killAfter)
            #expect(!refused.isEmpty)

            let store = try SQLiteStore(.file(path))
            #expect(try store.integrityCheck() == "ok")
            let (missing, leaked) = try await store.read { tx in
                (try committed.filter { try tx.meta($0) == nil }, try refused.filter { try tx.meta($0) != nil })
            }
            #expect(missing.isEmpty, "reported committed but absent after the crash: \(missing.prefix(10))")
            #expect(leaked.isEmpty, "refused but present after the crash: \(leaked.prefix(10))")
            try store.close()
        }
    }
}
