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
/// - ``drain()`` delivers everything due at the clock's current instant, repeating until nothing more is due at that
///   instant (an event held back behind an earlier one for the same resource becomes due as soon as the earlier one
///   is handed over). Up to ``DeliveryPolicy/concurrency`` claimed notifications (due time, then id; never two of one
///   resource in flight, see ``Outbox``) are handed over **concurrently**, so the acknowledgements the services send
///   meanwhile are concurrent writes, which a store with group commit commits together. How the window moves is
///   ``DeliveryPolicy/scheduling``: *continuously* (on a real clock, by default) each finished hand-over's outcome
///   is recorded, with the others that finished meanwhile, by an outbox call that also claims as many as the window
///   has room for, so a slow receiver holds back only its own resource; in *rounds* (on a ``ManualClock``, by
///   default) the dispatcher waits for a round's slowest hand-over, then records the round and claims the next in
///   one outbox call (one commit).
/// - ``advance(_:by:)`` steps a ``ManualClock`` through every instant at which something falls due (retries,
///   acknowledgement deadlines, scheduled work such as key expirations) up to the target, draining at each.
/// - ``start()`` / ``run()`` deliver in the background on a real clock: the loop sleeps until the next due date
///   or until ``poke()`` (call it after a write), never spins, and ends promptly when cancelled (``stop()``).
/// - As a swift-service-lifecycle `Service` in a `ServiceGroup` (what `keyrelay serve` does), ``run()`` ends on a
///   graceful shutdown once the deliveries in flight are recorded (``requestStop()`` does the same by hand).
///
/// Deterministic in rounds: with a manual clock and the same seed, the same writes give the same delivery log and
/// timings, whatever the order in which concurrent hand-overs finish. Within a round the bus's faults are decided, and
/// the outcomes (with their jitter draws) recorded in the log, in the round's (due time, id) order. Continuously, the
/// faults are still decided in claim order, but the log (and which retry draws which jitter) follows the order in
/// which hand-overs finish.
///
/// Claims: every notification is claimed in the outbox before it is handed over, leased for
/// ``DeliveryPolicy/claimLease`` on the dispatcher's clock, and the claim ends with its recorded outcome. Several
/// dispatchers on one database therefore never hand the same notification over at once, and one that dies loses
/// nothing (its claims fall due again when the lease ends). Within one dispatcher, drains (the background loop, a
/// manual ``drain()`` and ``advance(_:by:)``) also run one at a time.
public actor Dispatcher {
    // Not public: the engine gives its dispatcher an outbox that records outcomes without a rule of its own.
    nonisolated let outbox: any Outbox
    public nonisolated let bus: ServiceBus
    public nonisolated let clock: any KeyRelayClock
    public nonisolated let policy: DeliveryPolicy
    private let scheduled: [ScheduledWork]
    /// ``DeliveryPolicy/Scheduling-swift.enum/continuous`` (resolved from `.automatic` by the clock), or rounds.
    private let continuous: Bool
    private var generator: SeededGenerator
    private var delayed: Set<Int64> = []
    private var records: [DeliveryRecord] = []
    private let logLimit: Int
    private var loop: Task<Void, Never>?
    private let wakeup = WakeSignal()
    /// Set by a graceful shutdown: the loop finishes the deliveries in flight, starts no other, and returns.
    private let stopping = Atomic<Bool>(false)
    /// The longest the background loop sleeps without looking again (a clock may be moved by hand).
    private let maximumIdle: TimeInterval
    /// Every delivery step: handed over at info, a failed attempt at warning, a dead letter at error.
    private let logger: Logger
    /// True while a drain (or an advance) runs; the others wait in `drainWaiters`, first come first served.
    private var draining = false
    private var drainWaiters: [CheckedContinuation<Void, Never>] = []

    /// - Parameters:
    ///   - policy: retries, the acknowledgement window, how many hand-overs run at once (``DeliveryPolicy/concurrency``)
    ///     and how long a claim lasts (``DeliveryPolicy/claimLease``).
    ///   - seed: seeds the jitter generator.
    ///   - scheduled: other work with due instants (key expirations), run before deliveries at each instant.
    ///   - logLimit: how many ``DeliveryRecord``s are kept (the oldest are dropped).
    ///   - maximumIdle: the longest the background loop sleeps without looking again.
    ///   - logger: where each delivery step is logged (never a notification's body or a webhook secret).
    public init(outbox: any Outbox, bus: ServiceBus, clock: any KeyRelayClock, policy: DeliveryPolicy = DeliveryPolicy(),
                seed: UInt64 = 0, scheduled: [ScheduledWork] = [], logLimit: Int = 10_000,
                maximumIdle: TimeInterval = 30, logger: Logger = Dispatcher.loggingDisabled) {
        self.outbox = outbox
        self.bus = bus
        self.clock = clock
        self.policy = policy
        self.scheduled = scheduled
        switch policy.scheduling {
        case .continuous: continuous = true
        case .rounds: continuous = false
        case .automatic: continuous = !(clock is ManualClock)
        }
        self.generator = SeededGenerator(seed: seed)
        self.logLimit = max(1, logLimit)
        self.maximumIdle = maximumIdle
        self.logger = logger
    }

    /// The default logger: it logs nothing (pass one to see each delivery step).
    public static let loggingDisabled = Logger(label: "keyrelay.delivery", factory: { _ in SwiftLogNoOpLogHandler() })

    /// The delivery log, oldest first (at most `logLimit` records).
    public var log: [DeliveryRecord] { records.count > logLimit ? Array(records.suffix(logLimit)) : records }

    /// Empties the delivery log.
    public func clearLog() { records.removeAll() }

    /// The clock's now at the store's millisecond precision.
    private func now() -> Date {
        Date(timeIntervalSince1970: (clock.now().timeIntervalSince1970 * 1000).rounded(.down) / 1000)
    }

    // MARK: - One drain at a time

    /// Waits until no other drain of this dispatcher runs, and marks one running.
    private func beginDraining() async {
        if !draining {
            draining = true
            return
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            drainWaiters.append(continuation)
        }
        // The drain that ended handed its turn over: `draining` is still true, and it is this drain's now.
    }

    private func endDraining() {
        if drainWaiters.isEmpty {
            draining = false
        } else {
            drainWaiters.removeFirst().resume()
        }
    }

    // MARK: - Draining

    /// Runs the scheduled work due now, then delivers every notification due at the clock's current instant, until
    /// nothing more is due at this instant. Returns how many delivery steps were taken.
    ///
    /// A drain waits for one already running on this dispatcher (the background loop's, or an ``advance(_:by:)``)
    /// to end first.
    @discardableResult
    public func drain() async throws -> Int {
        await beginDraining()
        defer { endDraining() }
        return try await drainNow()
    }

    /// ``drain()`` for a caller that is the running drain.
    @discardableResult
    private func drainNow() async throws -> Int {
        let now = now()
        for work in scheduled {
            if let date = try await work.nextDate(), date <= now { try await work.perform(now) }
        }
        var steps = 0
        var seen: [Int64: Int] = [:]
        // Shutting down: the deliveries in flight have been recorded; the rest stay due for the next start.
        if stopping.load(ordering: .relaxed) { return 0 }
        var claimed = try await outbox.claimDueNotifications(at: now, limit: policy.concurrency, leaseUntil: leaseUntil(now))
        if continuous { return try await deliverContinuously(claimed, at: now) }
        while true {
            // A notification seen again at the same instant more often than it has attempts is not progressing
            // (the outbox did not record its outcome): stop rather than spin.
            let fresh = claimed.filter { seen[$0.id, default: 0] <= policy.maxAttempts + 1 }
            if fresh.isEmpty { break }
            for notification in fresh { seen[notification.id, default: 0] += 1 }
            // Records this round and, unless shutting down, claims the next in the same write.
            claimed = try await handle(fresh, at: now)
            steps += fresh.count
        }
        return steps
    }

    /// When a claim taken now ends: the lease runs from the clock's reading now (a drain on a real clock can outlast
    /// one lease), and never from before the drain's instant.
    private func leaseUntil(_ drainInstant: Date) -> Date {
        Self.adding(milliseconds: policy.claimLeaseMilliseconds, to: max(drainInstant, now()))
    }

    /// What one claimed notification will have recorded.
    private struct Step: Sendable {
        var outcome: DeliveryOutcome
        var attempt: Int
        var result: DeliveryRecord.Result
    }

    /// Hands one round of claimed notifications (distinct resources, in due order) over concurrently, then records
    /// every outcome and claims the next round (empty when shutting down) in one outbox call. The bus's plans (fault
    /// counters) are taken, and the outcomes decided (jitter drawn), in the round's order, so the log does not depend
    /// on which hand-over finishes first.
    private func handle(_ round: [ResourceNotification], at now: Date) async throws -> [ResourceNotification] {
        // 1. What the bus does with each (nil: a sent notification whose acknowledgement window has passed).
        let plans: [DeliveryPlan?] = round.map { plan($0, at: now) }
        // 2. The hand-overs, all at once.
        let failures = await handOver(round, plans)
        // 3. The outcomes, in order.
        let ackDeadline = acknowledgementDeadline(from: now)
        let steps = round.indices.map { step(for: round[$0], plans[$0], failure: failures[$0], at: now, ackDeadline: ackDeadline) }
        // 4. The outcomes, and the next round's claim (which sees them: a notification held back behind one handed
        //    over now is in it), in one call; then the log, in order.
        let recorded = zip(round, steps).map { RecordedDelivery(notificationID: $0.id, $1.outcome) }
        let next = try await outbox.recordDeliveries(recorded, thenClaimAt: now,
                                                     limit: stopping.load(ordering: .relaxed) ? 0 : policy.concurrency,
                                                     leaseUntil: leaseUntil(now))
        for (index, n) in round.enumerated() { record(n, at: now, steps[index].attempt, steps[index].result) }
        return next
    }

    /// What the bus does with a claimed notification (nil: a sent notification whose acknowledgement window has
    /// passed, which is not handed over again). Takes the bus's fault counters: call it once per attempt, in order.
    private func plan(_ n: ResourceNotification, at now: Date) -> DeliveryPlan? {
        n.status == .sent ? nil : bus.plan(for: n.serviceName, at: now, alreadyDelayed: delayed.contains(n.id))
    }

    private func acknowledgementDeadline(from now: Date) -> Date {
        Self.adding(milliseconds: Int64((policy.acknowledgementWindow * 1000).rounded()), to: now)
    }

    /// The outcome of one attempt: its plan, and for a hand-over its failure (nil: received). Draws the jitter of a
    /// retry, so the order of the calls decides the retry instants.
    private func step(for n: ResourceNotification, _ plan: DeliveryPlan?, failure handOverFailure: String?, at now: Date,
                      ackDeadline: Date) -> Step {
        guard let plan else {
            let error = policy.acknowledgementTimeoutMessage
            return Step(outcome: .unacknowledged(at: now, error: error), attempt: 0, result: .dead(error: error))
        }
        let attempt = n.attempts + 1
        var failure: String?
        switch plan {
        case .delay(let interval):
            delayed.insert(n.id)
            let until = Self.adding(milliseconds: Int64((interval * 1000).rounded()), to: now)
            return Step(outcome: .failed(at: now, error: "hand-over delayed by \(DurationText.goStyle(interval)) (injected delay)", retryAt: until),
                        attempt: attempt, result: .delayed(until: until))
        case .drop:
            delayed.remove(n.id)
            return Step(outcome: .sent(at: now, ackDeadline: ackDeadline), attempt: attempt, result: .dropped)
        case .fail(let error):
            failure = error
        case .deliver(let times):
            failure = handOverFailure
            if failure == nil {
                delayed.remove(n.id)
                return Step(outcome: .sent(at: now, ackDeadline: ackDeadline), attempt: attempt, result: .delivered(times: times))
            }
        }
        let error = failure ?? "delivery failed"
        if attempt >= policy.maxAttempts {
            delayed.remove(n.id)
            let message = "delivery failed after \(attempt) attempt\(attempt == 1 ? "" : "s"): \(error)"
            return Step(outcome: .dead(at: now, error: message), attempt: attempt, result: .dead(error: message))
        }
        let retryAt = Self.adding(milliseconds: policy.retryDelayMilliseconds(afterAttempt: attempt, using: &generator), to: now)
        return Step(outcome: .failed(at: now, error: error, retryAt: retryAt), attempt: attempt, result: .failed(error: error, retryAt: retryAt))
    }

    /// Runs the `.deliver` plans' hand-overs concurrently; returns each one's failure (nil: received).
    private nonisolated func handOver(_ round: [ResourceNotification], _ plans: [DeliveryPlan?]) async -> [String?] {
        var failures = [String?](repeating: nil, count: round.count)
        let work = round.indices.compactMap { index -> (Int, Int)? in
            guard case .deliver(let times)? = plans[index] else { return nil }
            return (index, times)
        }
        if work.count == 1 {
            let (index, times) = work[0]
            failures[index] = await handOver(round[index], times: times)
            return failures
        }
        await withTaskGroup(of: (Int, String?).self) { group in
            for (index, times) in work {
                let n = round[index]
                group.addTask { (index, await self.handOver(n, times: times)) }
            }
            for await (index, failure) in group { failures[index] = failure }
        }
        return failures
    }

    /// Hands one notification over `times` times; returns the failure (nil: received).
    private nonisolated func handOver(_ n: ResourceNotification, times: Int) async -> String? {
        guard let subscriber = bus.subscriber(for: n.serviceName) else {
            return "no subscriber for service '\(n.serviceName)' on the bus"
        }
        do {
            for _ in 0..<times { try await subscriber.deliver(n) }
            return nil
        } catch {
            return Self.describe(error)
        }
    }

    // MARK: - Continuous hand-overs

    /// The resource a notification goes to (per-resource order is per key and resource).
    private struct Target: Hashable {
        var keyID: String
        var resourceCRN: String
        init(_ n: ResourceNotification) {
            keyID = n.event.keyID
            resourceCRN = n.resourceCRN
        }
    }

    /// A claimed notification in the continuous window.
    private struct Slot: Sendable {
        /// Claim order within the drain: a batch's outcomes are decided and logged in this order.
        var order: Int
        var notification: ResourceNotification
        var plan: DeliveryPlan? = nil
        var failure: String? = nil
    }

    private enum WindowEvent: Sendable {
        case handedOver(Slot)
        case recorded(Result<[ResourceNotification], any Error>)
    }

    /// ``DeliveryPolicy/Scheduling-swift.enum/continuous``: keeps up to ``DeliveryPolicy/concurrency`` claimed
    /// notifications in the window. As each hand-over finishes its outcome is recorded, together with every other
    /// one that finished while the previous outbox call ran, and that same call claims as many as the window has room
    /// for (one outbox call at a time: each is one commit). A slow hand-over holds back only its own resource.
    ///
    /// Per-resource order: the outbox does not return a notification while an earlier one of its resource is pending,
    /// and a claimed notification stays pending until its outcome is recorded. A later notification of a resource
    /// whose hand-over is still running here (its earlier one acknowledged meanwhile, or sent and past its deadline)
    /// waits in the window until that hand-over ends; a notification this drain still holds (its lease ran out during
    /// a long hand-over, so the outbox offered it again) is not taken twice.
    private func deliverContinuously(_ first: [ResourceNotification], at now: Date) async throws -> Int {
        let bound = policy.concurrency
        let ackDeadline = acknowledgementDeadline(from: now)
        var seen: [Int64: Int] = [:]
        var order = 0
        var claimed = first
        var held: Set<Int64> = []          // claimed by this drain, outcome not yet recorded
        var waiting: [Slot] = []           // claimed, not started (its resource has a hand-over running)
        var running: Set<Target> = []      // resources with a hand-over running
        var inFlight = 0
        var finished: [Slot] = []          // outcomes to record
        var recording: [(ResourceNotification, Step)]?
        var failure: (any Error)?
        var steps = 0
        await withTaskGroup(of: WindowEvent.self) { group in
            while true {
                // 1. Take what the last claim returned.
                for n in claimed where !held.contains(n.id) {
                    // Seen again at this instant more often than it has attempts: not progressing, stop rather than spin.
                    guard seen[n.id, default: 0] <= policy.maxAttempts + 1 else { continue }
                    seen[n.id, default: 0] += 1
                    held.insert(n.id)
                    order += 1
                    waiting.append(Slot(order: order, notification: n))
                }
                claimed = []
                // 2. Start every one whose resource is free (the window's room was decided by the claim's limit).
                if failure == nil {
                    var blocked: [Slot] = []
                    for var slot in waiting {
                        let target = Target(slot.notification)
                        if running.contains(target) {
                            blocked.append(slot)
                            continue
                        }
                        slot.plan = plan(slot.notification, at: now)
                        guard case .deliver(let times)? = slot.plan else {
                            finished.append(slot)
                            continue
                        }
                        running.insert(target)
                        inFlight += 1
                        let started = slot
                        group.addTask {
                            var done = started
                            done.failure = await self.handOver(started.notification, times: times)
                            return .handedOver(done)
                        }
                    }
                    waiting = blocked
                }
                // 3. Record what finished and refill the window, one outbox call at a time.
                if recording == nil, failure == nil, !finished.isEmpty {
                    finished.sort { $0.order < $1.order }
                    let batch = finished.map { ($0.notification, step(for: $0.notification, $0.plan, failure: $0.failure, at: now, ackDeadline: ackDeadline)) }
                    finished = []
                    recording = batch
                    let outcomes = batch.map { RecordedDelivery(notificationID: $0.0.id, $0.1.outcome) }
                    let room = stopping.load(ordering: .relaxed) ? 0 : max(0, bound - inFlight - waiting.count)
                    let lease = leaseUntil(now)
                    let outbox = self.outbox
                    group.addTask {
                        do {
                            return .recorded(.success(try await outbox.recordDeliveries(outcomes, thenClaimAt: now, limit: room, leaseUntil: lease)))
                        } catch {
                            return .recorded(.failure(error))
                        }
                    }
                }
                // 4. Wait for the next hand-over or outbox call to end; done when nothing runs.
                guard let event = await group.next() else { break }
                switch event {
                case .handedOver(let slot):
                    inFlight -= 1
                    running.remove(Target(slot.notification))
                    finished.append(slot)
                case .recorded(.success(let next)):
                    for (n, step) in recording ?? [] {
                        held.remove(n.id)
                        record(n, at: now, step.attempt, step.result)
                    }
                    steps += recording?.count ?? 0
                    recording = nil
                    claimed = next
                case .recorded(.failure(let error)):
                    // The hand-overs in flight finish; nothing more starts. Unrecorded claims fall due at their lease.
                    failure = error
                    recording = nil
                }
            }
        }
        if let failure { throw failure }
        return steps
    }

    /// Appends one step to the log, logs it and counts it.
    private func record(_ n: ResourceNotification, at now: Date, _ attempt: Int, _ result: DeliveryRecord.Result) {
        records.append(DeliveryRecord(date: now, notificationID: n.id, eventID: n.event.id, eventKind: n.event.kind,
                                      keyID: n.event.keyID, resourceCRN: n.resourceCRN, service: n.serviceName,
                                      attempt: attempt, result: result))
        // Trimmed a limit's worth at a time (the log keeps the last `logLimit`): removing the oldest record on every
        // append, once full, moved the whole log each time (10,000 records per delivery with the default limit).
        // (`count - limit >= limit`, not `count >= 2 * limit`: an embedder may pass any limit, and Int.max doubled traps.)
        if records.count - logLimit >= logLimit { records.removeFirst(records.count - logLimit) }
        log(records[records.count - 1])
        Self.count(result, attempt: attempt, service: n.serviceName)
    }

    /// Logs one delivery step.
    private func log(_ step: DeliveryRecord) {
        // Its metadata is built only for a logger that will write it (a handed-over step logs at info).
        let level: Logger.Level
        switch step.result {
        case .delivered, .dropped, .delayed: level = .info
        case .failed: level = .warning
        case .dead: level = .error
        }
        guard logger.logLevel <= level else { return }
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
    ///
    /// It holds this dispatcher's drain turn throughout: the background loop does not drain while the clock moves.
    public func advance(_ clock: ManualClock, to target: Date) async throws {
        await beginDraining()
        defer { endDraining() }
        try await drainNow()
        var stalls = 0
        while let next = try await nextDueDate(), next <= target {
            if next > clock.now() {
                clock.set(to: next)
                stalls = 0
            } else {
                stalls += 1
                if stalls > 2 { break }   // due now yet not drained (claimed elsewhere, or stuck): do not spin
            }
            try await drainNow()
        }
        if target > clock.now() { clock.set(to: target) }
        try await drainNow()
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

    /// How long the background loop waits when something is due but claimed by another dispatcher.
    static let claimedElsewherePause: TimeInterval = 0.25

    /// Delivers until cancelled or (in a `ServiceGroup`) until a graceful shutdown: drains, then sleeps until the
    /// next due date (at most `maximumIdle`) or a poke. Errors of a round are retried after a short pause.
    ///
    /// A graceful shutdown lets the deliveries in flight (those claimed and handed over) finish and their outcomes be
    /// recorded (a webhook that answers 2xx is recorded sent), then returns; what is still due stays due for the next start. Cancellation is
    /// immediate (a delivery cut off mid-way stays due: delivery is at-least-once).
    public func run() async {
        stopping.store(false, ordering: .relaxed)
        await withGracefulShutdownHandler {
            await self.loop()
        } onGracefulShutdown: {
            self.requestStop()
        }
    }

    /// Asks the background loop to stop after the deliveries in flight (what a graceful shutdown does).
    public nonisolated func requestStop() {
        stopping.store(true, ordering: .relaxed)
        wakeup.signal()
    }

    private func loop() async {
        while !Task.isCancelled, !stopping.load(ordering: .relaxed) {
            var wait: TimeInterval = maximumIdle
            do {
                let steps = try await drain()
                if let next = try await nextDueDate() {
                    wait = min(maximumIdle, max(0.001, next.timeIntervalSince(clock.now())))
                    // Due, yet nothing could be claimed: another dispatcher holds it (or it does not progress).
                    // Look again shortly rather than spin; a poke still wakes the loop at once.
                    if steps == 0, next <= clock.now() { wait = min(maximumIdle, Self.claimedElsewherePause) }
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
/// deliveries in flight.
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
