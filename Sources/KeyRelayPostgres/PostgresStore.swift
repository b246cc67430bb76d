import Foundation
import KeyRelayCore
import KeyRelayStore
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// KeyRelay's PostgreSQL backend of the store port, for several `serve` replicas on one database (postgres-nio).
///
/// ## The bridge from a synchronous port to an asynchronous driver
///
/// The port's closures are synchronous (`(any StorageTransaction) throws -> T`), as GRDB's are: a command reads and
/// writes in one stretch of ordinary code, with no suspension point where another task could interleave. postgres-nio
/// is asynchronous. The store bridges them without pretending: each `write` or `read` leases one connection from
/// postgres-nio's own pool (`PostgresClient`, at most ``Configuration/maximumConnections``), then runs the closure on
/// a thread of a dedicated `NIOThreadPool` (as many threads as connections, never an event loop). Every statement the
/// closure issues is sent with the EventLoopFuture API and waited for on that thread (`wait()`, which is legal off the
/// event loops and only blocks that thread). A closure therefore holds one connection and one pool thread for its
/// duration and nothing else; the event loops stay free. An asynchronous port is future work.
///
/// ## Transactions
///
/// - `write`: `BEGIN` (READ COMMITTED) … `pg_notify('keyrelay_commits', …)` … `COMMIT`; if the closure throws, the
///   transaction is rolled back and the caller gets the closure's own error. A deadlock (`40P01`) or serialization
///   failure (`40001`) between replicas rolls back and runs the closure again, at most five times.
/// - Round trips: `BEGIN`, the port's writes that return nothing (`insertKey`, `updateKey`, `insertVersion`,
///   `upsertRegistration`, `recordDelivery`, …) and `COMMIT` are sent without the pool thread waiting for each
///   (``PostgresSession``): the thread waits only where the closure reads an answer (a key, an event's sequence, a
///   fan-out's count) and for `COMMIT`. A failure among the statements sent is reported at the next wait, before the
///   closure's own error, and a check on an answer (`updateKey` must change one row) is settled before `COMMIT` is
///   sent. `appendEvent` is one statement with the event-sequence lock and this transaction's `pg_notify`; a write
///   without an event notifies just before `COMMIT`. The writes to a key's rows the transaction holds (the key's
///   insert or update, its new version) ride on the event's statement as data-modifying CTEs, and create's
///   `ensureInstance` on its policies' read (PostgresSession, "Writes carried by the next statement"): postgres-nio
///   runs one statement at a time, so each statement sent is a round trip even when the thread does not wait. A
///   lifecycle command (create, rotate, disable, enable) is 4 statements and 3 waits (5 and 4 when the key has
///   registrations to fan out to), where it was 8–9 statements, each waited for, and then 6–7.
/// - `read`: `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`: one snapshot for the whole closure.
///
/// ## Replicas
///
/// - Inside a write, reading a key (`key(id:instanceID:)`, and the due-key lists the time-driven work walks) takes
///   `SELECT … FOR UPDATE OF k` on its row: two replicas acting on one key serialize, and the second one reads the
///   first one's committed row (READ COMMITTED re-reads the latest version once the lock is granted), so a sync
///   accepted on one replica is refused on the other by the engine's cooldown rule.
/// - Event sequences: a `BIGSERIAL` value is taken before its transaction commits, so with free allocation a reader
///   tailing `events(after:)` could pass sequence 10 (committed) while 9 (taken earlier by a slower transaction) is
///   still to commit, and never see 9. `appendEvent` therefore takes a transaction-scoped advisory lock before it
///   takes a sequence: transactions that append events commit in sequence order (the lock is released after the
///   commit is visible), so every snapshot holds a prefix of the sequence. A snapshot-xmin filter alone
///   (`seq`-ordered rows of transactions older than `pg_snapshot_xmin`) does not give that with a sequence cursor: a
///   transaction can take its xid before another's and its sequence after it.
/// - Claims: `claimDueNotifications` takes due rows with `FOR UPDATE SKIP LOCKED` under a lease
///   (`notifications.claimed_until`), so several dispatchers share the outbox without delivering a row twice at once.
/// - ``commits`` is signalled after each local commit and on every `NOTIFY keyrelay_commits` from another process
///   (one dedicated LISTEN connection). Where LISTEN is not available (a transaction-mode pooler, a lost
///   connection), the store falls back to its own commits, logs it at debug and tries again later (1 s doubling to
///   30 s): the dispatcher and the event stream poll as well.
///
/// Online backup is not offered (``KeyRelayStorage/backup(to:)`` says so): use `pg_dump`, which takes a consistent
/// snapshot of a live database.
public final class PostgresStore: KeyRelayStorage {
    public let configuration: Configuration
    /// Signalled after each local commit and on each other process's `NOTIFY keyrelay_commits`.
    public let commits = CommitFeed()

    let client: PostgresClient
    let threadPool: NIOThreadPool
    let logger: Logger
    /// This store's name on the notification channel: its own notifications are not signalled twice.
    let origin = UUID().uuidString
    let ordersEventSequences: Bool
    private let background: Task<Void, Never>
    private let listening: Task<Void, Never>

    /// The channel every write notifies before it commits.
    static let commitChannel = "keyrelay_commits"

    /// Connects, migrates the database (see ``migrations``) and starts listening for other processes' commits.
    /// - Throws: ``PostgresStoreError`` when the server cannot be reached or refuses the credentials (naming the
    ///   server, never the password); ``StoreError/newerSchema(unknown:)`` for a database a newer KeyRelay migrated.
    public convenience init(_ configuration: Configuration, logger: Logger = Logger(label: "keyrelay.postgres")) async throws {
        try await self.init(configuration, logger: logger, ordersEventSequences: true)
    }

    /// `ordersEventSequences: false` leaves out `appendEvent`'s advisory lock: only for the test that shows the tail
    /// check catching a store without it.
    package init(_ configuration: Configuration, logger: Logger, ordersEventSequences: Bool) async throws {
        self.configuration = configuration
        self.logger = logger
        self.ordersEventSequences = ordersEventSequences
        // A first connection of its own: its failure is reported at once and clearly (the pool would retry in the
        // background), it migrates the database, and it then stays open to LISTEN.
        let first: PostgresConnection
        do {
            first = try await PostgresConnection.connect(on: MultiThreadedEventLoopGroup.singleton.next(),
                                                         configuration: try configuration.connectionConfiguration(),
                                                         id: 0, logger: logger)
        } catch {
            let cause = PostgresStoreError(error)
            throw PostgresStoreError(sqlState: cause.sqlState,
                                     message: "cannot connect to \(configuration): \(cause.message)")
        }
        let pool = NIOThreadPool(numberOfThreads: max(1, configuration.maximumConnections))
        pool.start()
        do {
            try await pool.runIfActive { [logger] in
                try Self.migrate(PostgresSession(connection: first, logger: logger))
            }
        } catch {
            try? await first.close()
            try? await pool.shutdownGracefully()
            throw error
        }
        threadPool = pool
        let client = PostgresClient(configuration: configuration.clientConfiguration(), backgroundLogger: logger)
        self.client = client
        background = Task { await client.run() }
        // The store is returned once LISTEN is in place (or has failed): a commit made elsewhere after the store
        // opened reaches its feed.
        let (ready, announceReady) = AsyncStream.makeStream(of: Void.self)
        listening = Task { [commits, origin, logger] in
            await Self.listen(first: first, configuration: configuration, origin: origin, commits: commits, logger: logger,
                              ready: announceReady)
        }
        for await _ in ready { break }
    }

    /// Closes the pool, the listening connection and the thread pool. The store must not be used afterwards.
    public func close() async {
        listening.cancel()
        background.cancel()
        await listening.value
        await background.value
        try? await threadPool.shutdownGracefully()
    }

    deinit {
        listening.cancel()
        background.cancel()
        threadPool.shutdownGracefully { _ in }
    }

    public func write<T: Sendable>(_ command: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T {
        let (logger, origin, ordered) = (logger, origin, ordersEventSequences)
        let value = try await leased { connection in
            let session = PostgresSession(connection: connection, logger: logger)
            var attempt = 1
            while true {
                // BEGIN, the writes whose answers the closure does not need, pg_notify and COMMIT are sent without
                // waiting (PostgresSession): the thread waits for the answers the closure reads, and for COMMIT.
                try session.send("BEGIN")
                session.beginTransaction()
                do {
                    let value = try command(PostgresTransaction(session: session, writing: true, ordersEventSequences: ordered,
                                                                origin: origin))
                    // appendEvent notifies in its own statement; a write without an event notifies here.
                    if !session.notified { try session.send("SELECT pg_notify(?, ?)", [Self.commitChannel, origin]) }
                    // A check on an answer (an UPDATE that must change one row) runs before COMMIT is sent.
                    try session.settleChecks()
                    try session.send("COMMIT", check: Self.committed)
                    try session.settle()
                    return value
                } catch {
                    // A statement sent and not yet waited for that failed is the cause (it ran before the closure's
                    // own refusal would have, on SQLite).
                    var failure = error
                    do { try session.settle() } catch let sent { failure = sent }
                    session.abandon()
                    _ = try? session.execute("ROLLBACK")
                    if let failure = failure as? PostgresStoreError, failure.isRetryable, attempt < 5 {
                        attempt += 1
                        continue
                    }
                    throw failure
                }
            }
        }
        commits.signal()
        return value
    }

    /// `COMMIT` of a transaction PostgreSQL had already failed answers `ROLLBACK`, not an error: it is one here (the
    /// statement that failed is reported before this check runs; this is the last line of defence).
    static func committed(_ answer: PostgresQueryResult) throws {
        guard answer.metadata.command == "COMMIT" else {
            throw PostgresStoreError(sqlState: nil, message: "the transaction was rolled back at COMMIT (\(answer.metadata.command))")
        }
    }

    public func read<T: Sendable>(_ query: @escaping @Sendable (any StorageReader) throws -> T) async throws -> T {
        let (logger, origin) = (logger, origin)
        return try await leased { connection in
            let session = PostgresSession(connection: connection, logger: logger)
            try session.send("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            do {
                let value = try query(PostgresTransaction(session: session, writing: false, ordersEventSequences: true, origin: origin))
                try session.send("COMMIT")
                try session.settle()
                return value
            } catch {
                session.abandon()
                _ = try? session.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// Runs one statement outside the port, in its own transaction (tests: recording a migration from the future,
    /// corrupting a row on purpose).
    func execute(_ sql: String, _ arguments: [String] = []) async throws {
        let logger = logger
        try await leased { connection in
            _ = try PostgresSession(connection: connection, logger: logger).execute(sql, arguments.map { $0 })
        }
    }

    /// Runs `body` on a pool thread with a leased connection. An error of the pool itself (no connection could be
    /// made, the store is closed) is a ``PostgresStoreError`` naming the server; `body`'s own errors pass unchanged
    /// (a command's refusal reaches its caller as it was thrown).
    private func leased<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        let started = Mutex(false)
        do {
            return try await client.withConnection { [threadPool] connection in
                started.withLock { $0 = true }
                return try await threadPool.runIfActive { try body(connection) }
            }
        } catch {
            guard !started.withLock({ $0 }) else { throw error }
            throw PostgresStoreError(sqlState: nil, message: "no connection to \(configuration): \(PostgresStoreError(error).message)")
        }
    }

    /// Signals `commits` for every notification of another store on `keyrelay_commits`, until cancelled. A lost
    /// connection is replaced (after 1 s, doubling to 30 s while the server cannot be reached), and the feed is
    /// signalled once on each new LISTEN, since commits made while nobody listened were not announced to this store.
    private static func listen(first: PostgresConnection, configuration: Configuration, origin: String, commits: CommitFeed,
                               logger: Logger, ready: AsyncStream<Void>.Continuation) async {
        defer { ready.finish() }
        var connection: PostgresConnection? = first
        var delay = Duration.seconds(1)
        while !Task.isCancelled {
            if connection == nil {
                connection = try? await PostgresConnection.connect(on: MultiThreadedEventLoopGroup.singleton.next(),
                                                                   configuration: try configuration.connectionConfiguration(),
                                                                   id: 0, logger: logger)
            }
            guard let listening = connection else {
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(30))
                continue
            }
            do {
                try await listening.listen(on: commitChannel) { notifications in
                    ready.finish()
                    if listening !== first { commits.signal() }
                    delay = .seconds(1)
                    for try await notification in notifications where notification.payload != origin {
                        commits.signal()
                    }
                }
            } catch {
                ready.finish()
                if !Task.isCancelled {
                    logger.debug("LISTEN keyrelay_commits failed; commits of other processes are seen by polling until it is back",
                                 metadata: ["error": "\(PostgresStoreError(error))"])
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(30))
                }
            }
            try? await listening.close()
            connection = nil
        }
        try? await connection?.close()
    }
}
