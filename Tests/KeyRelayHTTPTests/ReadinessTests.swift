import Foundation
import HummingbirdTesting
import KeyRelay
import KeyRelayHTTP
import KeyRelaySQLite
import KeyRelayStore
import Synchronization
import Testing

/// A store whose reads can be made to fail, as a database on a lost disk would.
final class FailingReads: KeyRelayStorage {
    let base: SQLiteStore
    let failing = Atomic(false)
    init(_ base: SQLiteStore) { self.base = base }

    struct Unreadable: Error {}

    func write<T: Sendable>(_ command: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T {
        try await base.write(command)
    }

    func read<T: Sendable>(_ query: @escaping @Sendable (any StorageReader) throws -> T) async throws -> T {
        if failing.load(ordering: .relaxed) { throw Unreadable() }
        return try await base.read(query)
    }

    var commits: CommitFeed { base.commits }
}

/// `/ready` says whether the store answers a read (issue #14 item 3); `/health` only that the process serves.
@Suite struct ReadinessTests {
    @Test func readyAnswers503WhileTheStoreCannotBeReadAnd200Again() async throws {
        let store = FailingReads(try SQLiteStore(.inMemory))
        let engine = try await KeyRelayEngine(storage: store, masterKey: .generate(), clock: ManualClock())
        let api = KeyProtectAPI(engine: engine, access: Harness.access())
        let app = try KeyRelayServer.makeApplication(api: api, host: "127.0.0.1", port: 0)
        try await app.test(.router) { client in
            try await client.execute(uri: "/ready", method: .get) { #expect($0.status == .ok) }
            store.failing.store(true, ordering: .relaxed)
            try await client.execute(uri: "/ready", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(response.body.readableBytes == 0, "/ready answers no data")
            }
            try await client.execute(uri: "/health", method: .get) { #expect($0.status == .ok, "alive, though not ready") }
            store.failing.store(false, ordering: .relaxed)
            try await client.execute(uri: "/ready", method: .get) { #expect($0.status == .ok) }
        }
    }
}
