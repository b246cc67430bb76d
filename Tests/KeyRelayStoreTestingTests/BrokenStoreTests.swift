import Foundation
import KeyRelaySQLite
import KeyRelayStore
import KeyRelayStoreTesting
import Testing

/// A store that forgets atomicity: a command that throws keeps what it wrote (the bug a backend gets by committing
/// in a `defer`, or by running statements outside the command's transaction).
struct NonAtomicStore: KeyRelayStorage {
    let base: SQLiteStore

    func write<T: Sendable>(_ command: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T {
        let result = try await base.write { tx in Result { try command(tx) } }
        return try result.get()
    }

    func read<T: Sendable>(_ query: @escaping @Sendable (any StorageReader) throws -> T) async throws -> T {
        try await base.read(query)
    }

    var commits: CommitFeed { base.commits }
}

/// A store that never makes anything durable: every command runs and is rolled back, though its caller is told
/// it committed.
struct ForgetfulStore: KeyRelayStorage {
    let base: SQLiteStore
    private struct Undo<T: Sendable>: Error { let value: T }

    func write<T: Sendable>(_ command: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T {
        do {
            _ = try await base.write { tx in throw Undo(value: try command(tx)) }
            fatalError("unreachable: the command always throws")
        } catch let undo as Undo<T> {
            return undo.value
        }
    }

    func read<T: Sendable>(_ query: @escaping @Sendable (any StorageReader) throws -> T) async throws -> T {
        try await base.read(query)
    }

    var commits: CommitFeed { base.commits }
}

/// A store whose commit feed never moves: a reader tailing it (the engine's event stream) would wait forever.
struct SilentStore: KeyRelayStorage {
    let base: SQLiteStore
    let commits = CommitFeed()

    func write<T: Sendable>(_ command: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T {
        try await base.write(command)
    }

    func read<T: Sendable>(_ query: @escaping @Sendable (any StorageReader) throws -> T) async throws -> T {
        try await base.read(query)
    }
}

/// The contract suite can fail: each deliberately broken store is caught by the checks that name its bug.
@Suite("Store contract catches broken stores")
struct BrokenStoreTests {
    static let nonAtomic = StoreContractBackend(name: "non-atomic", makeStore: { NonAtomicStore(base: try SQLiteStore(.inMemory)) })
    static let forgetful = StoreContractBackend(name: "forgetful", makeStore: { ForgetfulStore(base: try SQLiteStore(.inMemory)) })

    static let silent = StoreContractBackend(name: "silent", makeStore: { SilentStore(base: try SQLiteStore(.inMemory)) })

    @Test func aStoreThatNeverSignalsItsCommitsFails() async throws {
        let check = try Self.check("commitsSignalled")
        let violation = await #expect(throws: ContractViolation.self) { try await check.run(Self.silent) }
        #expect(violation?.check == "commitsSignalled")
    }

    static func check(_ name: String) throws -> StoreContractCheck {
        try #require(StoreContract.checks.first { $0.name == name }, "no check named \(name)")
    }

    @Test(arguments: ["commandAtomicity", "concurrentCommandsStayIndependent"])
    func aStoreThatKeepsARefusedCommandsWritesFails(_ name: String) async throws {
        let check = try Self.check(name)
        let violation = await #expect(throws: ContractViolation.self) { try await check.run(Self.nonAtomic) }
        #expect(violation?.check == name)
        #expect(violation?.description.hasPrefix("store contract '\(name)' violated: ") == true)
    }

    @Test(arguments: ["commandAtomicity", "roundTrip", "fanOut", "meta", "eventSequence", "purge"])
    func aStoreThatForgetsCommittedWritesFails(_ name: String) async throws {
        let check = try Self.check(name)
        let violation = await #expect(throws: ContractViolation.self) { try await check.run(Self.forgetful) }
        #expect(violation?.check == name)
    }

    @Test func theSameChecksPassOnTheStoreTheBrokenOnesWrap() async throws {
        let sound = StoreContractBackend(name: "sound", makeStore: { try SQLiteStore(.inMemory) })
        for check in StoreContract.checks(for: sound) { try await check.run(sound) }
    }

    @Test func aCheckThatNeedsReopeningRefusesABackendThatCannot() async throws {
        let check = try Self.check("newerSchemaRefused")
        #expect(!check.applies(to: Self.nonAtomic))
        let violation = await #expect(throws: ContractViolation.self) { try await check.run(Self.nonAtomic) }
        #expect(violation?.message.contains("cannot reopen") == true)
    }
}
