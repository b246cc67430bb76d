import Foundation
import GRDB
import Metrics
import Synchronization

/// How group commit has batched the writes so far (for benchmarks and diagnostics, never for correctness).
public struct GroupCommitStatistics: Sendable, Equatable {
    /// Transactions run (each ends in one COMMIT or, when nothing succeeded, one ROLLBACK).
    public var batches = 0
    /// Commands run, successful or not.
    public var commands = 0
    /// Commands that threw (and were rolled back alone) or were lost with a failed commit.
    public var failedCommands = 0
    /// The largest number of commands a single batch held.
    public var largestBatch = 0
    /// The size of the latest batch.
    public var lastBatch = 0

    public init() {}

    /// Average commands per batch (1 when every caller waited alone).
    public var meanBatch: Double { batches == 0 ? 0 : Double(commands) / Double(batches) }
}

/// Group commit over one SQLite writer: concurrent commands share one durable commit while each stays
/// all-or-nothing.
///
/// A lone caller's command runs at once, on the submitting thread (no hand-off to the writer queue and back:
/// `drainInPlace`). Every command submitted while the writer is busy waits in a queue. As soon as
/// the writer is free, the committer takes *everything* that is queued (no timer, no waiting for more), runs the
/// commands one after the other inside ONE `BEGIN IMMEDIATE` transaction, each inside its own `SAVEPOINT`, and
/// `COMMIT`s once. Only after that commit returns are the callers resumed, so nobody is told "done" before the
/// commit that holds their change is durable (with `PRAGMA synchronous = FULL`, the commit's fsync).
///
/// - A command that throws (a domain refusal such as `KeyRelayError`, or an SQLite error) is rolled back to its
///   savepoint alone; its caller gets its error and the other commands of the batch are unaffected.
/// - If SQLite itself aborts the transaction (disk full, I/O error: the transaction is gone), the commands that
///   ran before in that batch are lost with it and their callers get that error; the remaining commands run in a
///   fresh transaction.
/// - If the `COMMIT` fails, every command of the batch that had succeeded gets the commit's error (nothing of the
///   batch is in the database).
///
/// Commands run on GRDB's writer queue (a first command in place through `DispatchQueue.sync` on it, the batches
/// queued behind it asynchronously), in submission order within a batch. It is the only path by which commands
/// write; the store's other uses of the writer (migrations on open, checkpoints, pragma reads) interleave between
/// batches.
public final class GroupCommitter: Sendable {
    /// What a test can observe of the committer, to drive batching deterministically without timing.
    enum Event: Sendable {
        /// A command was queued; the payload is the queue length after it.
        case enqueued(Int)
        /// A batch of this many commands finished (committed or failed) and its callers are about to resume.
        case batchFinished(Int)
    }

    private struct Pending: Sendable {
        /// Runs the command on the writer connection; returns how to resume its caller once committed.
        let run: @Sendable (Database) throws -> @Sendable () -> Void
        /// Resumes the caller with an error.
        let fail: @Sendable (any Error) -> Void
    }

    private struct State {
        var queue: [Pending] = []
        /// True while a drain is scheduled or running on the writer (at most one at a time).
        var draining = false
        var statistics = GroupCommitStatistics()
    }

    private let writer: any DatabaseWriter
    private let state = Mutex(State())
    private let observer: (@Sendable (Event) -> Void)?

    /// A committer over `writer`. All group-committed writes of a database must go through the same committer.
    public convenience init(writer: any DatabaseWriter) {
        self.init(writer: writer, observer: nil)
    }

    init(writer: any DatabaseWriter, observer: (@Sendable (Event) -> Void)?) {
        self.writer = writer
        self.observer = observer
    }

    /// Batching so far.
    public var statistics: GroupCommitStatistics { state.withLock { $0.statistics } }

    /// Runs `command` as one all-or-nothing unit inside a shared transaction and returns its value once that
    /// transaction is durably committed.
    ///
    /// `command` must not open, commit or roll back transactions itself, and must not escape the `Database`.
    /// - Throws: the command's own error (its changes rolled back, the batch unaffected), or the error of the
    ///   transaction that carried it (`BEGIN`/`COMMIT` failure, SQLite aborting the transaction).
    public func submit<T: Sendable>(_ command: @escaping @Sendable (Database) throws -> T) async throws -> T {
        var ranInPlace = false
        let outcome: Result<T, any Error>
        do {
            outcome = .success(try await enqueue(command, ranInPlace: &ranInPlace))
        } catch {
            outcome = .failure(error)
        }
        // A command that ran in place never suspended its task: a task writing in a loop would hold its thread
        // for the whole loop, and on a busy cooperative pool the other tasks would wait for all of it. Yielding
        // gives them their turn between commands, as the suspension on the writer used to.
        if ranInPlace { await Task.yield() }
        return try outcome.get()
    }

    private func enqueue<T: Sendable>(_ command: @escaping @Sendable (Database) throws -> T,
                                      ranInPlace: inout Bool) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let pending = Pending(
                run: { db in
                    let value = try command(db)
                    return { continuation.resume(returning: value) }
                },
                fail: { continuation.resume(throwing: $0) })
            let (start, length) = state.withLock { state -> (Start?, Int) in
                state.queue.append(pending)
                if state.draining { return (nil, state.queue.count) }
                state.draining = true
                return (state.statistics.lastBatch <= 1 ? .inPlace : .onWriterQueue, state.queue.count)
            }
            observer?(.enqueued(length))
            switch start {
            case .inPlace?:
                // Its batch holds this command (and whatever was queued meanwhile), so `continuation` is resumed
                // before this closure returns and the `await` completes without suspending the task.
                ranInPlace = true
                drainInPlace()
            case .onWriterQueue?:
                scheduleDrain()
            case nil:
                break
            }
        }
    }

    /// How a command that found the writer idle starts its batch.
    ///
    /// In place when the previous batch held one command (or none): the caller is alone, and a hand-off would only
    /// cost it two thread wake-ups. After a batch of several commands, on the writer queue as before: the callers
    /// just resumed by that batch are about to submit again, and the moment the writer thread takes to start lets
    /// them join one batch, where a first caller draining in place would commit alone and split them into two
    /// batches, two commits instead of one.
    private enum Start { case inPlace, onWriterQueue }

    /// Runs a batch on the calling thread, for a command that found the writer idle (issue #16).
    ///
    /// Handing a lone command to GRDB's writer queue (`asyncWriteWithoutTransaction`) and its result back
    /// (`continuation.resume` from the writer thread) cost two thread wake-ups and two sleeps per command, the
    /// largest share of a single caller's CPU (futex and scheduler time in the profile). GRDB's synchronous
    /// `writeWithoutTransaction` is `DispatchQueue.sync` on the same serial writer queue, which runs the closure on the
    /// calling thread: the same connection, the same serialization with the writer's other users (migrations,
    /// checkpoints, pragma reads, which it waits for if one is running), the same `drainOnce`, hence the same
    /// transaction, savepoint and durability rules. Only a command that finds the writer idle after a batch of at most
    /// one drains in place (``Start``): the commands that arrive while it runs find `draining` set and queue, and
    /// `drainOnce` hands them to the writer queue as their own batch (group commit as before), so the submitting
    /// task is never held for anybody else's batch.
    ///
    /// It blocks the submitting thread (from the engine, a cooperative-pool thread, never the engine actor: `submit`
    /// is nonisolated) for one batch: the commands are synchronous closures, and what the batch can wait on is the
    /// writer queue (served by Dispatch's own threads), SQLite's busy timeout and the disk, none of which needs the
    /// cooperative pool; the in-place reads (`SQLiteStore.read`) rest on the same reasoning.
    private func drainInPlace() {
        Self.writeInPlace(writer) { db in self.drainOnce(db) }
    }

    /// GRDB's synchronous write (a synchronous function, so that the compiler cannot pick the `async` overload).
    private static func writeInPlace(_ writer: any DatabaseWriter, _ body: (Database) -> Void) {
        writer.writeWithoutTransaction(body)
    }

    private func scheduleDrain() {
        writer.asyncWriteWithoutTransaction { db in self.drainOnce(db) }
    }

    /// Runs one batch: whatever is queued now. Schedules the next batch (rather than looping) so that other users
    /// of the writer get their turn between batches.
    private func drainOnce(_ db: Database) {
        let batch = state.withLock { state -> [Pending] in
            let batch = state.queue
            state.queue.removeAll(keepingCapacity: true)
            return batch
        }
        let (resumptions, failures) = batch.isEmpty ? ([], 0) : run(batch, db)
        let more = state.withLock { state -> Bool in
            if !batch.isEmpty {
                state.statistics.batches += 1
                state.statistics.commands += batch.count
                state.statistics.failedCommands += failures
                state.statistics.largestBatch = max(state.statistics.largestBatch, batch.count)
                state.statistics.lastBatch = batch.count
            }
            if state.queue.isEmpty {
                state.draining = false
                return false
            }
            return true
        }
        // Whatever metrics backend the process bootstrapped (a no-op by default) sees every batch's size.
        if !batch.isEmpty { Recorder(label: "keyrelay_group_commit_batch_size").record(batch.count) }
        observer?(.batchFinished(batch.count))
        // The batch is committed (or failed as a whole): now, and only now, its callers learn their outcome.
        for resume in resumptions { resume() }
        if more { scheduleDrain() }
    }

    /// Runs `batch` in one transaction (a fresh one after SQLite aborts one), each command in its own savepoint.
    /// Returns the resumption of every caller, in submission order, and how many failed.
    ///
    /// BEGIN, SAVEPOINT, RELEASE and COMMIT are the connection's cached prepared statements (issue #16): GRDB's
    /// `beginTransaction()`/`commit()` and `execute(sql:)` compile and authorize the statement text on every call,
    /// two to four compilations per command. A cached statement keeps the transaction effect GRDB recorded when it
    /// was compiled, so GRDB's transaction tracking is the same. ROLLBACK (the error path) stays GRDB's own.
    private func run(_ batch: [Pending], _ db: Database) -> ([@Sendable () -> Void], Int) {
        var outcomes: [@Sendable () -> Void] = []
        outcomes.reserveCapacity(batch.count)
        var failures = 0
        // Commands that succeeded inside the open transaction, not yet committed.
        var uncommitted: [(pending: Pending, resume: @Sendable () -> Void)] = []
        var open = false
        // A lone command needs no savepoint: on error the whole transaction (its own) is rolled back.
        let savepoints = batch.count > 1

        func failUncommitted(_ error: any Error) {
            for entry in uncommitted { outcomes.append { entry.pending.fail(error) } }
            failures += uncommitted.count
            uncommitted.removeAll()
        }

        for pending in batch {
            if !open {
                do {
                    try db.cachedStatement(sql: "BEGIN IMMEDIATE TRANSACTION").execute()
                    open = true
                } catch {
                    outcomes.append { pending.fail(error) }
                    failures += 1
                    continue
                }
            }
            do {
                if savepoints { try db.cachedStatement(sql: "SAVEPOINT keyrelay_command").execute() }
                let resume = try pending.run(db)
                if savepoints { try db.cachedStatement(sql: "RELEASE SAVEPOINT keyrelay_command").execute() }
                uncommitted.append((pending, resume))
            } catch {
                outcomes.append { pending.fail(error) }
                failures += 1
                if !db.isInsideTransaction {
                    // SQLite rolled the whole transaction back: what ran before in it is gone.
                    failUncommitted(error)
                    open = false
                } else if !savepoints {
                    try? db.rollback()
                    open = false
                } else {
                    do {
                        try db.execute(sql: "ROLLBACK TO SAVEPOINT keyrelay_command")
                        try db.execute(sql: "RELEASE SAVEPOINT keyrelay_command")
                    } catch {
                        // Cannot isolate this command: give the whole transaction up rather than commit a part of it.
                        try? db.rollback()
                        failUncommitted(error)
                        open = false
                    }
                }
            }
        }
        if open {
            if uncommitted.isEmpty {
                try? db.rollback()
            } else {
                do {
                    try db.cachedStatement(sql: "COMMIT TRANSACTION").execute()
                    for entry in uncommitted { outcomes.append(entry.resume) }
                    uncommitted.removeAll()
                } catch {
                    try? db.rollback()
                    failUncommitted(error)
                }
            }
        }
        return (outcomes, failures)
    }
}
