import Foundation
import KeyRelayCore
internal import KeyRelayStore

extension KeyRelayEngine {
    /// Lifecycle events after a global sequence number as an `AsyncSequence`: first every event already stored,
    /// oldest first, then each new one as its transaction commits — the pull form of ``events(after:keyID:limit:context:)``.
    ///
    /// ```swift
    /// for try await event in engine.eventStream(after: lastSeen, context: ctx) {
    ///     print(event.kind, event.keyID, event.keyState)   // runs until the task is cancelled
    /// }
    /// ```
    ///
    /// The stream never ends by itself: it finishes (returns nil) when the consuming task is cancelled. It wakes on
    /// this engine's commits without polling; another process writing the same database is seen every
    /// `pollInterval` (nil: only this process's writes wake it). An event is never skipped or repeated: the store
    /// assigns sequences in commit order and the stream reads strictly after the last one it yielded.
    /// - Parameters:
    ///   - sequence: yield events with a greater sequence (0: from the first).
    ///   - keyID: only one key's events (an id or an alias, resolved in the context's instance); an unknown key
    ///     fails the stream with `KEY_NOT_FOUND_ERR`.
    ///   - context: limits the stream to the context's instance (nil: every instance, for operators' tools).
    ///   - pollInterval: how often to look for commits made by another process.
    public nonisolated func eventStream(after sequence: Int64 = 0, keyID: String? = nil, context: RequestContext? = nil,
                                        pollInterval: Duration? = .seconds(1)) -> LifecycleEventStream {
        LifecycleEventStream(engine: self, after: sequence, keyID: keyID, context: context, pollInterval: pollInterval)
    }

    /// The store's commit counter, for ``LifecycleEventStream``.
    nonisolated var commitFeed: CommitFeed { storage.commits }
}

/// The lifecycle events of an engine as they are committed (``KeyRelayEngine/eventStream(after:keyID:context:pollInterval:)``).
public struct LifecycleEventStream: AsyncSequence, Sendable {
    public typealias Element = LifecycleEvent
    public typealias Failure = any Error

    let engine: KeyRelayEngine
    let after: Int64
    let keyID: String?
    let context: RequestContext?
    let pollInterval: Duration?

    /// Events are read from the store a page at a time.
    static let pageSize = 256

    public func makeAsyncIterator() -> Iterator {
        Iterator(stream: self, cursor: after)
    }

    /// Yields buffered events, refilling the buffer from the store when it runs dry and waiting for a commit when
    /// the store has nothing newer.
    public struct Iterator: AsyncIteratorProtocol {
        let stream: LifecycleEventStream
        var cursor: Int64
        var buffer: [LifecycleEvent] = []
        var next = 0

        init(stream: LifecycleEventStream, cursor: Int64) {
            self.stream = stream
            self.cursor = cursor
        }

        public mutating func next() async throws -> LifecycleEvent? {
            while true {
                if next < buffer.count {
                    defer { next += 1 }
                    return buffer[next]
                }
                if Task.isCancelled { return nil }
                // Read the commit counter before the query: a commit that lands between the query and the wait
                // moves it, so the wait returns at once and the next query sees that commit.
                let feed = stream.engine.commitFeed
                let seen = feed.generation
                let page = try await stream.engine.events(after: cursor, keyID: stream.keyID,
                                                         limit: LifecycleEventStream.pageSize, context: stream.context)
                if let last = page.last {
                    buffer = page
                    next = 0
                    cursor = last.sequence
                    continue
                }
                await feed.wait(after: seen, timeout: stream.pollInterval)
            }
        }
    }
}
