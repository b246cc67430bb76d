import Foundation
import KeyRelayCore
import KeyRelayStore
import Synchronization

extension StoreContract {
    static let tailNeverSkips = StoreContractCheck(
        "tailNeverSkips",
        "A reader tailing events by sequence while several writers append them sees every sequence exactly once, in order: an event never commits behind a sequence a reader has already passed."
    ) { backend in
        let store = try await backend.makeStore()
        let writers = 4, eventsPerWriter = 30
        let keys = (0..<writers).map { F.key("tail-\($0)") }
        try await store.write { tx in for key in keys { try F.seed(tx, key) } }
        let start = try await store.read { tx in try tx.latestEventSequence() }
        // Each command first changes its key (on PostgreSQL that takes the transaction's id), appends its event, then
        // writes again: the order in which two commands start, take a sequence and commit is left to the scheduler.
        let finished = Mutex(false)
        let writing = Task {
            defer { finished.withLock { $0 = true } }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (w, key) in keys.enumerated() {
                    group.addTask {
                        for n in 1...eventsPerWriter {
                            try await store.write { tx in
                                var changed = key
                                changed.eventSequence = n
                                try tx.updateKey(changed)
                                _ = try tx.appendEvent(F.event(changed, n))
                                // Work after the sequence is taken widens the window in which it is not yet committed.
                                try tx.setMeta("tail-\(w)", Data("\(n)".utf8))
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        // The tail: pages of 7 after the last sequence seen, until the writers are done and a page comes back empty.
        var seen: [Int64] = []
        var cursor = start
        let deadline = ContinuousClock.now + .seconds(60)
        do {
            while true {
                try require(ContinuousClock.now < deadline, "the tail had seen \(seen.count) events after 60 s")
                let writersDone = finished.withLock { $0 }
                let page = try await store.read { [cursor] tx in try tx.events(instanceID: nil, keyID: nil, after: cursor, limit: 7) }
                for event in page {
                    try require(event.sequence > cursor, "the tail after \(cursor) returned sequence \(event.sequence)")
                    cursor = event.sequence
                    seen.append(event.sequence)
                }
                if page.isEmpty {
                    if writersDone { break }
                    await Task.yield()
                }
            }
        } catch {
            // A failing tail still lets the writers finish before the check ends: the caller closes the store next,
            // and writers still running would fail against a closed store (on PostgreSQL they once hung there, until
            // the session learnt to fail a statement its closed connection cannot answer) instead of the check
            // reporting its own violation.
            _ = await writing.result
            throw error
        }
        try await writing.value
        let committed = try await store.read { tx in
            try tx.events(instanceID: nil, keyID: nil, after: start, limit: writers * eventsPerWriter + 10).map(\.sequence)
        }
        try requireEqual(committed.count, writers * eventsPerWriter, "events committed by the writers")
        let skipped = Set(committed).subtracting(seen).sorted()
        try require(skipped.isEmpty, "the tail skipped sequences \(skipped.prefix(10)) (committed after it had passed them)")
        try requireEqual(seen, committed, "the sequences the tail saw, in order")
    }
}
