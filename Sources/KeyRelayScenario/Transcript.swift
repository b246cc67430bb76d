import Foundation

/// One line of a transcript.
public struct TranscriptEntry: Sendable, Equatable, Codable {
    /// What the line is about.
    public enum Kind: String, Sendable, Codable {
        /// An action (clock, key, resource, bus step).
        case step
        /// An `expect` line.
        case expectation
        /// The file could not be parsed; nothing of it ran.
        case syntaxError = "syntax-error"
    }

    public var file: String
    public var line: Int
    /// For a syntax error, the column.
    public var column: Int?
    public var kind: Kind
    /// `true` for ✓, `false` for ✗.
    public var ok: Bool
    /// The step as written (or, for a syntax error, the error).
    public var step: String
    /// For a failure: what was expected.
    public var expected: String?
    /// For a failure: what was seen. For a step whose error an expectation then checks: that error.
    public var saw: String?

    public init(file: String, line: Int, column: Int? = nil, kind: Kind, ok: Bool, step: String, expected: String? = nil,
                saw: String? = nil) {
        self.file = file
        self.line = line
        self.column = column
        self.kind = kind
        self.ok = ok
        self.step = step
        self.expected = expected
        self.saw = saw
    }

    /// The human form: `file:line ✓ step`, `file:line ✗ step — expected …, saw …`, or `file:line:column: expected …`.
    public var text: String {
        if kind == .syntaxError { return step }
        var out = "\(file):\(line) \(ok ? "✓" : "✗") \(step)"
        if let expected, let saw {
            out += " — expected \(expected), saw \(saw)"
        } else if let saw {
            out += " — \(saw)"
        }
        return out
    }

    /// The JSON-lines form.
    public var json: String { ScenarioJSON.encode(self) }
}

/// Expectation totals.
public struct ScenarioTally: Sendable, Equatable, Codable {
    public var passed = 0
    public var failed = 0
    public init(passed: Int = 0, failed: Int = 0) {
        self.passed = passed
        self.failed = failed
    }
    public static func += (lhs: inout ScenarioTally, rhs: ScenarioTally) {
        lhs.passed += rhs.passed
        lhs.failed += rhs.failed
    }
    /// Exactly `N passed, N failed`.
    public var text: String { "\(passed) passed, \(failed) failed" }
    /// `{"passed":N,"failed":N}`.
    public var json: String { ScenarioJSON.encode(self) }
}

/// The result of running one scenario.
public struct ScenarioResult: Sendable {
    public var file: String
    public var entries: [TranscriptEntry]
    public var tally: ScenarioTally
    /// The transcript as text, with the closing tally line.
    public var transcript: String {
        (entries.map(\.text) + [tally.text]).joined(separator: "\n")
    }
}

enum ScenarioJSON {
    static func encode<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
