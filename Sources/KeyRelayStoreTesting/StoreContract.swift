import Foundation
import KeyRelayStore

/// The behaviour every KeyRelay store backend must show, as a list of checks a backend's own test target runs.
///
/// The engine relies on these properties and nothing else of a store: a command is all-or-nothing, an event's
/// notifications are written with it, due notifications keep per-resource order, delivery outcomes and
/// acknowledgements move notifications the way the bus expects, paging is exact, event sequences only grow, a
/// a reader tailing events by sequence never skips one, a
/// purge erases material but keeps history, KMIP adapters keep their certificates and objects (and take them when
/// deleted), and a database from a newer KeyRelay is refused.
///
/// The library does not import a test framework: a check throws ``ContractViolation`` when the backend misbehaves,
/// so any runner can use it. With Swift Testing:
///
/// ```swift
/// @Test(arguments: StoreContract.checks)
/// func fileStore(_ check: StoreContractCheck) async throws {
///     try await check.run(.myBackendOnFiles)
/// }
/// ```
public enum StoreContract {
    /// Every check, in a stable order.
    public static let checks: [StoreContractCheck] = [
        commandAtomicity, concurrentCommandsStayIndependent, roundTrip, fanOut, protectionEnded, dueNotificationOrder,
        deliveryOutcomes, acknowledgementSupersedes, acknowledgementState, paging, filters, keyQueries, eventSequence, purge, meta, kmipAdapters, durableAcrossReopen,
        newerSchemaRefused, commitsSignalled, incompleteActions, tailNeverSkips, notificationClaims,
    ]

    /// The checks a backend can run: those that reopen a database only when it has ``StoreContractBackend/reopening``.
    public static func checks(for backend: StoreContractBackend) -> [StoreContractCheck] {
        checks.filter { $0.applies(to: backend) }
    }
}

/// A store backend as the contract sees it: a way to get a fresh, empty store and, for backends whose data
/// outlives one open store, a way to open the same database again.
public struct StoreContractBackend: Sendable, CustomStringConvertible {
    /// Closing and reopening one database, and making it look written by a newer KeyRelay.
    public struct Reopening: Sendable {
        /// Closes `store` and opens the same database again (migrating it, as on any open).
        public var reopen: @Sendable (any KeyRelayStorage) async throws -> any KeyRelayStorage
        /// Records in `store`'s database a schema migration named `identifier` that this build does not know, as a
        /// newer KeyRelay would have. `store` stays open; the next ``reopen`` must refuse the database.
        public var recordUnknownMigration: @Sendable (_ store: any KeyRelayStorage, _ identifier: String) async throws -> Void

        public init(reopen: @escaping @Sendable (any KeyRelayStorage) async throws -> any KeyRelayStorage,
                    recordUnknownMigration: @escaping @Sendable (any KeyRelayStorage, String) async throws -> Void) {
            self.reopen = reopen
            self.recordUnknownMigration = recordUnknownMigration
        }
    }

    /// A name for test reports, e.g. "SQLite file".
    public var name: String
    /// Opens a fresh, empty, migrated store. Each call gets its own database.
    public var makeStore: @Sendable () async throws -> any KeyRelayStorage
    /// Nil for a backend whose database ends with the store (in memory): checks that reopen do not apply to it.
    public var reopening: Reopening?

    public init(name: String, makeStore: @escaping @Sendable () async throws -> any KeyRelayStorage,
                reopening: Reopening? = nil) {
        self.name = name
        self.makeStore = makeStore
        self.reopening = reopening
    }

    public var description: String { name }
}

/// One property of the store contract.
public struct StoreContractCheck: Sendable, CustomStringConvertible {
    /// A short identifier, e.g. `commandAtomicity`.
    public let name: String
    /// What the check proves, in one sentence.
    public let summary: String
    /// Whether the check needs ``StoreContractBackend/reopening``.
    public let needsReopening: Bool
    let body: @Sendable (StoreContractBackend) async throws -> Void

    init(_ name: String, _ summary: String, needsReopening: Bool = false,
         _ body: @escaping @Sendable (StoreContractBackend) async throws -> Void) {
        self.name = name
        self.summary = summary
        self.needsReopening = needsReopening
        self.body = body
    }

    /// Whether `backend` can run this check.
    public func applies(to backend: StoreContractBackend) -> Bool {
        !needsReopening || backend.reopening != nil
    }

    /// Runs the check on fresh stores of `backend`.
    /// - Throws: ``ContractViolation`` naming this check when the backend breaks the contract; any other error is
    ///   the backend failing outright (which fails the check as well).
    public func run(_ backend: StoreContractBackend) async throws {
        guard applies(to: backend) else {
            throw ContractViolation(check: name, "backend '\(backend.name)' cannot reopen a database; select checks with StoreContract.checks(for:)")
        }
        do {
            try await body(backend)
        } catch var violation as ContractViolation {
            violation.check = name
            throw violation
        }
    }

    public var description: String { name }
}

/// A backend broke the store contract: which check, and what was seen instead of what was required.
public struct ContractViolation: Error, Sendable, Equatable, CustomStringConvertible {
    /// The check that failed.
    public internal(set) var check: String
    /// What went wrong, with the values seen.
    public var message: String

    init(check: String = "", _ message: String) {
        self.check = check
        self.message = message
    }

    public var description: String { "store contract '\(check)' violated: \(message)" }
}

// MARK: - Expectations

/// Throws a violation unless `condition` holds.
func require(_ condition: Bool, _ message: @autoclosure () -> String) throws(ContractViolation) {
    guard condition else { throw ContractViolation(message()) }
}

/// Throws a violation naming `what` unless `actual == expected`.
/// The value, or a violation naming `what` when it is missing.
func requireValue<T>(_ value: T?, _ what: String) throws(ContractViolation) -> T {
    guard let value else { throw ContractViolation("\(what): expected a value, got none") }
    return value
}

func requireEqual<T: Equatable>(_ actual: T, _ expected: T, _ what: String) throws(ContractViolation) {
    guard actual == expected else { throw ContractViolation("\(what): expected \(expected), got \(actual)") }
}

/// Runs `body`, which must throw an error `matches` accepts.
func requireThrows<T>(_ what: String, _ body: () async throws -> T, matches: (any Error) -> Bool) async throws {
    let value: T
    do {
        value = try await body()
    } catch {
        guard matches(error) else { throw ContractViolation("\(what): threw an unexpected error: \(error)") }
        return
    }
    throw ContractViolation("\(what): did not throw (returned \(value))")
}
