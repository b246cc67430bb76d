import Foundation
import Testing
@testable import KeyRelayCore

/// `Timestamp.format` is written by hand for speed: it must answer Foundation's `ISO8601FormatStyle` string, byte
/// for byte, for every instant a key can carry.
@Suite("Timestamp formatting")
struct TimestampFormatTests {
    @Test func equalsFoundationAtTheEdgesOfTheRangeAndOfItsUnits() {
        var instants: [TimeInterval] = [0, 0.999, 1, 59, 60, 3599, 3600, 86_399, 86_400, 951_782_400 /* 2000-02-29 */,
                                        951_868_799, 4_107_542_399 /* 2100-02-28T23:59:59 */, 4_107_542_400,
                                        253_402_300_799 /* 9999-12-31T23:59:59 */, 253_402_300_799.5]
        // Every 1st of March and 28th/29th of February through 9999, and each year's last second.
        for year in 1970...9999 {
            var parts = DateComponents(timeZone: TimeZone(identifier: "UTC"), year: year, month: 3, day: 1)
            let calendar = Calendar(identifier: .gregorian)
            guard let march = calendar.date(from: parts) else { continue }
            instants += [march.timeIntervalSince1970, march.timeIntervalSince1970 - 1, march.timeIntervalSince1970 - 86_401]
            parts.month = 1
            if let january = calendar.date(from: parts) { instants.append(january.timeIntervalSince1970 - 1) }
        }
        for interval in instants where interval >= 0 {
            let date = Date(timeIntervalSince1970: interval)
            #expect(Timestamp.format(date) == Timestamp.foundationFormat(date), "at \(interval)")
        }
    }

    @Test func equalsFoundationOnInstantsSpreadOverTheRange() {
        // 20,000 instants a large prime stride apart (modulo the range), each with a fraction of a second.
        let span: UInt64 = 253_402_300_800
        for index in 0..<UInt64(20_000) {
            let interval = Double(index &* 12_670_012_889 % span) + Double(index % 1000) / 1000
            let date = Date(timeIntervalSince1970: interval)
            #expect(Timestamp.format(date) == Timestamp.foundationFormat(date), "at \(interval)")
        }
    }

    @Test func outsideTheRangeFoundationFormats() {
        for interval in [-1.0, -86_400 * 365.25 * 100, 253_402_300_800, 300_000_000_000] {
            let date = Date(timeIntervalSince1970: interval)
            #expect(Timestamp.format(date) == Timestamp.foundationFormat(date))
        }
    }
}
