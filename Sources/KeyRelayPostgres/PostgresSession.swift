import Foundation
import KeyRelayStore
import Logging
import NIOCore
import PostgresNIO

/// A bound value of a statement: any value postgres-nio encodes, or nil for SQL NULL.
typealias Argument = (any PostgresThrowingDynamicTypeEncodable)?

/// One pooled connection seen from a thread of the store's thread pool (never an event loop): each statement is sent
/// with postgres-nio's EventLoopFuture API and waited for on this thread. That is what makes the port's synchronous
/// closures possible on an asynchronous driver (see ``PostgresStore``).
struct PostgresSession: Sendable {
    let connection: PostgresConnection
    let logger: Logger

    /// Runs one statement whose `?` placeholders are bound, in order, to `arguments`; returns its rows.
    @discardableResult
    func rows(_ sql: String, _ arguments: [Argument] = []) throws -> [PostgresRandomAccessRow] {
        try result(sql, arguments).rows.map { $0.makeRandomAccess() }
    }

    /// Runs one statement and returns how many rows it changed.
    @discardableResult
    func execute(_ sql: String, _ arguments: [Argument] = []) throws -> Int {
        try result(sql, arguments).metadata.rows ?? 0
    }

    private func result(_ sql: String, _ arguments: [Argument]) throws -> PostgresQueryResult {
        var bindings = PostgresBindings(capacity: arguments.count)
        for argument in arguments {
            if let argument { try bindings.append(argument) } else { bindings.appendNull() }
        }
        let query = PostgresQuery(unsafeSQL: numberedPlaceholders(sql), binds: bindings)
        do {
            return try connection.query(query, logger: logger).wait()
        } catch {
            throw PostgresStoreError(error)
        }
    }

    /// Runs a migration file: its statements one by one (the extended protocol takes one statement at a time).
    func script(_ sql: String) throws {
        for statement in statements(sql) { try execute(statement) }
    }
}

/// The statements of a migration file: split at each `;` outside quotes, `--` comments removed. Enough for
/// `schema/postgres/`, which holds plain DDL (no function bodies).
func statements(_ sql: String) -> [String] {
    var result: [String] = []
    var current = ""
    var quote: Character?
    var lines = sql.split(separator: "\n", omittingEmptySubsequences: false).makeIterator()
    while let line = lines.next() {
        var previous: Character?
        for character in line {
            if let open = quote {
                if character == open { quote = nil }
            } else if character == "'" || character == "\"" {
                quote = character
            } else if character == "-", previous == "-" {
                current.removeLast()
                break
            } else if character == ";" {
                let statement = current.trimmingCharacters(in: .whitespacesAndNewlines)
                if !statement.isEmpty { result.append(statement) }
                current = ""
                previous = nil
                continue
            }
            current.append(character)
            previous = character
        }
        current.append("\n")
    }
    let rest = current.trimmingCharacters(in: .whitespacesAndNewlines)
    if !rest.isEmpty { result.append(rest) }
    return result
}

/// `?` placeholders as PostgreSQL's `$1, $2, …`, outside quoted literals and identifiers: the statements are written
/// like SQLite's (one `?` per argument, in order), so the two backends read alike.
func numberedPlaceholders(_ sql: String) -> String {
    var output = ""
    output.reserveCapacity(sql.utf8.count + 16)
    var number = 0
    var quote: Character?
    for character in sql {
        if let open = quote {
            if character == open { quote = nil }
            output.append(character)
        } else if character == "'" || character == "\"" {
            quote = character
            output.append(character)
        } else if character == "?" {
            number += 1
            output += "$\(number)"
        } else {
            output.append(character)
        }
    }
    return output
}

/// The store failing (not the domain): a statement the server refused, a lost connection, a row that is not there.
/// Its description names the server's SQLSTATE and message — never a bound value, and never the connection's password.
public struct PostgresStoreError: Error, Sendable, CustomStringConvertible {
    /// The server's SQLSTATE (e.g. `40P01` deadlock detected), when the server answered.
    public let sqlState: String?
    public let message: String

    init(sqlState: String?, message: String) {
        self.sqlState = sqlState
        self.message = message
    }

    init(_ error: any Error) {
        if let error = error as? PostgresStoreError {
            self = error
        } else if let error = error as? PSQLError {
            if let server = error.serverInfo {
                self.init(sqlState: server[.sqlState], message: server[.message] ?? "the server refused the statement")
            } else {
                // postgres-nio's description is deliberately generic; its code, and the socket error under it (e.g.
                // "Connection refused"), hold no data and no credentials.
                let cause = error.underlying.map { ": \($0)" } ?? ""
                self.init(sqlState: nil, message: "\(error.code)\(cause)")
            }
        } else {
            self.init(sqlState: nil, message: String(describing: error))
        }
    }

    /// A conflict between concurrent transactions that running the command again resolves: a deadlock between row
    /// locks taken in different orders, or a serialization failure.
    var isRetryable: Bool { sqlState == "40P01" || sqlState == "40001" }

    public var description: String {
        "PostgreSQL: \(message)\(sqlState.map { " (SQLSTATE \($0))" } ?? "")"
    }
}

/// One stored row, read so that it fails closed, like the SQLite backend's: a missing, mistyped or unknown value
/// throws ``StoreError/corruptRow(table:column:value:)`` naming it rather than becoming a default.
struct StoredRow {
    let row: PostgresRandomAccessRow
    let table: String

    func corrupt(_ column: String) -> StoreError {
        guard row.contains(column) else { return .corruptRow(table: table, column: column, value: "no such column") }
        let cell = row[column]
        let shown: String
        if var bytes = cell.bytes {
            switch cell.dataType {
            case .text, .varchar: shown = bytes.readString(length: bytes.readableBytes) ?? "(not UTF-8)"
            case .bytea: shown = "\(bytes.readableBytes) bytes"
            default: shown = (try? cell.decode(Int64.self)).map(String.init) ?? "a \(cell.dataType) value"
            }
        } else {
            shown = "NULL"
        }
        return .corruptRow(table: table, column: column, value: shown)
    }

    /// A value that must be present and of type `T` (ask for `T?` when NULL is allowed).
    func value<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        guard row.contains(column) else { throw corrupt(column) }
        do {
            return try row[column].decode(type)
        } catch {
            throw corrupt(column)
        }
    }

    func date(_ column: String) throws -> Date { Date(storageMilliseconds: try value(column, as: Int64.self)) }

    func optionalDate(_ column: String) throws -> Date? {
        try value(column, as: Int64?.self).map(Date.init(storageMilliseconds:))
    }

    /// A stored code (state, kind, status) that must be one this build knows.
    func code<E: RawRepresentable>(_ column: String, as type: E.Type) throws -> E where E.RawValue: PostgresDecodable {
        guard let known = E(rawValue: try value(column, as: E.RawValue.self)) else { throw corrupt(column) }
        return known
    }

    /// JSON text decoded as `T`, or nil when the column is NULL.
    func json<T: Decodable>(_ column: String, as type: T.Type) throws -> T? {
        guard let text = try value(column, as: String?.self) else { return nil }
        guard let decoded = StoredJSON.decode(text, as: type) else { throw corrupt(column) }
        return decoded
    }
}
