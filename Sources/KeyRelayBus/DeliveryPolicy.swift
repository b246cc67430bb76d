import Foundation
import KeyRelayCore

/// How the dispatcher retries: bounded attempts, capped exponential backoff with jitter, and the window within which
/// a handed-over notification must be acknowledged.
///
/// The delay after failed attempt *n* (1-based) is `min(maxDelay, baseDelay × factor^(n-1))`, then jittered:
/// - ``Jitter-swift.enum/full``: uniformly in `[0, d]`;
/// - ``Jitter-swift.enum/equal``: `d/2` plus uniformly `[0, d/2]` (never less than half the backoff);
/// - ``Jitter-swift.enum/none``: exactly `d`.
///
/// Delays are whole milliseconds (the store's precision) and at least 1 ms, so a failed notification is never due
/// again at the instant it failed. The random draws come from a ``SeededGenerator`` owned by the ``Dispatcher``:
/// the same seed gives the same retry instants.
public struct DeliveryPolicy: Sendable, Equatable {
    /// How the backoff is randomized.
    public enum Jitter: String, Sendable, Equatable, CaseIterable {
        /// No randomness: the capped exponential delay itself.
        case none
        /// Uniform in `[0, delay]` ("full jitter").
        case full
        /// `delay/2 + uniform[0, delay/2]` ("equal jitter").
        case equal
    }

    /// Attempts before a notification becomes a dead letter. Default 8.
    public var maxAttempts: Int
    /// The delay after the first failed attempt. Default 1 s.
    public var baseDelay: TimeInterval
    /// The growth factor per attempt. Default 2.
    public var factor: Double
    /// The cap on any one delay. Default 15 min.
    public var maxDelay: TimeInterval
    /// Default ``Jitter-swift.enum/equal``.
    public var jitter: Jitter
    /// A notification handed over but not acknowledged within this window becomes dead
    /// ("not acknowledged within 4h0m0s"). Default: ``LifecycleConfiguration/acknowledgementWindow`` (4 h).
    public var acknowledgementWindow: TimeInterval

    /// How many notifications (to distinct resources) the dispatcher hands over at once. Default 64; at least 1.
    /// Two notifications of one resource are never in flight together, whatever the bound.
    public var concurrency: Int
    /// The longest one hand-over is expected to take: the webhook transport's timeout (default 10 s). The
    /// dispatcher's claims on the notifications it hands over are leased for ``claimLease`` (twice this, plus a
    /// margin), so another dispatcher on the same database takes a notification over only once it cannot still be in
    /// flight.
    public var deliveryTimeout: TimeInterval

    /// How the dispatcher paces its hand-overs.
    public enum Scheduling: String, Sendable, Equatable, CaseIterable {
        /// Rounds on a ``ManualClock`` (reproducible transcripts), continuous on any other clock.
        case automatic
        /// Up to ``DeliveryPolicy/concurrency`` hand-overs in flight at all times: as each finishes, its outcome is
        /// recorded (with whatever else finished meanwhile, in one outbox call) and the window is refilled, so one
        /// slow receiver holds back only its own resource. The log follows the order in which hand-overs finish.
        case continuous
        /// Claim up to ``DeliveryPolicy/concurrency``, hand them all over, wait for the slowest, record, repeat. With a
        /// manual clock and a seed the delivery log and every retry instant are the same whatever the order in which
        /// hand-overs finish.
        case rounds
    }

    /// Continuous hand-overs or rounds. Default ``Scheduling-swift.enum/automatic``.
    public var scheduling: Scheduling

    /// The default of ``concurrency``: 64. Measured (docs/performance.md, stop 12): 64 at once delivers 40–60 % more
    /// per second than 16, in process and over webhooks, at fewer commits per delivery; the webhook transport keeps
    /// as many connections to a receiver.
    public static let defaultConcurrency = 64
    /// The most ``concurrency`` accepts: 1,024.
    public static let maximumConcurrency = 1_024

    public init(maxAttempts: Int = 8, baseDelay: TimeInterval = 1, factor: Double = 2, maxDelay: TimeInterval = 15 * 60,
                jitter: Jitter = .equal,
                acknowledgementWindow: TimeInterval = LifecycleConfiguration().acknowledgementWindow,
                concurrency: Int = DeliveryPolicy.defaultConcurrency, deliveryTimeout: TimeInterval = 10,
                scheduling: Scheduling = .automatic) {
        precondition(maxAttempts >= 1, "a delivery policy needs at least one attempt")
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.factor = factor
        self.maxDelay = maxDelay
        self.jitter = jitter
        self.acknowledgementWindow = acknowledgementWindow
        self.concurrency = min(Self.maximumConcurrency, max(1, concurrency))
        self.deliveryTimeout = deliveryTimeout.isFinite ? min(3600, max(0.001, deliveryTimeout)) : 10
        self.scheduling = scheduling
    }

    /// How long a dispatcher's claim on a notification lasts: `2 × deliveryTimeout + 1 s` (21 s by default). A
    /// dispatcher that dies mid-delivery leaves its claims behind; they fall due again when the lease ends.
    public var claimLease: TimeInterval { 2 * deliveryTimeout + 1 }

    /// ``claimLease`` in whole milliseconds.
    public var claimLeaseMilliseconds: Int64 { Int64((claimLease * 1000).rounded(.up)) }

    /// The capped exponential delay after failed attempt `attempt` (1-based), before jitter.
    public func backoff(afterAttempt attempt: Int) -> TimeInterval {
        let exponent = Double(max(0, attempt - 1))
        return min(maxDelay, baseDelay * pow(factor, exponent))
    }

    /// The jittered delay after failed attempt `attempt`, in whole milliseconds, at least 1 ms.
    public func retryDelay<G: RandomNumberGenerator>(afterAttempt attempt: Int, using generator: inout G) -> TimeInterval {
        TimeInterval(retryDelayMilliseconds(afterAttempt: attempt, using: &generator)) / 1000
    }

    /// ``retryDelay(afterAttempt:using:)`` as an integer number of milliseconds.
    public func retryDelayMilliseconds<G: RandomNumberGenerator>(afterAttempt attempt: Int, using generator: inout G) -> Int64 {
        let capped = Int64((backoff(afterAttempt: attempt) * 1000).rounded(.down))
        let milliseconds: Int64
        switch jitter {
        case .none:
            milliseconds = capped
        case .full:
            milliseconds = capped > 0 ? Int64.random(in: 0...capped, using: &generator) : 0
        case .equal:
            let half = capped / 2
            milliseconds = half + (capped - half > 0 ? Int64.random(in: 0...(capped - half), using: &generator) : 0)
        }
        return max(1, milliseconds)
    }

    /// The error recorded on a notification whose acknowledgement did not arrive in time.
    public var acknowledgementTimeoutMessage: String {
        "\(IncompleteReason.summary): not acknowledged within \(DurationText.goStyle(acknowledgementWindow)) (408)"
    }
}
