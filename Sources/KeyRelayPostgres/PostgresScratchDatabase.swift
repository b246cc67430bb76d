import Foundation
import Logging
import NIOPosix
import PostgresNIO

/// Fresh, empty databases on a test server, for any test target of this package (`package`: not shipped API).
///
/// The server is the one `KEYRELAY_TEST_POSTGRES_URL` names, e.g. `postgres://keyrelay@127.0.0.1:55432/postgres`
/// (any database its user can connect to; that user needs CREATEDB). Each ``create()`` makes a database
/// `kr_<random>` there; ``drop(_:)`` removes it. Tests that need the server are skipped when the variable is unset:
///
/// ```swift
/// @Suite(.enabled(if: PostgresScratchDatabase.server != nil, "set KEYRELAY_TEST_POSTGRES_URL to run these"))
/// ```
package enum PostgresScratchDatabase {
    /// The environment variable naming the test server.
    package static let environmentVariable = "KEYRELAY_TEST_POSTGRES_URL"

    /// The test server, or nil when the variable is unset (or empty).
    package static var server: PostgresStore.Configuration? {
        guard let url = ProcessInfo.processInfo.environment[environmentVariable], !url.isEmpty else { return nil }
        return try? PostgresStore.Configuration(url: url)
    }

    /// The server as configured, or an error saying that the variable is unset or malformed.
    package static func requireServer() throws -> PostgresStore.Configuration {
        guard let url = ProcessInfo.processInfo.environment[environmentVariable], !url.isEmpty else {
            throw PostgresStoreError(sqlState: nil, message: "\(environmentVariable) is not set: no PostgreSQL server to test on")
        }
        return try PostgresStore.Configuration(url: url)
    }

    /// Creates an empty database on the test server and returns its configuration.
    /// - Parameter icuLocale: the database's locale, by ICU (e.g. `en-US`, whose collation does not sort by bytes), for
    ///   tests that must not depend on the server's default; nil: the server's default.
    package static func create(icuLocale: ICULocale? = nil) async throws -> PostgresStore.Configuration {
        let server = try requireServer()
        let name = "kr_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(20)
        // The name is made here of [a-z0-9_] and the locale is one of a fixed set: both can be spliced into the
        // statement (CREATE DATABASE takes no parameter).
        let locale = icuLocale.map { " TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '\($0.rawValue)'" } ?? ""
        try await onServer(server) { connection in
            _ = try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)\(locale)"), logger: logger)
        }
        return server.database(String(name))
    }

    /// Drops a database ``create()`` made, closing any connection still open to it.
    package static func drop(_ database: PostgresStore.Configuration) async throws {
        let server = try requireServer()
        precondition(database.database.hasPrefix("kr_"), "only scratch databases are dropped")
        try await onServer(server) { connection in
            _ = try await connection.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(database.database) WITH (FORCE)"),
                                           logger: logger)
        }
    }

    /// Gives a fresh database the schema an older KeyRelay left (the migrations up to `last`, recorded as applied),
    /// then runs `statements` on it (rows that KeyRelay wrote): a store opened on it next applies the later migrations
    /// to those rows, as one does at start on an existing database.
    package static func migrate(_ database: PostgresStore.Configuration, through last: String, then statements: [String]) async throws {
        guard PostgresStore.migrations.contains(where: { $0.identifier == last }) else {
            throw PostgresStoreError(sqlState: nil, message: "no migration '\(last)'")
        }
        let connection = try await PostgresConnection.connect(on: MultiThreadedEventLoopGroup.singleton.next(),
                                                              configuration: try database.connectionConfiguration(),
                                                              id: 0, logger: logger)
        do {
            // PostgresSession waits on its thread: a pool thread, never an event loop.
            try await NIOThreadPool.singleton.runIfActive {
                let session = PostgresSession(connection: connection, logger: logger)
                try PostgresStore.migrate(session, through: last)
                for statement in statements { _ = try session.execute(statement) }
            }
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }

    /// ICU locales a scratch database can have.
    package enum ICULocale: String, Sendable {
        case englishUS = "en-US"
    }

    private static let logger = Logger(label: "keyrelay.postgres.scratch")

    private static func onServer(_ server: PostgresStore.Configuration,
                                 _ body: (PostgresConnection) async throws -> Void) async throws {
        let connection = try await PostgresConnection.connect(on: MultiThreadedEventLoopGroup.singleton.next(),
                                                              configuration: try server.connectionConfiguration(),
                                                              id: 0, logger: logger)
        do {
            try await body(connection)
        } catch {
            try? await connection.close()
            throw PostgresStoreError(error)
        }
        try await connection.close()
    }
}
