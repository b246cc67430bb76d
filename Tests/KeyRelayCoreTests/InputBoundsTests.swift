import Foundation
@testable import KeyRelayCore
import Testing

/// User-supplied durations, instants and counts have documented bounds: beyond them the parsers answer nil (so
/// front ends can answer a clear error), and the formatters clamp instead of trapping.
@Suite("input bounds")
struct InputBoundsTests {
    @Test("durations beyond 100 years, or not finite, do not parse")
    func durationBound() {
        #expect(DurationText.parse("36500d") == DurationText.maximum)
        #expect(DurationText.parse("36500d 1s") == nil)
        #expect(DurationText.parse("100000000000000000s") == nil)
        #expect(DurationText.parse(String(repeating: "9", count: 400) + "s") == nil)
        #expect(DurationText.parse(String(repeating: "1s ", count: 200)) == nil, "over 256 bytes of input")
    }

    @Test("Go-style formatting clamps what it cannot represent instead of trapping")
    func goStyleClamps() {
        #expect(DurationText.goStyle(1e30) == DurationText.goStyle(DurationText.maximum))
        #expect(DurationText.goStyle(.infinity) == DurationText.goStyle(DurationText.maximum))
        #expect(DurationText.goStyle(-5) == "0s")
        #expect(DurationText.goStyle(.nan) == DurationText.goStyle(DurationText.maximum))
        #expect(DurationText.goStyle(3601) == "1h0m1s")
    }

    @Test("timestamps outside 1970…9999 do not parse")
    func timestampRange() {
        #expect(Timestamp.parse("2026-01-01T00:00:00Z") != nil)
        #expect(Timestamp.parse("1969-12-31T23:59:59Z") == nil)
        #expect(Timestamp.parse("9999-12-31T23:59:59Z") == Timestamp.range.upperBound)
        #expect(Timestamp.parse(String(repeating: "2", count: 100)) == nil)
    }

    @Test("a manual clock says whether it can move by an interval")
    func clockBounds() {
        let clock = ManualClock()
        #expect(clock.canAdvance(by: 3600))
        #expect(!clock.canAdvance(by: -1))
        #expect(!clock.canAdvance(by: .infinity))
        #expect(!clock.canAdvance(by: 1e15))
    }
}
