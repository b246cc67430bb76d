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
/// ## Writes carried by the next statement
///
/// postgres-nio sends a connection's statements one at a time (the next once the previous one's answer is in), so a
/// statement sent without waiting still costs a round trip of its own on the event loop and in the server. The writes
/// of a lifecycle command to rows the transaction already holds — `insertKey` of a new key, `updateKey` and
/// `insertVersion` of a key it read under `FOR UPDATE` or inserted — are therefore ``hold(_:_:table:failureUnlessOneRow:mayWait:)``-ed
/// instead: kept here and sent as data-modifying CTEs in front of the next statement that carries them
/// (``carrying(with:_:_:locking:oneRow:)``: `appendEvent`'s), one round trip for them all; so is `ensureInstance`,
/// carried by `instancePolicies`' read, which create makes next. That is sound because
/// - PostgreSQL runs every data-modifying CTE exactly once and to completion, whether or not the statement reads it,
///   and fails the whole statement with the first error (reported as the write's own would have been);
/// - a carrier reads none of the tables they write (`events`, `registrations`, `instance_policies`), so sharing its
///   snapshot changes no answer; foreign keys are checked at the end of the statement, when a version's key inserted
///   beside it exists;
/// - a held write to a key's rows waits for no other transaction's lock (its rows are held or new), so carrying it
///   next to the event-sequence lock adds no lock order that was not there; `ensureInstance` may wait (for another
///   transaction inserting the same instance), and a statement that takes a lock carries no such write;
/// - two held writes to one table are never carried together (a row updated twice in one statement, or an update of
///   a row a sibling CTE inserts, would not see the other): holding a second one first sends those held, in order;
/// - `updateKey`'s "changed one row" check reads its CTE's count in the carrier's row.
/// Any other statement, ``settle()`` and ``settleChecks()`` first send the held writes on their own, in order, as
/// ``send(_:_:check:)`` would have.
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
    /// Keys the transaction under way inserted (their rows are its own until it commits).
    var insertedKeys: Set<String> = []
    /// Writes held to be carried by the next statement that carries them, in the order held.
    private var held: [HeldWrite] = []

    private struct HeldWrite {
        let table: String
        let sql: String
        let arguments: [Argument]
        /// The error when the write changes other than one row (nil: any count is fine).
        let failureUnlessOneRow: String?
        /// Whether it may wait for another transaction (an `ON CONFLICT` insert of a row another one is inserting).
        let mayWait: Bool
    }

    /// Forgets what one attempt of a transaction learnt (at each BEGIN).
    func beginTransaction() {
        notified = false
        lockedKeys.removeAll()
        unregisteredKeys.removeAll()
        insertedKeys.removeAll()
        held.removeAll()
    }

    /// Whether the transaction under way holds the row of key `id` (read under `FOR UPDATE`, or inserted): a write to
    /// it, or a row referencing it, waits for no other transaction.
    func ownsRow(ofKey id: String) -> Bool {
        lockedKeys.contains(id) || insertedKeys.contains(id)
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
        try release()
        inFlight.append((try submit(sql, arguments), check))
    }

    /// Holds a write (`INSERT`, `UPDATE` or `DELETE` without `RETURNING`) of `table`, to rows the transaction holds or
    /// makes, for the next statement that carries it (see "Writes carried by the next statement"). With
    /// `failureUnlessOneRow`, the transaction fails with that message unless the write changes exactly one row.
    /// `mayWait`: the write may wait for another transaction's row; only a carrier that takes no lock of its own
    /// carries it.
    func hold(_ sql: String, _ arguments: [Argument], table: String, failureUnlessOneRow: String? = nil, mayWait: Bool = false) throws {
        if held.contains(where: { $0.table == table }) { try release() }
        held.append(HeldWrite(table: table, sql: sql, arguments: arguments, failureUnlessOneRow: failureUnlessOneRow,
                              mayWait: mayWait))
    }

    /// Sends the held writes on their own, in order, without waiting (each with its row-count check): all of them, or
    /// the first `count`.
    private func release(first count: Int? = nil) throws {
        guard !held.isEmpty else { return }
        let writes = held.prefix(count ?? held.count)
        held.removeFirst(writes.count)
        for write in writes {
            let check: ((PostgresQueryResult) throws -> Void)? = write.failureUnlessOneRow.map { failure in
                { answer in
                    guard answer.metadata.rows == 1 else { throw PostgresStoreError(sqlState: nil, message: failure) }
                }
            }
            inFlight.append((try submit(write.sql, write.arguments), check))
        }
    }

    /// Runs `statement` (a `SELECT`, or an `INSERT`, `UPDATE` or `DELETE` with `RETURNING`), preceded by the CTEs
    /// `definitions` (`name AS (…)`, none by default), with the held writes in front of them as data-modifying CTEs,
    /// and returns its rows. `locking`: the statement takes a lock (the event-sequence lock), so writes that may wait
    /// are sent on their own first. `oneRow`: it always answers exactly one row, so it can also carry writes with a
    /// row-count check (made on the count each one's CTE answers beside the row); otherwise those are sent on their
    /// own first.
    func carrying(with definitions: [String] = [], _ statement: String, _ arguments: [Argument], locking: Bool,
                  oneRow: Bool) throws -> [PostgresRandomAccessRow] {
        // Those it cannot carry go first, with every write held before them (the writes keep their order).
        if let last = held.lastIndex(where: { (locking && $0.mayWait) || (!oneRow && $0.failureUnlessOneRow != nil) }) {
            try release(first: last + 1)
        }
        let writes = held
        held.removeAll()
        var ctes: [String] = []
        var counts = ""
        for (index, write) in writes.enumerated() {
            if write.failureUnlessOneRow != nil {
                ctes.append("held\(index) AS (\(write.sql) RETURNING 1)")
                counts += ", (SELECT COUNT(*) FROM held\(index)) AS held\(index)"
            } else {
                ctes.append("held\(index) AS (\(write.sql))")
            }
        }
        ctes += definitions
        let sql: String
        if counts.isEmpty {
            sql = ctes.isEmpty ? statement : "WITH \(ctes.joined(separator: ", ")) \(statement)"
        } else {
            ctes.append("carrier AS (\(statement))")
            sql = "WITH \(ctes.joined(separator: ", ")) SELECT carrier.*\(counts) FROM carrier"
        }
        let answer = try rows(sql, writes.flatMap(\.arguments) + arguments)
        guard !counts.isEmpty else { return answer }
        guard let row = answer.first else {
            // The statement answers one row: without it the writes' counts cannot be read, and the transaction fails.
            throw PostgresStoreError(sqlState: nil, message: "a statement carrying held writes answered no row")
        }
        for (index, write) in writes.enumerated() {
            guard let failure = write.failureUnlessOneRow else { continue }
            guard try StoredRow(row: row, table: write.table).value("held\(index)", as: Int64.self) == 1 else {
                throw PostgresStoreError(sqlState: nil, message: failure)
            }
        }
        return answer
    }

    /// Waits for every statement sent and not yet waited for, in order; throws the first failure (the others are
    /// then dropped: the transaction has failed and the caller rolls it back).
    func settle() throws {
        try release()
        guard !inFlight.isEmpty else { return }
        waits += 1
        try settleInFlight()
    }

    private func settleInFlight() throws {
        let pending = inFlight
        inFlight.removeAll()
        for (future, check) in pending {
            let reply = try answer(of: future)  // every answer, with or without a check (its failure is the cause)
            try check?(reply)
        }
    }

    /// Settles the statements in flight if one of them has a check: a check that throws has to run before COMMIT is
    /// sent (the server sees nothing wrong with an UPDATE that changed no row, and would commit).
    func settleChecks() throws {
        try release()
        guard inFlight.contains(where: { $0.check != nil }) else { return }
        try settle()
    }

    /// Forgets what was sent and not waited for, and what was held (after a failure, before `ROLLBACK`: their answers
    /// no longer matter).
    func abandon() {
        inFlight.removeAll()
        held.removeAll()
    }

    private func submit(_ sql: String, _ arguments: [Argument]) throws -> EventLoopFuture<PostgresQueryResult> {
        // A statement written to a closed channel is never answered (see answer(of:)): refuse it at once.
        guard !connection.isClosed else {
            throw PostgresStoreError(sqlState: nil, message: "the connection to the server is closed")
        }
        var bindings = PostgresBindings(capacity: arguments.count)
        for argument in arguments {
            if let argument { try bindings.append(argument) } else { bindings.appendNull() }
        }
        sent += 1
        return connection.query(PostgresQuery(unsafeSQL: numberedPlaceholders(sql), binds: bindings), logger: logger)
    }

    private func result(_ sql: String, _ arguments: [Argument]) throws -> PostgresQueryResult {
        try release()
        let future = try submit(sql, arguments)
        // The statements sent before this one ran first: their failure is the cause of any failure of this one.
        waits += 1
        try settleInFlight()
        return try answer(of: future)
    }

    /// How often a wait for an answer looks whether the connection has closed (see ``answer(of:)``).
    static let closedConnectionCheck: DispatchTimeInterval = .seconds(1)

    /// Waits for a statement's answer on this thread; fails if the connection closes without answering it.
    ///
    /// postgres-nio writes a statement to its channel without a write promise: written to a channel that has already
    /// closed (the server restarted, the store is being closed), the write fails unseen and the statement's own future
    /// is never completed, so a plain `wait()` blocked this pool thread, and held its connection, forever. This wait
    /// looks at the connection every ``closedConnectionCheck``; once it has seen it closed on two looks in a row (a
    /// statement in flight when the channel closes is failed by postgres-nio's handler as it goes inactive, just
    /// after) it fails with a store error instead.
    func answer(of future: EventLoopFuture<PostgresQueryResult>) throws -> PostgresQueryResult {
        let answered = DispatchSemaphore(value: 0)
        future.whenComplete { _ in answered.signal() }
        var sawClosed = false
        while answered.wait(timeout: .now() + Self.closedConnectionCheck) == .timedOut {
            guard connection.isClosed else { continue }
            if sawClosed {
                throw PostgresStoreError(sqlState: nil, message: "the connection to the server closed before the statement was answered")
            }
            sawClosed = true
        }
        do {
            return try future.wait()  // answered: returns at once
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
