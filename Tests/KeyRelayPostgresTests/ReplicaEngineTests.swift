import Foundation
import KeyRelay
import Testing
@testable import KeyRelayPostgres

/// The engine on two replicas of one PostgreSQL database (DESIGN.md: "with two serve replicas on one PostgreSQL
/// database"): the store's row locks are what makes the engine's rules hold across processes.
@Suite("Engine replicas on PostgreSQL", .enabled(if: hasServer, serverMissing))
struct ReplicaEngineTests {
    @Test func twoReplicasSyncingOneKeyAtOnceAcceptOneAndRefuseTheOther() async throws {
        try await withScratch { scratch in
            let database = try await scratch.database()
            let master = MasterKey.generate()
            let clock = ManualClock()
            let context = RequestContext(instanceID: "instance-a", principal: "alice")
            let location = try StoreLocation.postgres("postgres://\(database.username)@\(database.host):\(database.port)/\(database.database)?sslmode=disable&pool_size=4")
            let first = try await KeyRelayEngine.open(location, masterKey: master, clock: clock)
            let second = try await KeyRelayEngine.open(location, masterKey: master, clock: clock)
            let key = try await first.createKey(KeySpec(name: "shared"), context: context)
            for round in 1...3 {
                async let a = failure { _ = try await first.sync(key.id, context: context) }
                async let b = failure { _ = try await second.sync(key.id, context: context) }
                let outcomes = await [a, b]
                let accepted = outcomes.filter { $0 == nil }.count
                let refused = outcomes.filter { ($0 as? KeyRelayError)?.code == .requestTooEarly }.count
                #expect(accepted == 1 && refused == 1, "round \(round): \(outcomes)")
                clock.advance(by: 3601)
            }
        }
    }
}

/// The error `body` throws, or nil when it returns.
private func failure(_ body: () async throws -> Void) async -> (any Error)? {
    do {
        try await body()
        return nil
    } catch {
        return error
    }
}
