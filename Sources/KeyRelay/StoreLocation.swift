import Foundation
internal import KeyRelaySQLite
internal import KeyRelayStore

/// Where an engine keeps its database, named without any backend type: a file path or a private in-memory
/// database today; a PostgreSQL URL once a PostgreSQL backend ships (this build refuses it, saying so).
///
/// ```swift
/// let engine = try await KeyRelayEngine.open(try StoreLocation(parsing: "keyrelay.sqlite"), masterKey: masterKey)
/// ```
public struct StoreLocation: Sendable, Equatable, CustomStringConvertible {
    enum Kind: Sendable, Equatable {
        case file(String)
        case inMemory
    }

    let kind: Kind
    /// Whether opening refuses to create the database (see ``mustExist``).
    public private(set) var requiresExisting = false

    private init(kind: Kind) { self.kind = kind }

    /// An SQLite database file (created and migrated on first open).
    public static func file(_ path: String) -> StoreLocation { StoreLocation(kind: .file(path)) }

    /// The same location, opened only if a KeyRelay database is already there: a missing file is an error naming
    /// the path instead of a new, empty database. For commands that only read (a typo in `--db` must not create
    /// a file). An in-memory location is unaffected.
    public var mustExist: StoreLocation {
        var location = self
        location.requiresExisting = true
        return location
    }

    /// A private in-memory database (tests, examples): not durable, and gone with the engine.
    public static let inMemory = StoreLocation(kind: .inMemory)

    /// Reads a location as an operator writes it (a `--db` flag, an environment variable):
    /// a path, a `file://` URL, or `:memory:`.
    /// - Throws: `KeyRelayError` for a `postgres://` or `postgresql://` URL (PostgreSQL is not supported by this
    ///   build yet), for another URL scheme, and for an empty string.
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
                throw KeyRelayError(.featureRestricted, "PostgreSQL is not supported by this build yet: KeyRelay stores its data in SQLite for now; give a file path instead",
                                    operation: operation)
            default:
                throw KeyRelayError(.invalidField, "The database location scheme '\(scheme)' is not supported: give a file path, a file:// URL or :memory:",
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
        }
    }

    /// Opens the backend this location names. The only place the engine names a backend type.
    func openStore() throws -> any KeyRelayStorage {
        switch kind {
        case .file(let path): try SQLiteStore(.file(path), createIfMissing: !requiresExisting)
        case .inMemory: try SQLiteStore(.inMemory)
        }
    }
}
