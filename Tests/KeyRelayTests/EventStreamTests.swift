import Foundation
import Testing
@testable import KeyRelay

/// `eventStream(after:)`: the stored events, then each new one as it commits, woken by commits (no polling).
@Suite("The event stream")
struct EventStreamTests {
    /// Collects the first `count` events of `stream` in a task of its own.
    static func collect(_ count: Int, of stream: LifecycleEventStream) -> Task<[LifecycleEvent], any Error> {
        Task {
            var events: [LifecycleEvent] = []
            for try await event in stream {
                events.append(event)
                if events.count == count { break }
            }
            return events
        }
    }

    @Test func storedEventsComeFirstThenEachCommitWithoutPolling() async throws {
        let (engine, clock) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "orders-root"), context: alice)
        // No poll interval: only this engine's commits can wake the stream, so seeing the later events proves
        // the commit feed woke it.
        let tail = Self.collect(4, of: engine.eventStream(context: alice, pollInterval: nil))
        _ = try await engine.rotate(key.id, context: alice)
        _ = try await engine.disable(key.id, context: alice)
        clock.advance(by: 31)
        _ = try await engine.enable(key.id, context: alice)
        let events = try await tail.value
        #expect(events.map(\.kind) == [.create, .rotate, .disable, .enable])
        #expect(zip(events, events.dropFirst()).allSatisfy { $0.sequence < $1.sequence })
    }

    @Test func aStreamStartsAfterTheSequenceItIsGivenAndKeepsToOneKeyAndOneInstance() async throws {
        let (engine, _) = try await makeEngine()
        let orders = try await engine.createKey(KeySpec(name: "orders-root", aliases: ["orders"]), context: alice)
        let create = try #require(try await engine.events(keyID: orders.id, context: alice).last)
        let tail = Self.collect(2, of: engine.eventStream(after: create.sequence, keyID: "orders", context: alice, pollInterval: nil))
        _ = try await engine.createKey(KeySpec(name: "other"), context: alice)      // another key: not in the stream
        _ = try await engine.createKey(KeySpec(name: "theirs"), context: mallory)   // another instance: not either
        _ = try await engine.rotate(orders.id, context: alice)
        _ = try await engine.disable(orders.id, context: alice)
        let events = try await tail.value
        #expect(events.map(\.kind) == [.rotate, .disable])
        #expect(events.allSatisfy { $0.keyID == orders.id && $0.instanceID == alice.instanceID })
    }

    @Test func anUnknownKeyFailsTheStreamAndCancellationEndsIt() async throws {
        let (engine, _) = try await makeEngine()
        await expectError(.keyNotFound) {
            for try await _ in engine.eventStream(keyID: "does-not-exist", context: alice, pollInterval: nil) {}
        }
        // A consumer waiting for a commit that never comes ends when its task is cancelled.
        let waiting = Task {
            var count = 0
            for try await _ in engine.eventStream(context: alice, pollInterval: nil) { count += 1 }
            return count
        }
        waiting.cancel()
        #expect(try await waiting.value == 0)
    }

    @Test func anotherProcessesCommitsAreSeenByPolling() async throws {
        let path = try temporaryPath()
        let (reader, _) = try await makeEngine(path: path)
        let (writer, _) = try await makeEngine(path: path)   // its own store: its commits do not signal the reader's
        let tail = Self.collect(1, of: reader.eventStream(context: alice, pollInterval: .milliseconds(20)))
        _ = try await writer.createKey(KeySpec(name: "from-elsewhere"), context: alice)
        let events = try await tail.value
        #expect(events.map(\.kind) == [.create])
    }
}
