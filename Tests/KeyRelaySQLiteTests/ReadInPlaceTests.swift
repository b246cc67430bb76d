import Foundation
import KeyRelayCore
import KeyRelayStore
import Testing
@testable import KeyRelaySQLite

/// Reads of a file store run on the calling thread in their own deferred transaction (``SQLiteStore/read(_:)``):
/// a read that throws leaves no transaction behind, and each read sees one snapshot while writes commit.
@Suite("SQLite reads on the calling thread")
struct ReadInPlaceTests {
    struct Refused: Error {}

    @Test func aThrowingReadLeavesTheConnectionUsable() async throws {
        let store = try SQLiteStore(.file(try temporaryDatabasePath()))
        let key = sampleKey()
        try await store.write { tx in
            try tx.ensureInstance("i1", at: epoch)
            try tx.insertKey(key)
        }
        for _ in 0..<20 {
            await #expect(throws: Refused.self) {
                try await store.read { tx -> Bool in
                    _ = try tx.key(id: key.id, instanceID: "i1")
                    throw Refused()
                }
            }
            let found = try await store.read { tx in try tx.key(id: key.id, instanceID: "i1") }
            #expect(found?.id == key.id)
        }
    }

    @Test func concurrentReadsSeeOneSnapshotWhileWritesCommit() async throws {
        let store = try SQLiteStore(.file(try temporaryDatabasePath()))
        try await store.write { tx in try tx.ensureInstance("i1", at: epoch) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for index in 0..<50 {
                    try await store.write { tx in try tx.ensureInstance("w\(index)", at: epoch) }
                }
            }
            for _ in 0..<4 {
                group.addTask {
                    for _ in 0..<100 {
                        // Two reads of the same snapshot agree, however many writes commit meanwhile.
                        let (first, second) = try await store.read { tx in (try tx.instanceIDs().count, try tx.instanceIDs().count) }
                        #expect(first == second)
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await store.read { tx in try tx.instanceIDs().count } == 51)
    }
}
