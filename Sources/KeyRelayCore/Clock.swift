import Foundation
import Synchronization

/// Where KeyRelay gets "now". The core never reads a clock; the engine, the bus and the adapters read this one.
public protocol KeyRelayClock: Sendable {
    /// The current instant.
    func now() -> Date
}

/// A clock that moves only when told: tests, scenarios and `serve --manual-clock`.
public final class ManualClock: KeyRelayClock {
    private let current: Mutex<Date>

    /// Starts at `start` (default 2026-01-01T00:00:00Z).
    public init(start: Date = Date(timeIntervalSince1970: 1_767_225_600)) {
        current = Mutex(start)
    }

    public func now() -> Date { current.withLock { $0 } }

    /// Whether ``advance(by:)`` accepts `interval`: not negative, finite, and not moving the clock past
    /// `Timestamp.range`. Front ends that take an interval from a user check this (or bound the input with
    /// `DurationText`) and answer a clear error, since `advance(by:)` treats a bad interval as a programming error.
    public func canAdvance(by interval: TimeInterval) -> Bool {
        guard interval.isFinite, interval >= 0 else { return false }
        return now().addingTimeInterval(interval) <= Timestamp.range.upperBound
    }

    /// Moves the clock forward (a negative interval is refused: time does not run backwards).
    public func advance(by interval: TimeInterval) {
        precondition(interval >= 0, "a manual clock only moves forward")
        current.withLock { $0 = $0.addingTimeInterval(interval) }
    }

    /// Sets the clock to `date`, which must not be earlier than now.
    public func set(to date: Date) {
        current.withLock {
            precondition(date >= $0, "a manual clock only moves forward")
            $0 = date
        }
    }
}

/// Where KeyRelay gets identifiers (key ids, version ids, event ids).
public protocol IdentifierSource: Sendable {
    /// A new v4-shaped UUID string, lowercase.
    func next() -> String
}

/// A deterministic generator (SplitMix64) for reproducible runs: the same seed gives the same sequence.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Identifiers from a seeded generator: reproducible ids for scenarios and tests.
public final class SeededIdentifiers: IdentifierSource {
    private let generator: Mutex<SeededGenerator>
    public init(seed: UInt64) { generator = Mutex(SeededGenerator(seed: seed)) }
    public func next() -> String {
        let (a, b) = generator.withLock { ($0.next(), $0.next()) }
        return UUIDText.format(high: a, low: b)
    }
}

/// Formats 128 bits as a version-4, variant-1 UUID string.
public enum UUIDText {
    public static func format(high: UInt64, low: UInt64) -> String {
        let hi = (high & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000
        let lo = (low & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        // 8-4-4-4-12 lowercase hex digits, written into the string's own storage: every command draws one to three
        // identifiers, and five radix conversions, paddings and an interpolation cost more than the random bits
        // (issue #16).
        return String(unsafeUninitializedCapacity: 36) { text in
            var at = 0
            func put(_ value: UInt64, digits: Int) {
                for shift in stride(from: (digits - 1) * 4, through: 0, by: -4) {
                    let digit = UInt8(truncatingIfNeeded: value >> UInt64(shift)) & 0xF
                    text[at] = digit < 10 ? 0x30 + digit : 0x57 + digit
                    at += 1
                }
            }
            func dash() {
                text[at] = 0x2D
                at += 1
            }
            put(hi >> 32, digits: 8)
            dash()
            put(hi >> 16, digits: 4)
            dash()
            put(hi, digits: 4)
            dash()
            put(lo >> 48, digits: 4)
            dash()
            put(lo, digits: 12)
            return at
        }
    }
}
