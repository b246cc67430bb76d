import Foundation
import KeyRelay
import KeyRelayBus
import ServiceLifecycle

/// The background work a server runs beside the API: expiring keys, delivering notifications over the bus,
/// retrying, and declaring dead letters. ``DispatcherBackground`` plugs the bus dispatcher in here.
///
/// A `Service` of the server's `ServiceGroup`: `run()` ends on a graceful shutdown (SIGTERM/SIGINT) after the work
/// in flight, and at once on cancellation.
public protocol BackgroundWork: Service {
    /// Runs until a graceful shutdown or cancellation, on a real clock.
    func run() async throws
    /// Moves a manual clock forward by `interval` and performs everything that falls due on the way
    /// (the dev clock endpoint calls this).
    func advance(_ clock: ManualClock, by interval: TimeInterval) async throws
    /// Performs everything due now.
    func drain() async throws
    /// Something may be due now (called after every write request).
    func poke()
}

extension BackgroundWork {
    public func poke() {}
}

/// Background work with the engine alone: key expiry, no notification delivery.
public struct EngineHousekeeping: BackgroundWork {
    let engine: KeyRelayEngine
    let period: Duration

    /// - Parameter period: how often `run()` looks for due work on a real clock.
    public init(engine: KeyRelayEngine, period: Duration = .seconds(1)) {
        self.engine = engine
        self.period = period
    }

    public func run() async throws {
        // A graceful shutdown cancels the sleep between rounds; a round in flight is one short transaction.
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await drain()
                try await Task.sleep(for: period)
            }
        }
    }

    public func advance(_ clock: ManualClock, by interval: TimeInterval) async throws {
        clock.advance(by: interval)
        try await drain()
    }

    public func drain() async throws {
        _ = try await engine.expireDueKeys()
    }
}

/// Background work through the bus dispatcher: notification delivery (with retries, dead letters and the
/// acknowledgement window) and key expiry as its scheduled work.
public struct DispatcherBackground: BackgroundWork {
    public let dispatcher: Dispatcher
    /// The engine whose store's commits wake the dispatcher (``KeyRelayEngine/run(_:)``), if any.
    let engine: KeyRelayEngine?

    /// `dispatcher`, woken by `engine`'s commits (another replica's included) when `engine` is given.
    public init(dispatcher: Dispatcher, wakingOnCommitsOf engine: KeyRelayEngine? = nil) {
        self.dispatcher = dispatcher
        self.engine = engine
    }

    /// A dispatcher over `engine`'s outbox on `bus` (a new, empty bus by default: services subscribe to it), woken by
    /// the engine's commits.
    public init(engine: KeyRelayEngine, bus: ServiceBus = ServiceBus()) {
        dispatcher = engine.makeDispatcher(bus: bus)
        self.engine = engine
    }

    /// Delivers until a graceful shutdown, which lets the delivery in flight finish (``Dispatcher/run()``).
    public func run() async throws {
        if let engine { await engine.run(dispatcher) } else { await dispatcher.run() }
    }

    public func advance(_ clock: ManualClock, by interval: TimeInterval) async throws {
        try await dispatcher.advance(clock, by: interval)
    }

    public func drain() async throws { _ = try await dispatcher.drain() }

    public func poke() { dispatcher.poke() }
}
