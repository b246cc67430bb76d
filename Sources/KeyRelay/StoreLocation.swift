import Foundation
internal import KeyRelayPostgres
internal import KeyRelaySQLite
internal import KeyRelayStore

/// Where an engine keeps its database, named without any backend type: an SQLite file path, a private in-memory
/// database, or a PostgreSQL database that several `serve` replicas share.
///
/// ```swift
/// let engine = try await KeyRelayEngine.open(try StoreLocation(parsing: "keyrelay.sqlite"), masterKey: masterKey)
/// let shared = try await KeyRelayEngine.open(try StoreLocation(parsing: "postgres://kms@db.internal/keyrelay"),
///                                            masterKey: masterKey)
/// ```
///
/// A PostgreSQL URL is libpq's form, `postgres://user[:password]@host[:port]/database` (or `postgresql://`), with the
/// optional query parameters `sslmode` (`disable`, `allow`, `prefer` — the default —, `require`, `verify-ca`,
/// `verify-full`), `host=/socket/directory` for a Unix-domain socket, and `pool_size` (connections, default 8). The
/// database must exist; KeyRelay creates and migrates its tables in it. ``description`` shows such a location with
/// its password replaced by `***`.
public struct StoreLocation: Sendable, Equatable, CustomStringConvertible {
    enum Kind: Sendable, Equatable {
        case file(String)
        case inMemory
        case postgres(PostgresStore.Configuration)
    }

    let kind: Kind
    /// Whether opening refuses to create the database (see ``mustExist``).
    public private(set) var requiresExisting = false

    private init(kind: Kind) { self.kind = kind }

    /// An SQLite database file (created and migrated on first open).
    public static func file(_ path: String) -> StoreLocation { StoreLocation(kind: .file(path)) }

    /// The same location, opened only if a KeyRelay database is already there: a missing file is an error naming
    /// the path instead of a new, empty database. For commands that only read (a typo in `--db` must not create
    /// a file). An in-memory location is unaffected, and so is a PostgreSQL one (KeyRelay never creates a PostgreSQL
    /// database, only its tables in one).
    public var mustExist: StoreLocation {
        var location = self
        location.requiresExisting = true
        return location
    }

    /// A private in-memory database (tests, examples): not durable, and gone with the engine.
    public static let inMemory = StoreLocation(kind: .inMemory)

    /// The SQLite file this location names, or nil for an in-memory or a PostgreSQL database (what `serve --dev`
    /// keeps a generated master key beside).
    public var filePath: String? {
        if case .file(let path) = kind { return path }
        return nil
    }

    /// A PostgreSQL database, from its URL (see the type's discussion for the form).
    /// - Throws: `KeyRelayError` (`.invalidField`) saying what is wrong with the URL; never with its password.
    public static func postgres(_ url: String) throws(KeyRelayError) -> StoreLocation {
        StoreLocation(kind: .postgres(try PostgresStore.Configuration(url: url)))
    }

    /// Reads a location as an operator writes it (a `--db` flag, an environment variable):
    /// a path, a `file://` URL, `:memory:`, or a `postgres://` / `postgresql://` URL.
    /// - Throws: `KeyRelayError` for a malformed PostgreSQL URL (naming what is wrong, never the password), for
    ///   another URL scheme, and for an empty string.
    public init(parsing text: String) throws(KeyRelayError) {
        let operation = "Database could not be opened"
        if text == ":memory:" {
            self = .inMemory
            return
        }
        guard !text.isEmpty else {
            throw KeyRelayError(.invalidField, "The database location is empty: give a file path, a file:// URL or :memory:",
                                operation: operation)
        }
        if let schemeEnd = text.range(of: "://") {
            let scheme = text[..<schemeEnd.lowerBound].lowercased()
            switch scheme {
            case "file":
                guard let url = URL(string: text), url.isFileURL, !url.path.isEmpty else {
                    throw KeyRelayError(.invalidField, "The database location '\(text)' is not a valid file:// URL", operation: operation)
                }
                self = .file(url.path)
            case "postgres", "postgresql":
                self = try .postgres(text)
            default:
                throw KeyRelayError(.invalidField, "The database location scheme '\(scheme)' is not supported: give a file path, a file:// URL, :memory: or a postgres:// URL",
                                    operation: operation)
            }
            return
        }
        self = .file(text)
    }

    public var description: String {
        switch kind {
        case .file(let path): path
        case .inMemory: ":memory:"
        case .postgres(let configuration): configuration.description
        }
    }

    /// Opens the backend this location names. The only place the engine names a backend type.
    func openStore() async throws -> any KeyRelayStorage {
        switch kind {
        case .file(let path): try SQLiteStore(.file(path), createIfMissing: !requiresExisting)
        case .inMemory: try SQLiteStore(.inMemory)
        case .postgres(let configuration): try await PostgresStore(configuration)
        }
    }
}

extension StoreLocation {
    /// The variable that chooses the backend of the package's own engine tests (`postgres`, or in memory by default).
    package static let testBackendVariable = "KEYRELAY_TEST_BACKEND"

    /// Test support for this package's suites (package-visible, not API): a database of its own for one test's
    /// engine. In memory by default; with `KEYRELAY_TEST_BACKEND=postgres` (scripts/test's second pass), a new,
    /// empty database on the server `KEYRELAY_TEST_POSTGRES_URL` names, so the engine, scenario and HTTP suites
    /// run unchanged on PostgreSQL.
    /// - Throws: when the backend is `postgres` but the server is not configured or refuses a new database, and for
    ///   any other backend name: a typo must not quietly test SQLite.
    package static func testDatabase() async throws -> StoreLocation {
        switch ProcessInfo.processInfo.environment[testBackendVariable] ?? "" {
        case "", "sqlite", "memory":
            return .inMemory
        case "postgres":
            var configuration = try await PostgresScratchDatabase.create()
            // Suites run many engines side by side on one server: a small pool each.
            configuration.maximumConnections = 2
            return StoreLocation(kind: .postgres(configuration))
        case let other:
            throw KeyRelayError(.invalidField, "\(testBackendVariable)=\(other) is not a backend: use postgres, or leave it unset for in-memory SQLite")
        }
    }
}
