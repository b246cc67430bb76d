import Foundation
@testable import KeyRelayScenario
import Testing

/// Hostile scenario files end as a syntax error at file:line:column or a failed step, never as a trap.
@Suite("hostile scenario input")
struct HostileInputTests {
    func syntaxError(_ bytes: [UInt8]) -> ScenarioSyntaxError? {
        do {
            _ = try ScenarioParser.parse(bytes: bytes, file: "h.scenario")
            return nil
        } catch {
            return error
        }
    }
    func syntaxError(_ text: String) -> ScenarioSyntaxError? { syntaxError(Array(text.utf8)) }

    @Test("huge durations in advance, expires in and bus delay are errors at their column",
          arguments: ["advance 100000000000000000s", "key create k1 expires in 100000000000000000s",
                      "bus delay cos 100000000000000000000s", "advance " + String(repeating: "9", count: 400) + "s"])
    func hugeDurations(line: String) throws {
        let error = try #require(syntaxError("key create k0\n" + line))
        #expect(error.line == 2)
        #expect(error.expected.contains("at most 36500d"))
    }

    @Test("counts beyond one million are errors, so repeated injections cannot overflow")
    func hugeCounts() throws {
        let error = try #require(syntaxError("bus drop cos 9223372036854775807"))
        #expect(error.line == 1 && error.column == 14)
        #expect(error.expected.contains("from 0 to 1000000"))
        #expect(syntaxError("bus drop cos 1000000\nbus drop cos 1000000") == nil)
    }

    @Test("invalid UTF-8 is reported at its line and column")
    func invalidUTF8() throws {
        let bytes = Array("key create k1\nadvance ".utf8) + [0xFF, 0xFE] + Array("1h\n".utf8)
        let error = try #require(syntaxError(bytes))
        #expect(error.line == 2)
        #expect(error.column == 9)
        #expect(error.expected.contains("0xFF"))
    }

    @Test("an over-long line is refused without being echoed")
    func longLine() throws {
        let token = String(repeating: "x", count: 200_000)
        let error = try #require(syntaxError("key create k1\nwrite " + token))
        #expect(error.line == 2 && error.column == 1)
        #expect(error.description.count < 200)
    }

    @Test("a long token is echoed truncated")
    func longTokenTruncated() throws {
        let error = try #require(syntaxError("advance " + String(repeating: "y", count: 5000)))
        #expect(error.description.count < 300)
        #expect(error.description.contains("5000 bytes"))
    }

    @Test("clock start earlier than the default start runs instead of trapping")
    func earlyClockStart() async {
        let result = await ScenarioRunner().run(text: "clock start 2020-05-01T00:00:00Z\nkey create k1\nexpect ok\n",
                                                file: "early.scenario")
        #expect(result.tally.failed == 0)
        #expect(result.tally.passed == 1)
    }

    @Test("clock start before 1970 is a syntax error")
    func ancientClockStart() throws {
        let error = try #require(syntaxError("clock start 1900-01-01T00:00:00Z"))
        #expect(error.line == 1 && error.column == 13)
    }

    @Test("advancing past year 9999 fails the step instead of trapping")
    func advancePastTheEnd() async {
        let steps = "clock start 9999-01-01T00:00:00Z\nadvance 36500d\n"
        let result = await ScenarioRunner().run(text: steps, file: "end.scenario")
        #expect(result.tally.failed == 1)
        #expect(result.entries.last?.saw?.contains("cannot move past") == true)
    }
}
