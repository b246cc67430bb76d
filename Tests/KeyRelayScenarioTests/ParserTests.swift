import Foundation
@testable import KeyRelayScenario
import Testing

@Suite("scenario language")
struct ParserTests {
    func parse(_ text: String) throws -> Scenario { try ScenarioParser.parse(text, file: "t.scenario") }

    func syntaxError(_ text: String) -> ScenarioSyntaxError? {
        do {
            _ = try ScenarioParser.parse(text, file: "t.scenario")
            return nil
        } catch {
            return error
        }
    }

    @Test("comments and blank lines are not steps; the transcript shows a step without its comment")
    func comments() throws {
        let scenario = try parse("# a comment\n\n   key create k1   # trailing\n  # indented comment\n")
        #expect(scenario.steps.count == 1)
        #expect(scenario.steps[0].line == 3)
        #expect(scenario.steps[0].source == "key create k1")
    }

    @Test("shell-style quoting: double quotes with escapes, single quotes literal, # inside quotes")
    func quoting() throws {
        let lines = try Lexer.lex(#"write b1 "a b" 'c\d' "say \"hi\" # not a comment" e\ f"#, file: "t")
        #expect(lines[0].tokens.map(\.text) == ["write", "b1", "a b", #"c\d"#, #"say "hi" # not a comment"#, "e f"])
        #expect(lines[0].tokens.map(\.column) == [1, 7, 10, 16, 22, 51])
    }

    @Test("durations: several terms, as in advance 1h 1s")
    func durations() throws {
        let scenario = try parse("advance 1h 1s\nadvance 30d\nadvance 90m\nkey create k1 expires in 2h 30m dual-auth")
        let intervals = scenario.steps.prefix(3).map { step -> TimeInterval? in
            if case .advance(let t) = step.action { return t } else { return nil }
        }
        #expect(intervals == [3601, 30 * 86400, 5400])
        guard case .createKey(_, let options, _) = scenario.steps[3].action else {
            Issue.record("not a key create")
            return
        }
        #expect(options.expiresIn == 9000)
        #expect(options.dualAuth)
    }

    @Test("errors name file:line:column and what was expected")
    func errorPositions() {
        #expect(syntaxError("key create k1\nadvance soon")?.description
            == "t.scenario:2:9: expected a duration such as 4h, 1h 1s or 30d (units ms, s, m, h, d, w; at most 36500d (100 years)), saw 'soon'")
        #expect(syntaxError("key create k1\n  key sync k2")?.description
            == "t.scenario:2:12: expected a key created earlier in the scenario (key create …), saw 'k2'")
        #expect(syntaxError("write b1 x \"unterminated")?.line == 1)
        #expect(syntaxError("write b1 x \"unterminated")?.column == 12)
        #expect(syntaxError("key create k1\nexpect error NOPE")?.column == 14)
        #expect(syntaxError("key create k1\nkey delete k1 now")?.description == "t.scenario:2:15: expected the end of the line, saw 'now'")
        #expect(syntaxError("key create k1\nexpect key k1 state")?.column == 20)
        #expect(syntaxError("key create k1\nclock start 2026-01-01T00:00:00Z")?.line == 2)
    }

    @Test("a file with a syntax error runs nothing")
    func nothingRuns() async {
        let text = "key create k1\nexpect key k1 state active\nkey frobnicate k1\n"
        let result = await ScenarioRunner().run(text: text, file: "bad.scenario")
        #expect(result.entries.count == 1)
        #expect(result.entries[0].kind == .syntaxError)
        #expect(result.entries[0].text.hasPrefix("bad.scenario:3:5: expected a key action"))
        #expect(result.tally == ScenarioTally(passed: 0, failed: 1))
    }

    @Test("a wrong expectation yields a precise ✗ line and a failure count")
    func wrongExpectation() async {
        let text = """
        key create k1
        key delete k1
        advance 1h
        key sync k1
        expect ok
        expect key k1 state active
        """
        let result = await ScenarioRunner().run(text: text, file: "wrong.scenario")
        #expect(result.tally == ScenarioTally(passed: 0, failed: 2))
        let lines = result.transcript.split(separator: "\n").map(String.init)
        #expect(lines.contains("wrong.scenario:5 ✗ expect ok — expected success, saw 409 REQ_TOO_EARLY_ERR: The key was updated recently: Please wait and try again: Sync cannot be performed until at least 2026-01-01T01:00:01Z"))
        #expect(lines.contains("wrong.scenario:6 ✗ expect key k1 state active — expected state active, saw state destroyed"))
        #expect(lines.last == "0 passed, 2 failed")
    }

    @Test("an action that fails with no expectation about it is a failure")
    func unexpectedError() async {
        let result = await ScenarioRunner().run(text: "key create k1\nkey enable k1\nexpect key k1 state active", file: "u")
        #expect(result.tally == ScenarioTally(passed: 1, failed: 1))
        #expect(result.entries[1].text.hasPrefix("u:2 ✗ key enable k1 — expected success, saw 409 KEY_ACTION_INVALID_STATE_ERR"))
    }

    @Test("JSON lines carry the same entries")
    func jsonLines() async throws {
        let result = await ScenarioRunner().run(text: "key create k1\nexpect key k1 version 2", file: "j")
        let data = Data(result.entries[1].json.utf8)
        let decoded = try JSONDecoder().decode(TranscriptEntry.self, from: data)
        #expect(decoded == result.entries[1])
        #expect(decoded.ok == false)
        #expect(decoded.expected == "version 2")
        #expect(result.tally.json == #"{"failed":1,"passed":0}"#)
    }
}
