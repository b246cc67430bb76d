import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization
import Testing
@testable import KeyRelayPostgres

/// A pool thread's session on a connection that has closed. postgres-nio writes a statement without a write promise,
/// so one written to a closed channel is never answered: a plain `wait()` blocked the pool thread, and kept its
/// connection leased, forever (a suite hung on it when a store was closed under running writers).
@Suite("PostgreSQL session", .enabled(if: hasServer, serverMissing))
struct PostgresSessionTests {
    let logger = Logger(label: "keyrelay.postgres.session-tests")

    @Test func aStatementForAClosedConnectionIsRefusedNotLeftUnanswered() async throws {
        let connection = try await closedConnection()
        let logger = logger
        let outcome = try await onAThread(within: .seconds(30)) {
            try PostgresSession(connection: connection, logger: logger).execute("SELECT 1")
        }
        #expect(throws: PostgresStoreError.self) { try outcome.get() }
    }

    @Test func aWaitForAnAnswerThatCannotComeEndsOnceTheConnectionIsClosed() async throws {
        let connection = try await closedConnection()
        // The statement's future as postgres-nio leaves it when its write failed unseen: never completed.
        let unanswered = connection.eventLoop.makePromise(of: PostgresQueryResult.self)
        defer { unanswered.fail(CancellationError()) }
        let logger = logger
        let outcome = try await onAThread(within: .seconds(30)) {
            try PostgresSession(connection: connection, logger: logger).answer(of: unanswered.futureResult)
        }
        #expect(throws: PostgresStoreError.self) { try outcome.get() }
    }

    private func closedConnection() async throws -> PostgresConnection {
        let server = try PostgresScratchDatabase.requireServer()
        let connection = try await PostgresConnection.connect(on: MultiThreadedEventLoopGroup.singleton.next(),
                                                              configuration: try server.connectionConfiguration(),
                                                              id: 1, logger: logger)
        try await connection.close()
        return connection
    }

    /// Runs a blocking call on a thread of its own, as the store's pool does, and returns how it ended; fails the test
    /// (instead of hanging it) when it has not ended within `bound`.
    private func onAThread<T: Sendable>(within bound: Duration, _ call: @escaping @Sendable () throws -> T) async throws -> Result<T, any Error> {
        let ended = Mutex<Result<T, any Error>?>(nil)
        let thread = Thread {
            let outcome = Result { try call() }  // outside the lock: the call may block, the lock must not
            ended.withLock { $0 = outcome }
        }
        thread.start()
        let deadline = ContinuousClock.now + bound
        while ContinuousClock.now < deadline {
            if let outcome = ended.withLock({ $0 }) { return outcome }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("the call had not ended after \(bound): its thread is blocked")
        throw CancellationError()
    }
}
