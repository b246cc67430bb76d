import Foundation
@testable import KeyRelayScenario
import Testing

/// A seeded mutation fuzzer over the scenario parser and runner.
///
/// The corpus is every bundled scenario (`scenarios/`) plus the hostile seeds of `Tests/fuzz/scenario-corpus/`
/// (huge numbers, invalid UTF-8, long lines, odd quoting, and one regression seed per crash the fuzzer has found).
/// Each iteration picks a corpus file, applies 1–8 byte-, token- or line-level mutations, parses the result and, when
/// it parses, runs it. It checks:
/// - no crash (a trap would kill the test process, which fails the run);
/// - every rejection is a ``ScenarioSyntaxError`` whose line and column lie inside the input, with bounded text;
/// - every accepted mutant runs to the end within a bound, and its transcript accounts for every step.
///
/// Bounded by an iteration count and a time box, both overridable:
/// `KEYRELAY_FUZZ_SEED` (default 20261201), `KEYRELAY_FUZZ_ITERATIONS` (default 20000), `KEYRELAY_FUZZ_SECONDS`
/// (default 25, at most 60 in CI), `KEYRELAY_FUZZ_RUN_SECONDS` (the bound on one run, default 60). It prints one figure line: `fuzz scenario: N inputs, M rejected, 0 crashes, T s`.
@Suite("scenario fuzzing")
struct ScenarioFuzzTests {
    static let corpusDirectory = repositoryRoot.appendingPathComponent("Tests/fuzz/scenario-corpus")

    /// The corpus: bundled scenarios, then the hostile seeds, each as (name, bytes), in name order.
    static func corpus() throws -> [(name: String, bytes: [UInt8])] {
        var result: [(String, [UInt8])] = []
        for directory in [repositoryRoot.appendingPathComponent("scenarios"), corpusDirectory] {
            let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
                .filter { $0.hasSuffix(".scenario") }.sorted()
            for name in names {
                let data = try Data(contentsOf: directory.appendingPathComponent(name))
                result.append((directory.lastPathComponent + "/" + name, [UInt8](data)))
            }
        }
        return result
    }

    static func environmentInt(_ name: String, default value: Int) -> Int {
        ProcessInfo.processInfo.environment[name].flatMap { Int($0) } ?? value
    }

    /// The longest error text a rejection may show: errors echo truncated tokens, never whole lines.
    static let maximumErrorLength = 600
    /// The longest an accepted mutant may run: a scenario is a few dozen steps on an in-memory engine (well under a
    /// second alone), but inside the whole run on 2 cores a run waits its turn for seconds (13 s seen).
    static let maximumRunSeconds = Double(environmentInt("KEYRELAY_FUZZ_RUN_SECONDS", default: 60))

    @Test("the hostile seeds are in the corpus and each parses or is rejected at file:line:column")
    func seedsBehave() throws {
        let corpus = try Self.corpus()
        #expect(corpus.filter { $0.name.hasPrefix("scenario-corpus/") }.count >= 10)
        for (name, bytes) in corpus {
            if let problem = Self.checkParse(bytes, file: name).problem { Issue.record("\(name): \(problem)") }
        }
    }

    @Test("mutants of the corpus never crash, every rejection is at file:line:column, every accepted mutant runs")
    func fuzz() async throws {
        let corpus = try Self.corpus()
        try #require(!corpus.isEmpty)
        let seed = UInt64(Self.environmentInt("KEYRELAY_FUZZ_SEED", default: 20_261_201))
        let iterations = Self.environmentInt("KEYRELAY_FUZZ_ITERATIONS", default: 20_000)
        let seconds = Double(Self.environmentInt("KEYRELAY_FUZZ_SECONDS", default: 25))
        var rng = SplitMix64(seed: seed)
        var mutator = ScenarioMutator(corpus: corpus.map(\.bytes))
        let started = Date()
        var inputs = 0, rejected = 0, ran = 0, failedSteps = 0, problems = 0
        var slowest = 0.0
        var slowestInput: [UInt8] = []
        while inputs < iterations, Date().timeIntervalSince(started) < seconds {
            // Parsing is synchronous: yield so that this loop does not hold one of the few cooperative threads
            // the other tests of the run need (2 on a 2-core machine).
            await Task.yield()
            let base = Int(rng.next() % UInt64(corpus.count))
            let bytes = mutator.mutate(corpus[base].bytes, rng: &rng)
            inputs += 1
            let file = "fuzz-\(seed)-\(inputs).scenario"
            let checked = Self.checkParse(bytes, file: file)
            if let problem = checked.problem {
                problems += 1
                Issue.record("seed \(seed) input \(inputs) (from \(corpus[base].name)): \(problem)\n\(Self.preview(bytes))")
                continue
            }
            guard let scenario = checked.scenario else { rejected += 1; continue }
            // Run an accepted mutant only now and then: a run starts an engine (tens of milliseconds), a parse is
            // microseconds. Mutants of a comment or of whitespace are the same scenario; run those rarely.
            guard ran < 2 || rng.next() % 8 == 0 else { continue }
            let runStart = Date()
            let result = await ScenarioRunner().run(scenario)
            let elapsed = Date().timeIntervalSince(runStart)
            if elapsed > slowest { slowest = elapsed; slowestInput = bytes }
            ran += 1
            failedSteps += result.tally.failed
            if elapsed > Self.maximumRunSeconds {
                problems += 1
                Issue.record("seed \(seed) input \(inputs): ran \(elapsed) s\n\(Self.preview(bytes))")
            }
            let counted = result.tally.passed + result.tally.failed
            if counted > scenario.steps.count + 1 {
                problems += 1
                Issue.record("seed \(seed) input \(inputs): \(counted) outcomes for \(scenario.steps.count) steps")
            }
        }
        let elapsed = Date().timeIntervalSince(started)
        print("fuzz scenario: \(inputs) inputs, \(rejected) rejected, 0 crashes, \(String(format: "%.1f", elapsed)) s"
              + " (seed \(seed); \(ran) accepted mutants run, \(failedSteps) failed expectations, slowest run \(String(format: "%.2f", slowest)) s; \(problems) problems)")
        if slowest > 2 { print("fuzz scenario: the slowest accepted mutant (\(String(format: "%.2f", slowest)) s):\n\(Self.preview(Array(slowestInput.prefix(600))))") }
        #expect(problems == 0)
        // No floor on the volume: under a sanitizer or a loaded machine the time box may allow only a few inputs,
        // and the figure line says how many.
        #expect(inputs > 0)
    }

    struct ParseCheck {
        var scenario: Scenario?
        var problem: String?
    }

    /// Parses `bytes` and checks a rejection: line and column inside the input, text bounded.
    static func checkParse(_ bytes: [UInt8], file: String) -> ParseCheck {
        do {
            return ParseCheck(scenario: try ScenarioParser.parse(bytes: bytes, file: file))
        } catch {
            let lines = Self.lines(of: bytes)
            guard error.file == file else { return ParseCheck(problem: "error names \(error.file), not \(file)") }
            guard (1...lines.count).contains(error.line) else {
                return ParseCheck(problem: "line \(error.line) outside 1...\(lines.count): \(error.description.prefix(300))")
            }
            // Columns count characters; a line has at most as many characters as bytes. Column length+1 is the
            // end of the line ("saw the end of the line").
            let length = lines[error.line - 1]
            guard (1...(length + 1)).contains(error.column) else {
                return ParseCheck(problem: "column \(error.column) outside 1...\(length + 1) of line \(error.line): \(error.description.prefix(300))")
            }
            guard error.description.count <= Self.maximumErrorLength else {
                return ParseCheck(problem: "error text of \(error.description.count) characters: \(error.description.prefix(300))…")
            }
            guard !error.expected.isEmpty else { return ParseCheck(problem: "empty error text") }
            return ParseCheck()
        }
    }

    /// The byte length of every line (split at LF, as the lexer does).
    static func lines(of bytes: [UInt8]) -> [Int] {
        var result: [Int] = []
        var length = 0
        for byte in bytes {
            if byte == 0x0A { result.append(length); length = 0 } else { length += 1 }
        }
        result.append(length)
        return result
    }

    static func preview(_ bytes: [UInt8]) -> String {
        let shown = bytes.prefix(2000)
        return String(decoding: shown, as: UTF8.self) + (bytes.count > 2000 ? "… (\(bytes.count) bytes)" : "")
    }
}

/// A small, fast, seedable generator (SplitMix64): the same seed gives the same mutants on every platform.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
}

/// Byte-, token- and line-level mutations that aim at the parser's edges: numbers at and past their bounds,
/// timestamps at the ends of the range, quoting and escapes, invalid UTF-8, long tokens and lines, and grammar words
/// in the wrong places.
struct ScenarioMutator {
    let corpus: [[UInt8]]

    static let words: [String] = [
        "clock", "start", "advance", "key", "bucket", "deployment", "write", "read", "bus", "drain", "expect",
        "create", "rotate", "disable", "enable", "delete", "restore", "purge", "sync", "wrap", "unwrap", "policy",
        "root", "standard", "imported", "payload", "expires", "in", "at", "dual-auth", "rotation", "alias", "name",
        "description", "on", "retention", "drop", "fail", "delay", "duplicate", "partition", "heal", "until", "for",
        "ok", "status", "error", "state", "version", "versions", "registrations", "access", "allowed", "denied",
        "drift", "notifications", "key-version", "force", "as", "every", "month", "months", "plaintext",
        "cos", "cloud-object-storage", "databases", "k1", "k2", "b1", "d1", "c1",
        "pending=0", "acknowledged=1", "dead=0", "acknowledged=-1", "pending=99999999999999999999",
    ]

    static let numbers: [String] = [
        "0", "1", "-1", "+1", "00", "1000000", "1000001", "2147483647", "2147483648", "4294967296",
        "9223372036854775807", "9223372036854775808", "-9223372036854775808", "18446744073709551616",
        String(repeating: "9", count: 40), String(repeating: "9", count: 400), "1e308", "1e309", "NaN", "inf",
        "0x10", "1_000", "١٢", "0s", "1s", "59s", "1m", "1h", "36500d", "36501d", "99999999999999999999s",
        "9223372036854775807s", "1h1s", "-1s", "1.5h", ".5s", "1e3s", "1ms", "1y", "1d1d1d", "0d",
        "1970-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "9999-12-31T23:59:59Z", "10000-01-01T00:00:00Z",
        "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00:00+99:99", "0000-01-01T00:00:00Z",
        "2026-01-01T00:00:00.999999999999Z", "2026-01-01", "T", "Z",
    ]

    static let fragments: [[UInt8]] = [
        [0x22], [0x27], [0x5C], [0x23], [0x20], [0x09], [0x0A], [0x0D], [0x0D, 0x0A], [0x00],
        [0xFF], [0xFE], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0x80],
        [0xEF, 0xBB, 0xBF], Array("\u{301}".utf8), Array("\u{200B}".utf8), Array("👩‍👩‍👧".utf8), Array("\u{202E}".utf8),
        Array("\"\\".utf8), Array("'\"'\"'".utf8), Array("\\n".utf8), Array("\"\"".utf8), Array("''".utf8),
    ]

    init(corpus: [[UInt8]]) { self.corpus = corpus }

    mutating func mutate(_ input: [UInt8], rng: inout SplitMix64) -> [UInt8] {
        var bytes = input
        let rounds = 1 + rng.below(8)
        for _ in 0..<rounds { mutateOnce(&bytes, rng: &rng) }
        // Keep mutants small enough that parsing stays cheap, but let long lines through (the lexer's bound is 16 KiB).
        if bytes.count > 256 * 1024 { bytes = Array(bytes.prefix(256 * 1024)) }
        return bytes
    }

    private func randomWord(_ rng: inout SplitMix64) -> [UInt8] {
        switch rng.below(3) {
        case 0: Array(Self.words[rng.below(Self.words.count)].utf8)
        case 1: Array(Self.numbers[rng.below(Self.numbers.count)].utf8)
        default: Self.fragments[rng.below(Self.fragments.count)]
        }
    }

    /// The start and end of every word (a run of bytes that are not space, tab or newline).
    private func wordRanges(_ bytes: [UInt8]) -> [Range<Int>] {
        var result: [Range<Int>] = []
        var start: Int?
        for (i, b) in bytes.enumerated() {
            let separator = b == 0x20 || b == 0x09 || b == 0x0A
            if separator, let s = start { result.append(s..<i); start = nil } else if !separator, start == nil { start = i }
        }
        if let s = start { result.append(s..<bytes.count) }
        return result
    }

    private func lineRanges(_ bytes: [UInt8]) -> [Range<Int>] {
        var result: [Range<Int>] = []
        var start = 0
        for (i, b) in bytes.enumerated() where b == 0x0A {
            result.append(start..<(i + 1))
            start = i + 1
        }
        if start < bytes.count { result.append(start..<bytes.count) }
        return result
    }

    private func mutateOnce(_ bytes: inout [UInt8], rng: inout SplitMix64) {
        let position = rng.below(bytes.count + 1)
        if bytes.isEmpty { bytes = randomWord(&rng); return }
        switch rng.below(14) {
        case 0: // flip a bit
            bytes[rng.below(bytes.count)] ^= UInt8(1 << rng.below(8))
        case 1: // a random byte
            bytes[rng.below(bytes.count)] = UInt8(truncatingIfNeeded: rng.next())
        case 2: // insert a fragment, a word or a number
            bytes.insert(contentsOf: randomWord(&rng), at: position)
        case 3, 4: // replace a word by a number, a grammar word or a fragment
            let words = wordRanges(bytes)
            guard !words.isEmpty else { bytes.insert(contentsOf: randomWord(&rng), at: position); return }
            bytes.replaceSubrange(words[rng.below(words.count)], with: randomWord(&rng))
        case 5: // delete a range
            guard !bytes.isEmpty else { return }
            let start = rng.below(bytes.count)
            bytes.removeSubrange(start..<min(bytes.count, start + 1 + rng.below(16)))
        case 6: // duplicate a line
            let lines = lineRanges(bytes)
            guard !lines.isEmpty else { return }
            let line = Array(bytes[lines[rng.below(lines.count)]])
            bytes.insert(contentsOf: line, at: lines[rng.below(lines.count)].lowerBound)
        case 7: // delete a line
            let lines = lineRanges(bytes)
            guard !lines.isEmpty else { return }
            bytes.removeSubrange(lines[rng.below(lines.count)])
        case 8: // splice a line from another corpus file
            let other = corpus[rng.below(corpus.count)]
            let lines = lineRanges(other)
            guard !lines.isEmpty else { return }
            var line = Array(other[lines[rng.below(lines.count)]])
            if line.last != 0x0A { line.append(0x0A) }
            let here = lineRanges(bytes)
            bytes.insert(contentsOf: line, at: here.isEmpty ? 0 : here[rng.below(here.count)].lowerBound)
        case 9: // a long token: just under, at or over the line bound, or a few KiB
            let lengths = [Lexer.maximumLineBytes - 20, Lexer.maximumLineBytes, Lexer.maximumLineBytes + 1, 5000, 300]
            let unit = randomWord(&rng)
            let length = lengths[rng.below(lengths.count)]
            var long: [UInt8] = []
            while long.count < length { long += unit.isEmpty ? [0x78] : unit }
            bytes.insert(contentsOf: long.prefix(length), at: position)
        case 10: // truncate
            bytes = Array(bytes.prefix(position))
        case 11: // quote or unquote a word
            let words = wordRanges(bytes)
            guard !words.isEmpty else { return }
            let range = words[rng.below(words.count)]
            let quote: UInt8 = rng.below(2) == 0 ? 0x22 : 0x27
            var quoted = [quote] + bytes[range]
            if rng.below(4) != 0 { quoted.append(quote) }
            bytes.replaceSubrange(range, with: quoted)
        case 12: // many lines
            let lines = lineRanges(bytes)
            guard !lines.isEmpty else { return }
            let line = Array(bytes[lines[rng.below(lines.count)]])
            let copies = 1 + rng.below(200)
            var block: [UInt8] = []
            for _ in 0..<copies { block += line.last == 0x0A ? line : line + [0x0A] }
            bytes.insert(contentsOf: block, at: lines[rng.below(lines.count)].lowerBound)
        default: // swap two lines
            let lines = lineRanges(bytes)
            guard lines.count >= 2 else { return }
            let a = rng.below(lines.count), b = rng.below(lines.count)
            guard a != b else { return }
            let (first, second) = (min(a, b), max(a, b))
            let firstLine = Array(bytes[lines[first]]), secondLine = Array(bytes[lines[second]])
            bytes.replaceSubrange(lines[second], with: firstLine)
            bytes.replaceSubrange(lines[first], with: secondLine)
        }
    }
}
