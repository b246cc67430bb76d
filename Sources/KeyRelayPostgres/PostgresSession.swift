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
///
/// ## Statements sent without waiting
///
/// A write whose answer the closure does not need (`BEGIN`, an `INSERT` or `UPDATE` of the port that returns nothing,
/// `COMMIT`) is ``send(_:_:check:)``-ed: postgres-nio queues it on the connection and the thread goes on at once, so
/// the statements between two answers the closure needs cost one wait on this thread instead of one each (postgres-nio
/// runs a connection's statements one after another, in the order sent: a statement sent later sees the earlier ones'
/// writes). Every statement that is waited for first settles those sent before it, in order, and the first failure
/// among them is what is thrown: after a failed statement PostgreSQL refuses the rest of the transaction (25P02), and
/// the caller learns the cause, as if it had waited for each. ``settle()`` waits for all of them; the store settles
/// before it reports a commit, and before it reports a closure's own error (a failed write comes first, as it would
/// have on SQLite, where the closure would have stopped there).
///
/// Not `Sendable`: one session belongs to the one pool thread running one closure.
final class PostgresSession {
    let connection: PostgresConnection
    let logger: Logger
    /// Sent, not yet waited for, in the order sent, each with the check its caller would have made on the answer.
    private var inFlight: [(future: EventLoopFuture<PostgresQueryResult>, check: ((PostgresQueryResult) throws -> Void)?)] = []
    /// How many statements this session sent, and how many times its thread waited for an answer (tests and
    /// benchmarks count round trips with them).
    private(set) var sent = 0
    private(set) var waits = 0
    /// Whether the transaction under way has notified `keyrelay_commits` already (appendEvent's statement does).
    var notified = false
    /// Keys the transaction under way read under `FOR UPDATE`, and those of them it found without registrations
    /// (appendEvent): see PostgresTransaction.appendEvent.
    var lockedKeys: Set<String> = []
    var unregisteredKeys: Set<String> = []

    /// Forgets what one attempt of a transaction learnt (at each BEGIN).
    func beginTransaction() {
        notified = false
        lockedKeys.removeAll()
        unregisteredKeys.removeAll()
    }

    init(connection: PostgresConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

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

    /// Sends one statement without waiting for it; `check` (if any) is run on its answer when it is settled, and may
    /// throw to fail the transaction (e.g. an `UPDATE` that changed no row).
    func send(_ sql: String, _ arguments: [Argument] = [], check: ((PostgresQueryResult) throws -> Void)? = nil) throws {
        inFlight.append((try submit(sql, arguments), check))
    }

    /// Waits for every statement sent and not yet waited for, in order; throws the first failure (the others are
    /// then dropped: the transaction has failed and the caller rolls it back).
    func settle() throws {
        guard !inFlight.isEmpty else { return }
        waits += 1
        try settleInFlight()
    }

    private func settleInFlight() throws {
        let pending = inFlight
        inFlight.removeAll()
        for (future, check) in pending {
            let answer: PostgresQueryResult
            do {
                answer = try future.wait()
            } catch {
                throw PostgresStoreError(error)
            }
            try check?(answer)
        }
    }

    /// Settles the statements in flight if one of them has a check: a check that throws has to run before COMMIT is
    /// sent (the server sees nothing wrong with an UPDATE that changed no row, and would commit).
    func settleChecks() throws {
        guard inFlight.contains(where: { $0.check != nil }) else { return }
        try settle()
    }

    /// Forgets what was sent and not waited for (after a failure, before `ROLLBACK`: their answers no longer matter).
    func abandon() {
        inFlight.removeAll()
    }

    private func submit(_ sql: String, _ arguments: [Argument]) throws -> EventLoopFuture<PostgresQueryResult> {
        var bindings = PostgresBindings(capacity: arguments.count)
        for argument in arguments {
            if let argument { try bindings.append(argument) } else { bindings.appendNull() }
        }
        sent += 1
        return connection.query(PostgresQuery(unsafeSQL: numberedPlaceholders(sql), binds: bindings), logger: logger)
    }

    private func result(_ sql: String, _ arguments: [Argument]) throws -> PostgresQueryResult {
        let future = try submit(sql, arguments)
        // The statements sent before this one ran first: their failure is the cause of any failure of this one.
        waits += 1
        try settleInFlight()
        do {
            return try future.wait()
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
/// like SQLite's (one `?` per argument, in order), so the two backends read alike. It walks UTF-8 bytes, not
/// `Character`s: `?` and the quotes are ASCII, never part of another character's encoding, and a statement's text is
/// rewritten on every submission (grapheme breaking cost more than the rest of the statement's preparation).
func numberedPlaceholders(_ sql: String) -> String {
    var output: [UInt8] = []
    output.reserveCapacity(sql.utf8.count + 16)
    var number = 0
    var quote: UInt8?
    for byte in sql.utf8 {
        if let open = quote {
            if byte == open { quote = nil }
            output.append(byte)
        } else if byte == UInt8(ascii: "'") || byte == UInt8(ascii: "\"") {
            quote = byte
            output.append(byte)
        } else if byte == UInt8(ascii: "?") {
            number += 1
            output.append(UInt8(ascii: "$"))
            output.append(contentsOf: String(number).utf8)
        } else {
            output.append(byte)
        }
    }
    return String(decoding: output, as: UTF8.self)
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
