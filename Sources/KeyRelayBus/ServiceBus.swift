import Foundation
import KeyRelayCore
import Synchronization

/// A simulated associated service that receives the lifecycle notifications of its resources.
///
/// Delivery is at-least-once: a subscriber must be idempotent by event id and must ignore an event older (by
/// ``LifecycleEvent/keySequence``) than the newest it has applied for that key. A subscriber acknowledges through
/// its ``AdopterClient`` (Key Protect's `event_ack`); returning without throwing only means "received".
public protocol ServiceSubscriber: Sendable {
    /// Handles one notification. Throwing makes the bus record a failed attempt and retry with backoff.
    func deliver(_ notification: ResourceNotification) async throws
}

/// Well-known bus topics: the CRN service names of the simulated services.
public enum ServiceTopic {
    /// IBM Cloud Object Storage.
    public static let objectStorage = "cloud-object-storage"
    /// IBM Cloud Databases for PostgreSQL.
    public static let postgreSQL = "databases-for-postgresql"
}

/// The faults injected into one service's deliveries. Counters count down as deliveries consume them.
///
/// When several apply to one delivery, they are considered in this order: partition, delay, fail, drop, duplicate.
public struct FaultInjector: Sendable, Equatable {
    /// The most hand-overs one counter (drop, fail, duplicate) can hold: 1,000,000. Front ends refuse larger counts
    /// with a clear error; the bus itself saturates at this bound, so no sequence of injections can overflow.
    public static let maximumCount = 1_000_000

    /// The next this-many hand-overs are *dropped*: the bus believes it handed the notification over (it records
    /// it sent) but the service never receives it, so no acknowledgement comes and, after the acknowledgement
    /// window, the notification becomes dead ("Lifecycle action on a key with registrations did not complete: not acknowledged within 4h0m0s (408)").
    public var dropNext: Int = 0
    /// The next this-many hand-overs fail (as if the service answered an error): retried with backoff, dead after
    /// the last attempt.
    public var failNext: Int = 0
    /// Every hand-over is postponed by this interval once: the notification is rescheduled `delay` later (recorded
    /// as a failed attempt with the error "delayed by …", so it counts toward the attempts), then delivered.
    public var delay: TimeInterval? = nil
    /// The next this-many hand-overs are delivered twice.
    public var duplicateNext: Int = 0
    /// The service is unreachable: every hand-over fails (and is retried with backoff).
    public var partitioned: Bool = false
    /// When set, the partition heals by itself at this instant.
    public var partitionedUntil: Date? = nil

    public init(dropNext: Int = 0, failNext: Int = 0, delay: TimeInterval? = nil, duplicateNext: Int = 0,
                partitioned: Bool = false, partitionedUntil: Date? = nil) {
        self.dropNext = dropNext
        self.failNext = failNext
        self.delay = delay
        self.duplicateNext = duplicateNext
        self.partitioned = partitioned
        self.partitionedUntil = partitionedUntil
    }

    /// Whether the service is partitioned at `date`.
    public func isPartitioned(at date: Date) -> Bool {
        guard partitioned else { return false }
        if let until = partitionedUntil { return date < until }
        return true
    }
}

/// What the bus will do with one hand-over (decided, and fault counters consumed, atomically).
public enum DeliveryPlan: Sendable, Equatable {
    /// Hand it to the subscriber this many times (1, or 2 when duplicated).
    case deliver(times: Int)
    /// Record it sent; the service never receives it.
    case drop
    /// Fail the attempt with this error.
    case fail(String)
    /// Postpone the hand-over by this interval.
    case delay(TimeInterval)
}

/// The simulated service bus: one topic per service name, one subscriber per topic, and fault injection per
/// service. Thread-safe; the ``Dispatcher`` moves notifications through it.
public final class ServiceBus: Sendable {
    private struct State {
        var subscribers: [String: any ServiceSubscriber] = [:]
        var faults: [String: FaultInjector] = [:]
    }
    private let state = Mutex(State())

    public init() {}

    /// Subscribes `subscriber` to `service`'s topic, replacing any earlier subscriber.
    public func subscribe(_ subscriber: any ServiceSubscriber, to service: String) {
        state.withLock { $0.subscribers[service] = subscriber }
    }

    /// Removes `service`'s subscriber: its deliveries then fail ("no subscriber …") until one subscribes.
    public func unsubscribe(_ service: String) {
        state.withLock { _ = $0.subscribers.removeValue(forKey: service) }
    }

    /// The subscriber of `service`, if any.
    public func subscriber(for service: String) -> (any ServiceSubscriber)? {
        state.withLock { $0.subscribers[service] }
    }

    /// Services with a subscriber, sorted.
    public var topics: [String] { state.withLock { $0.subscribers.keys.sorted() } }

    /// The faults currently injected into `service`.
    public func faults(for service: String) -> FaultInjector {
        state.withLock { $0.faults[service] ?? FaultInjector() }
    }

    /// Replaces the faults injected into `service`.
    public func setFaults(_ faults: FaultInjector, for service: String) {
        state.withLock { $0.faults[service] = faults }
    }

    /// Changes the faults injected into `service`.
    public func updateFaults(for service: String, _ change: (inout FaultInjector) -> Void) {
        state.withLock { change(&$0.faults[service, default: FaultInjector()]) }
    }

    /// Drops the next `count` hand-overs to `service` (recorded sent, never received).
    public func dropNext(_ count: Int, for service: String) {
        updateFaults(for: service) { $0.dropNext = Self.saturatingAdd($0.dropNext, count) }
    }
    /// Fails the next `count` hand-overs to `service`.
    public func failNext(_ count: Int, for service: String) {
        updateFaults(for: service) { $0.failNext = Self.saturatingAdd($0.failNext, count) }
    }
    /// Postpones every hand-over to `service` by `interval` (nil or 0 to stop).
    /// The interval is kept within `DurationText.maximum`.
    public func delay(_ interval: TimeInterval?, for service: String) {
        let bounded = interval.flatMap { $0.isFinite && $0 > 0 ? min($0, DurationText.maximum) : nil }
        updateFaults(for: service) { $0.delay = bounded }
    }
    /// Delivers the next `count` hand-overs to `service` twice.
    public func duplicateNext(_ count: Int, for service: String) {
        updateFaults(for: service) { $0.duplicateNext = Self.saturatingAdd($0.duplicateNext, count) }
    }

    /// `current + count`, kept within `0...FaultInjector.maximumCount` whatever the inputs.
    static func saturatingAdd(_ current: Int, _ count: Int) -> Int {
        let bound = FaultInjector.maximumCount
        return min(bound, max(0, min(current, bound)) + max(0, min(count, bound)))
    }
    /// Partitions `service` away: until `date`, or (nil) until ``heal(_:)``.
    public func partition(_ service: String, until date: Date? = nil) {
        updateFaults(for: service) {
            $0.partitioned = true
            $0.partitionedUntil = date
        }
    }
    /// Ends `service`'s partition.
    public func heal(_ service: String) {
        updateFaults(for: service) {
            $0.partitioned = false
            $0.partitionedUntil = nil
        }
    }
    /// Removes every fault injected into `service`.
    public func clearFaults(for service: String) { setFaults(FaultInjector(), for: service) }

    /// Decides what happens to one hand-over to `service` at `date`, consuming the fault counters it uses.
    /// - Parameter alreadyDelayed: the notification was postponed by a delay fault before (a delay applies once).
    public func plan(for service: String, at date: Date, alreadyDelayed: Bool) -> DeliveryPlan {
        state.withLock { s in
            var f = s.faults[service] ?? FaultInjector()
            defer { s.faults[service] = f }
            if f.partitioned, let until = f.partitionedUntil, date >= until {
                f.partitioned = false
                f.partitionedUntil = nil
            }
            if f.isPartitioned(at: date) {
                let until = f.partitionedUntil.map { " until \(Timestamp.format($0))" } ?? ""
                return .fail("service '\(service)' is unreachable (network partition\(until))")
            }
            if let delay = f.delay, !alreadyDelayed { return .delay(delay) }
            if f.failNext > 0 {
                f.failNext -= 1
                return .fail("service '\(service)' failed to accept the notification (injected failure)")
            }
            if f.dropNext > 0 {
                f.dropNext -= 1
                return .drop
            }
            guard s.subscribers[service] != nil else {
                return .fail("no subscriber for service '\(service)' on the bus")
            }
            if f.duplicateNext > 0 {
                f.duplicateNext -= 1
                return .deliver(times: 2)
            }
            return .deliver(times: 1)
        }
    }
}
