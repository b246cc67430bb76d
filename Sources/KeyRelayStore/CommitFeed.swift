import Synchronization

/// The commits a store has made, as a counter that many waiters can wait on, so that a reader tailing the store
/// (``KeyRelayStorage/commits``, the engine's event stream) wakes when something was written instead of polling.
///
/// A backend calls ``signal()`` after every durable commit: the embedded SQLite store after each write; a backend
/// shared by several processes also when another process announces a commit (for PostgreSQL, `LISTEN/NOTIFY`).
/// A waiter never misses a commit that happened after it read ``generation``: ``wait(after:timeout:)`` returns at
/// once when the counter has already moved.
public final class CommitFeed: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var nextWaiter: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }
    private let state = Mutex(State())

    public init() {}

    /// How many commits have been signalled so far (wrapping; only compared for change).
    public var generation: UInt64 { state.withLock { $0.generation } }

    /// Records a commit and wakes every waiter.
    public func signal() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.generation &+= 1
            defer { s.waiters.removeAll(keepingCapacity: true) }
            return Array(s.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns when a commit is signalled after `seen` (immediately if one already was), when the task is
    /// cancelled, or after `timeout` (nil: no timeout), whichever comes first.
    public func wait(after seen: UInt64, timeout: Duration? = nil) async {
        guard let timeout else { return await waitForSignal(after: seen) }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForSignal(after: seen) }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForSignal(after seen: UInt64) async {
        let id = state.withLock { s -> UInt64 in
            s.nextWaiter &+= 1
            return s.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.generation != seen || Task.isCancelled { return true }
                    s.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
