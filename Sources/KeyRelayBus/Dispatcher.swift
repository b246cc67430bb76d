import Foundation
import KeyRelayCore
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// One step of the dispatcher's work, for transcripts and determinism checks.
public struct DeliveryRecord: Sendable, Equatable, CustomStringConvertible {
    /// What happened.
    public enum Result: Sendable, Equatable {
        /// Handed to the subscriber (`times` is 2 for a duplicated delivery); awaiting acknowledgement.
        case delivered(times: Int)
        /// Recorded sent, never received (drop fault).
        case dropped
        /// The attempt failed; retried at `retryAt`.
        case failed(error: String, retryAt: Date)
        /// Postponed by a delay fault until `until`.
        case delayed(until: Date)
        /// Dead letter: attempts exhausted, or no acknowledgement in time.
        case dead(error: String)
    }

    public var date: Date
    public var notificationID: Int64
    public var eventID: String
    public var eventKind: LifecycleEventKind
    public var keyID: String
    public var resourceCRN: String
    public var service: String
    /// The attempt number this step was (1-based; 0 for an acknowledgement timeout).
    public var attempt: Int
    public var result: Result

    public init(date: Date, notificationID: Int64, eventID: String, eventKind: LifecycleEventKind, keyID: String,
                resourceCRN: String, service: String, attempt: Int, result: Result) {
        self.date = date
        self.notificationID = notificationID
        self.eventID = eventID
        self.eventKind = eventKind
        self.keyID = keyID
        self.resourceCRN = resourceCRN
        self.service = service
        self.attempt = attempt
        self.result = result
    }

    public var description: String {
        let what: String
        switch result {
        case .delivered(let times): what = times == 1 ? "delivered" : "delivered x\(times)"
        case .dropped: what = "dropped"
        case .failed(let error, let retryAt): what = "failed (\(error)); retry at \(Self.format(retryAt))"
        case .delayed(let until): what = "delayed until \(Self.format(until))"
        case .dead(let error): what = "dead (\(error))"
        }
        return "\(Self.format(date)) #\(notificationID) \(eventKind.rawValue) \(eventID) → \(resourceCRN) attempt \(attempt): \(what)"
    }

    static func format(_ date: Date) -> String {
        let ms = Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) % 1000
        let text = Timestamp.format(date)
        return ms == 0 ? text : String(text.dropLast()) + String(format: ".%03dZ", ms)
    }
}

/// Moves due notifications from the ``Outbox`` through the ``ServiceBus`` to the subscribed services, and records
/// each outcome: sent (awaiting acknowledgement), failed (retry with backoff), dead.
///
/// - ``drain()`` delivers everything due at the clock's current instant, in a deterministic order (due time, then
///   id), repeating until nothing more is due at that instant (an event held back behind an earlier one for the
///   same resource becomes due as soon as the earlier one is handed over).
/// - ``advance(_:by:)`` steps a ``ManualClock`` through every instant at which something falls due (retries,
///   acknowledgement deadlines, scheduled work such as key expirations) up to the target, draining at each.
/// - ``start()`` / ``run()`` deliver in the background on a real clock: the loop sleeps until the next due date
///   or until ``poke()`` (call it after a write), never spins, and ends promptly when cancelled (``stop()``).
/// - As a swift-service-lifecycle `Service` in a `ServiceGroup` (what `keyrelay serve` does), ``run()`` ends on a
///   graceful shutdown once the delivery in flight is recorded (``requestStop()`` does the same by hand).
///
/// Deterministic: with a manual clock and the same seed, the same writes give the same delivery log and timings.
public actor Dispatcher {
    // Not public: the engine gives its dispatcher an outbox that records outcomes without a rule of its own.
    nonisolated let outbox: any Outbox
    public nonisolated let bus: ServiceBus
    public nonisolated let clock: any KeyRelayClock
    public nonisolated let policy: DeliveryPolicy
    private let scheduled: [ScheduledWork]
    private let batchSize: Int
    private var generator: SeededGenerator
    private var delayed: Set<Int64> = []
    private var records: [DeliveryRecord] = []
    private let logLimit: Int
    private var loop: Task<Void, Never>?
    private let wakeup = WakeSignal()
    /// Set by a graceful shutdown: the loop finishes the delivery in flight, starts no other, and returns.
    private let stopping = Atomic<Bool>(false)
    /// The longest the background loop sleeps without looking again (a clock may be moved by hand).
    private let maximumIdle: TimeInterval
    /// Every delivery step: handed over at info, a failed attempt at warning, a dead letter at error.
    private let logger: Logger

    /// - Parameters:
    ///   - seed: seeds the jitter generator.
    ///   - scheduled: other work with due instants (key expirations), run before deliveries at each instant.
    ///   - batchSize: how many due notifications are fetched at a time.
    ///   - logLimit: how many ``DeliveryRecord``s are kept (the oldest are dropped).
    ///   - maximumIdle: the longest the background loop sleeps without looking again.
    ///   - logger: where each delivery step is logged (never a notification's body or a webhook secret).
    public init(outbox: any Outbox, bus: ServiceBus, clock: any KeyRelayClock, policy: DeliveryPolicy = DeliveryPolicy(),
                seed: UInt64 = 0, scheduled: [ScheduledWork] = [], batchSize: Int = 100, logLimit: Int = 10_000,
                maximumIdle: TimeInterval = 30, logger: Logger = Dispatcher.loggingDisabled) {
        self.outbox = outbox
        self.bus = bus
        self.clock = clock
        self.policy = policy
        self.scheduled = scheduled
        self.batchSize = max(1, batchSize)
        self.generator = SeededGenerator(seed: seed)
        self.logLimit = max(1, logLimit)
        self.maximumIdle = maximumIdle
        self.logger = logger
    }

    /// The default logger: it logs nothing (pass one to see each delivery step).
    public static let loggingDisabled = Logger(label: "keyrelay.delivery", factory: { _ in SwiftLogNoOpLogHandler() })

    /// The delivery log, oldest first (at most `logLimit` records).
    public var log: [DeliveryRecord] { records }

    /// Empties the delivery log.
    public func clearLog() { records.removeAll() }

    /// The clock's now at the store's millisecond precision.
    private func now() -> Date {
        Date(timeIntervalSince1970: (clock.now().timeIntervalSince1970 * 1000).rounded(.down) / 1000)
    }

    // MARK: - Draining

    /// Runs the scheduled work due now, then delivers every notification due at the clock's current instant, until
    /// nothing more is due at this instant. Returns how many delivery steps were taken.
    @discardableResult
    public func drain() async throws -> Int {
        let now = now()
        for work in scheduled {
            if let date = try await work.nextDate(), date <= now { try await work.perform(now) }
        }
        var steps = 0
        var seen: [Int64: Int] = [:]
        while true {
            let due = try await outbox.dueNotifications(at: now, limit: batchSize)
            // A notification seen again at the same instant more often than it has attempts is not progressing
            // (the outbox did not record its outcome): stop rather than spin.
            let fresh = due.filter { seen[$0.id, default: 0] <= policy.maxAttempts + 1 }
            if fresh.isEmpty { break }
            for notification in fresh {
                // Shutting down: the delivery in flight has been recorded; the rest stay due for the next start.
                if stopping.load(ordering: .relaxed) { return steps }
                seen[notification.id, default: 0] += 1
                try await handle(notification, at: now)
                steps += 1
            }
        }
        return steps
    }

    private func handle(_ n: ResourceNotification, at now: Date) async throws {
        func record(_ attempt: Int, _ result: DeliveryRecord.Result) {
            records.append(DeliveryRecord(date: now, notificationID: n.id, eventID: n.event.id, eventKind: n.event.kind,
                                          keyID: n.event.keyID, resourceCRN: n.resourceCRN, service: n.serviceName,
                                          attempt: attempt, result: result))
            if records.count > logLimit { records.removeFirst(records.count - logLimit) }
            log(records[records.count - 1])
            Self.count(result, attempt: attempt, service: n.serviceName)
        }
        if n.status == .sent {
            // Handed over, and the acknowledgement window has passed.
            let error = policy.acknowledgementTimeoutMessage
            try await outbox.recordDelivery(notificationID: n.id, .unacknowledged(at: now, error: error))
            record(0, .dead(error: error))
            return
        }
        let attempt = n.attempts + 1
        let plan = bus.plan(for: n.serviceName, at: now, alreadyDelayed: delayed.contains(n.id))
        var failure: String?
        switch plan {
        case .delay(let interval):
            delayed.insert(n.id)
            let until = Self.adding(milliseconds: Int64((interval * 1000).rounded()), to: now)
            try await outbox.recordDelivery(notificationID: n.id,
                                            .failed(at: now, error: "hand-over delayed by \(DurationText.goStyle(interval)) (injected delay)", retryAt: until))
            record(attempt, .delayed(until: until))
            return
        case .drop:
            delayed.remove(n.id)
            try await outbox.recordDelivery(notificationID: n.id, .sent(at: now, ackDeadline: Self.adding(milliseconds: Int64((policy.acknowledgementWindow * 1000).rounded()), to: now)))
            record(attempt, .dropped)
            return
        case .fail(let error):
            failure = error
        case .deliver(let times):
            if let subscriber = bus.subscriber(for: n.serviceName) {
                do {
                    for _ in 0..<times { try await subscriber.deliver(n) }
                } catch {
                    failure = Self.describe(error)
                }
            } else {
                failure = "no subscriber for service '\(n.serviceName)' on the bus"
            }
            if failure == nil {
                delayed.remove(n.id)
                try await outbox.recordDelivery(notificationID: n.id, .sent(at: now, ackDeadline: Self.adding(milliseconds: Int64((policy.acknowledgementWindow * 1000).rounded()), to: now)))
                record(attempt, .delivered(times: times))
                return
            }
        }
        let error = failure ?? "delivery failed"
        if attempt >= policy.maxAttempts {
            delayed.remove(n.id)
            let message = "delivery failed after \(attempt) attempt\(attempt == 1 ? "" : "s"): \(error)"
            try await outbox.recordDelivery(notificationID: n.id, .dead(at: now, error: message))
            record(attempt, .dead(error: message))
        } else {
            let retryAt = Self.adding(milliseconds: policy.retryDelayMilliseconds(afterAttempt: attempt, using: &generator), to: now)
            try await outbox.recordDelivery(notificationID: n.id, .failed(at: now, error: error, retryAt: retryAt))
            record(attempt, .failed(error: error, retryAt: retryAt))
        }
    }

    /// Logs one delivery step.
    private func log(_ step: DeliveryRecord) {
        var metadata: Logger.Metadata = [
            "notification_id": .stringConvertible(step.notificationID), "event_id": .string(step.eventID),
            "event": .string(step.eventKind.rawValue), "key_id": .string(step.keyID), "resource_crn": .string(step.resourceCRN),
            "service": .string(step.service), "attempt": .stringConvertible(step.attempt),
        ]
        switch step.result {
        case .delivered(let times):
            metadata["outcome"] = "sent"
            if times > 1 { metadata["times"] = .stringConvertible(times) }
            logger.info("Notification sent", metadata: metadata)
        case .dropped:
            metadata["outcome"] = "dropped"
            logger.info("Notification dropped (injected fault)", metadata: metadata)
        case .delayed(let until):
            metadata["outcome"] = "delayed"
            metadata["until"] = .string(DeliveryRecord.format(until))
            logger.info("Notification delayed (injected fault)", metadata: metadata)
        case .failed(let error, let retryAt):
            metadata["outcome"] = "failed"
            metadata["error"] = .string(error)
            metadata["retry_at"] = .string(DeliveryRecord.format(retryAt))
            logger.warning("Notification delivery failed; will retry", metadata: metadata)
        case .dead(let error):
            metadata["outcome"] = "dead"
            metadata["error"] = .string(error)
            logger.error("Notification dead letter", metadata: metadata)
        }
    }

    /// Delivery attempts by service and outcome, and dead letters by service, in whatever metrics backend the process
    /// bootstrapped (swift-metrics; a no-op by default).
    static func count(_ result: DeliveryRecord.Result, attempt: Int, service: String) {
        let outcome: String
        switch result {
        case .delivered: outcome = "delivered"
        case .dropped: outcome = "dropped"
        case .failed: outcome = "failed"
        case .delayed: outcome = "delayed"
        case .dead: outcome = "dead"
        }
        if case .dead = result {
            Counter(label: "keyrelay_dead_letters_total", dimensions: [("service", service)]).increment()
        }
        // Attempt 0 is an acknowledgement timeout: a dead letter, not an attempt.
        if attempt > 0 {
            Counter(label: "keyrelay_delivery_attempts_total", dimensions: [("service", service), ("outcome", outcome)]).increment()
        }
    }

    /// `date + ms`, computed on whole milliseconds (no floating-point drift below the store's precision).
    static func adding(milliseconds: Int64, to date: Date) -> Date {
        let base = Int64((date.timeIntervalSince1970 * 1000).rounded())
        return Date(timeIntervalSince1970: TimeInterval(base + milliseconds) / 1000)
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? KeyRelayError { return error.description }
        return String(describing: error)
    }

    // MARK: - Manual clock

    /// The earliest instant at which a delivery or scheduled work falls due, or nil.
    public func nextDueDate() async throws -> Date? {
        var next = try await outbox.nextDeliveryDueDate()
        for work in scheduled {
            if let date = try await work.nextDate() { next = min(next ?? date, date) }
        }
        return next
    }

    /// Moves `clock` forward by `interval`, stopping at every instant at which something falls due on the way and
    /// draining there, then sets it to the target and drains.
    public func advance(_ clock: ManualClock, by interval: TimeInterval) async throws {
        precondition(interval >= 0, "a manual clock only moves forward")
        try await advance(clock, to: clock.now().addingTimeInterval(interval))
    }

    /// Moves `clock` forward to `target` (see ``advance(_:by:)``).
    public func advance(_ clock: ManualClock, to target: Date) async throws {
        try await drain()
        var stalls = 0
        while let next = try await nextDueDate(), next <= target {
            if next > clock.now() {
                clock.set(to: next)
                stalls = 0
            } else {
                stalls += 1
                if stalls > 2 { break }   // due now yet not drained: do not spin
            }
            try await drain()
        }
        if target > clock.now() { clock.set(to: target) }
        try await drain()
    }

    // MARK: - Background loop

    /// Wakes the background loop: something may be due now (call after a write).
    public nonisolated func poke() { wakeup.signal() }

    /// Starts the background loop (once; later calls do nothing while it runs).
    public func start() {
        guard loop == nil else { return }
        loop = Task { await self.run() }
    }

    /// Stops the background loop and waits for it to end.
    public func stop() async {
        guard let task = loop else { return }
        loop = nil
        task.cancel()
        await task.value
    }

    /// Delivers until cancelled or (in a `ServiceGroup`) until a graceful shutdown: drains, then sleeps until the
    /// next due date (at most `maximumIdle`) or a poke. Errors of a round are retried after a short pause.
    ///
    /// A graceful shutdown lets the delivery in flight finish and its outcome be recorded (a webhook that answers
    /// 2xx is recorded sent), then returns; what is still due stays due for the next start. Cancellation is
    /// immediate (a delivery cut off mid-way stays due: delivery is at-least-once).
    public func run() async {
        stopping.store(false, ordering: .relaxed)
        await withGracefulShutdownHandler {
            await self.loop()
        } onGracefulShutdown: {
            self.requestStop()
        }
    }

    /// Asks the background loop to stop after the delivery in flight (what a graceful shutdown does).
    public nonisolated func requestStop() {
        stopping.store(true, ordering: .relaxed)
        wakeup.signal()
    }

    private func loop() async {
        while !Task.isCancelled, !stopping.load(ordering: .relaxed) {
            var wait: TimeInterval = maximumIdle
            do {
                try await drain()
                if let next = try await nextDueDate() {
                    wait = min(maximumIdle, max(0.001, next.timeIntervalSince(clock.now())))
                }
            } catch {
                wait = min(maximumIdle, 1)
            }
            if Task.isCancelled || stopping.load(ordering: .relaxed) { break }
            await wakeup.wait(timeout: wait)
        }
    }
}

/// The dispatcher runs as a swift-service-lifecycle `Service`: `run()` until a graceful shutdown, which finishes the
/// delivery in flight.
extension Dispatcher: Service {}

/// A one-waiter wake-up signal: a poke that arrives while nobody waits is remembered for the next wait.
final class WakeSignal: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())

    func signal() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if let w = s.waiter {
                s.waiter = nil
                return w
            }
            s.pending = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns on a signal, after `timeout` seconds, or on cancellation, whichever comes first.
    func wait(timeout: TimeInterval) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForSignal() }
            group.addTask { try? await Task.sleep(for: .milliseconds(Int64((timeout * 1000).rounded(.up)))) }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForSignal() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.pending {
                        s.pending = false
                        return true
                    }
                    if Task.isCancelled { return true }
                    s.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume()
        }
    }
}
