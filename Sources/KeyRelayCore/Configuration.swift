import Foundation

/// Every timing window of the lifecycle rules, with Key Protect's values as defaults.
public struct LifecycleConfiguration: Sendable, Equatable, Codable {
    /// A sync is accepted only when **strictly more** than this has passed since the later of the key's last
    /// lifecycle action and its last accepted sync. Key Protect: 1 hour.
    public var syncCooldown: TimeInterval = 3600
    /// Enable and restore are refused within this window after the key's last lifecycle action. Key Protect: 30 s.
    public var enableRestoreCooldown: TimeInterval = 30
    /// At most one rotation per this window (the first rotation after creation is free). Key Protect: 1 hour.
    public var rotationInterval: TimeInterval = 3600
    /// Purge is allowed this long after deletion. Key Protect: 4 hours.
    public var purgeDelay: TimeInterval = 4 * 3600
    /// Restore is allowed within this window after deletion. Key Protect: 30 days.
    public var restoreWindow: TimeInterval = 30 * 86400
    /// How long a `setKeyForDeletion` authorization stays valid. Key Protect: 7 days.
    public var dualAuthValidity: TimeInterval = 7 * 86400
    /// Destroyed keys become eligible for automatic purge after this. Key Protect: 90 days.
    public var autoPurgeAfter: TimeInterval = 90 * 86400
    /// The month of a rotation policy's `interval_month`: a policy of N months rotates N × this after the key's
    /// last rotation (or its creation). Key Protect: 30 days.
    public var rotationPolicyMonth: TimeInterval = 30 * 86400
    /// An adopter must acknowledge a notification within this window. Key Protect: 4 hours.
    public var acknowledgementWindow: TimeInterval = 4 * 3600
    /// Maximum aliases per key. Key Protect: 5.
    public var maxAliasesPerKey: Int = 5
    /// Maximum key rings per instance, `default` included. Key Protect: 50.
    public var maxKeyRingsPerInstance: Int = 50

    public init() {}
}

/// Durations as people write them in scenarios, the CLI and the dev clock: `4h`, `1h 1s`, `30d`, `90m`, `500ms`.
public enum DurationText {
    /// The longest duration any input may name: 100 years (36,500 days). Every window of Key Protect is far
    /// shorter, and the bound keeps a user-supplied duration convertible to milliseconds, seconds and dates
    /// without overflow wherever it travels (the store, the dispatcher, Go-style messages).
    public static let maximum: TimeInterval = 36_500 * 86400

    /// How ``maximum`` reads in messages.
    public static let maximumText = "36500d (100 years)"

    /// Parses a sequence of `<number><unit>` terms (units `ms`, `s`, `m`, `h`, `d`, `w`), separated by spaces or not.
    /// Returns nil for anything else, and for a total beyond ``maximum`` (or not finite), so callers answer a
    /// clear error instead of overflowing later.
    public static func parse(_ text: String) -> TimeInterval? {
        // A duration is a few short terms: refuse long input before looking at it character by character.
        guard text.utf8.count <= 256 else { return nil }
        var total: TimeInterval = 0
        var number = ""
        var unit = ""
        var sawTerm = false
        func flush() -> Bool {
            guard !number.isEmpty, let value = Double(number) else { return number.isEmpty && unit.isEmpty }
            let scale: Double
            switch unit {
            case "ms": scale = 0.001
            case "s", "sec", "secs": scale = 1
            case "m", "min", "mins": scale = 60
            case "h", "hr", "hrs": scale = 3600
            case "d", "day", "days": scale = 86400
            case "w": scale = 7 * 86400
            default: return false
            }
            guard value.isFinite else { return false }
            total += value * scale
            guard total.isFinite, total <= maximum else { return false }
            number = ""
            unit = ""
            sawTerm = true
            return true
        }
        for ch in text {
            if ch.isNumber || ch == "." {
                if !unit.isEmpty { guard flush() else { return nil } }
                number.append(ch)
            } else if ch.isLetter {
                guard !number.isEmpty else { return nil }
                unit.append(ch)
            } else if ch == " " || ch == "\t" {
                if !unit.isEmpty { guard flush() else { return nil } }
                else if !number.isEmpty { return nil }
            } else {
                return nil
            }
        }
        guard flush(), sawTerm else { return nil }
        return total
    }

    /// Formats a duration the way Go formats durations in Key Protect's messages, e.g. `4h0m0s`, `1h0m1s`, `30s`.
    /// Intervals outside `0...maximum` (or not finite) are clamped into it, so no input can trap the conversion.
    public static func goStyle(_ interval: TimeInterval) -> String {
        let bounded = interval.isFinite ? min(max(interval, 0), maximum) : maximum
        var seconds = Int(bounded.rounded())
        let hours = seconds / 3600
        seconds -= hours * 3600
        let minutes = seconds / 60
        seconds -= minutes * 60
        if hours > 0 { return "\(hours)h\(minutes)m\(seconds)s" }
        if minutes > 0 { return "\(minutes)m\(seconds)s" }
        return "\(seconds)s"
    }
}

/// RFC 3339 timestamps as Key Protect writes them (`2020-03-12T03:37:32Z`).
public enum Timestamp {
    private static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: false, timeZone: .gmt)
    private static let fractional = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)

    /// Formats to whole seconds (truncating).
    ///
    /// Written by hand for the instants of ``range`` (every stored date): Foundation's `ISO8601FormatStyle` costs
    /// microseconds per call and a key's answer formats up to nine dates. The output is the same string, byte for
    /// byte (`TimestampTests` compares both over the whole range); other instants go to Foundation.
    public static func format(_ date: Date) -> String {
        let interval = date.timeIntervalSince1970.rounded(.down)
        guard interval >= 0, interval <= 253_402_300_799 else {
            return style.format(Date(timeIntervalSince1970: interval))
        }
        return formatUTC(seconds: Int(interval))
    }

    /// `yyyy-MM-ddTHH:mm:ssZ` of a count of seconds since 1970 (0 through 9999-12-31T23:59:59Z).
    static func formatUTC(seconds: Int) -> String {
        let days = seconds / 86_400
        let inDay = seconds - days * 86_400
        // Civil date from days since 1970-01-01 (Howard Hinnant's `civil_from_days`), for non-negative days.
        let shifted = days + 719_468
        let era = shifted / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return String(unsafeUninitializedCapacity: 20) { buffer in
            func put(_ value: Int, _ digits: Int, at offset: Int) {
                var value = value
                for index in stride(from: offset + digits - 1, through: offset, by: -1) {
                    buffer[index] = UInt8(truncatingIfNeeded: 48 + value % 10)
                    value /= 10
                }
            }
            put(year, 4, at: 0)
            buffer[4] = UInt8(ascii: "-")
            put(month, 2, at: 5)
            buffer[7] = UInt8(ascii: "-")
            put(day, 2, at: 8)
            buffer[10] = UInt8(ascii: "T")
            put(inDay / 3600, 2, at: 11)
            buffer[13] = UInt8(ascii: ":")
            put(inDay / 60 % 60, 2, at: 14)
            buffer[16] = UInt8(ascii: ":")
            put(inDay % 60, 2, at: 17)
            buffer[19] = UInt8(ascii: "Z")
            return 20
        }
    }

    /// Foundation's formatting of ``format(_:)`` (what the hand-written one must equal; for tests).
    static func foundationFormat(_ date: Date) -> String {
        style.format(Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down)))
    }

    /// Formats to milliseconds (`2020-03-12T03:37:32.123Z`): log and audit lines, where order within a second
    /// matters.
    public static func formatMilliseconds(_ date: Date) -> String {
        fractional.format(date)
    }

    /// Formats as Go's `time.Time.String()` of a UTC instant, to whole seconds (`2020-08-14 19:33:47 +0000 UTC`):
    /// the form Key Protect writes dates in inside `errorMsg` lines.
    public static func goStyle(_ date: Date) -> String {
        let text = format(date) // 2020-08-14T19:33:47Z
        return text.replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: " +0000 UTC")
    }

    /// The instants KeyRelay accepts from input: 1970-01-01T00:00:00Z through 9999-12-31T23:59:59Z. Within it
    /// every date converts to stored milliseconds and back, and formats as RFC 3339, without overflow.
    public static let range: ClosedRange<Date> = Date(timeIntervalSince1970: 0)...Date(timeIntervalSince1970: 253_402_300_799)

    /// Parses RFC 3339 with or without fractional seconds; nil for anything else and for an instant outside
    /// ``range``.
    public static func parse(_ text: String) -> Date? {
        guard text.utf8.count <= 64 else { return nil }
        let parsed: Date? =
            if let date = try? style.parse(text) { date }
            else if let date = try? fractional.parse(text) { date }
            // Accept `+0000`-style offsets too, as Key Protect's docs show them.
            else if let date = try? Date.ISO8601FormatStyle(timeZone: .gmt).parse(text) { date }
            else { nil }
        guard let parsed, range.contains(parsed) else { return nil }
        return parsed
    }
}
