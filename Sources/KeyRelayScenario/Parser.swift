import Foundation
import KeyRelay
import KeyRelayBus

/// Parses scenario text. The whole file is parsed before anything runs: the first error is thrown and no step of
/// the file is returned.
public enum ScenarioParser {
    /// Parses `text`; `file` is the name errors and transcripts show.
    public static func parse(_ text: String, file: String) throws(ScenarioSyntaxError) -> Scenario {
        try parse(lines: try Lexer.lex(text, file: file), file: file)
    }

    /// Parses the bytes of a scenario file. Bytes that are not UTF-8, and over-long lines, are syntax errors at
    /// their line and column.
    public static func parse(bytes: [UInt8], file: String) throws(ScenarioSyntaxError) -> Scenario {
        try parse(lines: try Lexer.lex(bytes: bytes, file: file), file: file)
    }

    private static func parse(lines: [LexedLine], file: String) throws(ScenarioSyntaxError) -> Scenario {
        var names = Names()
        var steps: [ScenarioStep] = []
        for line in lines {
            var cursor = Cursor(file: file, line: line)
            let action = try parseStep(&cursor, names: &names, isFirst: steps.isEmpty)
            try cursor.end()
            steps.append(ScenarioStep(line: line.number, source: line.source, action: action))
        }
        return Scenario(file: file, steps: steps)
    }

    /// Names the script has introduced so far, by kind.
    struct Names {
        var keys: Set<String> = []
        var resources: [String: ResourceKind] = [:]
        var ciphertexts: Set<String> = []
    }

    // MARK: - Steps

    static func parseStep(_ c: inout Cursor, names: inout Names, isFirst: Bool) throws(ScenarioSyntaxError) -> StepAction {
        let verb = try c.keyword(["clock", "advance", "key", "bucket", "deployment", "write", "read", "bus", "drain", "expect"],
                                 what: "a step (clock, advance, key, bucket, deployment, write, read, bus, drain or expect)")
        switch verb {
        case "clock":
            let startToken = c.peek
            _ = try c.keyword(["start"], what: "'start'")
            guard isFirst else {
                throw c.error(at: startToken, "'clock start' only as the first step of a scenario (the clock never runs backwards)")
            }
            return .clockStart(try c.timestamp())
        case "advance":
            return .advance(try c.duration(restOfLine: true))
        case "key":
            return try parseKey(&c, names: &names)
        case "bucket", "deployment":
            let kind = ResourceKind(rawValue: verb)!
            _ = try c.keyword(["create"], what: "'create'")
            let name = try c.newName(what: "a name for the \(verb)")
            guard names.resources[name] == nil, !names.keys.contains(name) else {
                throw c.error(at: c.previous, "a name not used before in this scenario, saw \(Quoted.shown(name))")
            }
            _ = try c.keyword(["on"], what: "'on' and the key protecting the \(verb)")
            let key = try c.knownName(names.keys, what: "a key created earlier in the scenario (key create …)")
            let retention = try c.optionalKeyword("retention")
            names.resources[name] = kind
            return .createResource(kind, name: name, key: key, retention: retention)
        case "write":
            let resource = try c.knownName(Set(names.resources.keys), what: "a bucket or deployment created earlier")
            let object = try c.word(what: "an object name")
            let text = try c.word(what: "the text to write, in quotes")
            return .write(resource: resource, object: object, text: text)
        case "read":
            let resource = try c.knownName(Set(names.resources.keys), what: "a bucket or deployment created earlier")
            let object = try c.word(what: "an object name")
            return .read(resource: resource, object: object)
        case "bus":
            return try parseBus(&c)
        case "drain":
            return .drain
        default:
            return .expect(try parseExpect(&c, names: names))
        }
    }

    static func parseKey(_ c: inout Cursor, names: inout Names) throws(ScenarioSyntaxError) -> StepAction {
        let verbs = ["create", "policy", "wrap", "unwrap"] + KeyVerb.allCases.map(\.rawValue)
        let verb = try c.keyword(verbs, what: "a key action (\(verbs.joined(separator: ", ")))")
        if verb == "create" {
            let name = try c.newName(what: "a name for the new key")
            guard !names.keys.contains(name), names.resources[name] == nil else {
                throw c.error(at: c.previous, "a name not used before in this scenario, saw \(Quoted.shown(name))")
            }
            var options = KeyCreateOptions()
            var principal: String?
            let optionWords = ["root", "standard", "imported", "payload", "expires", "dual-auth", "rotation", "alias", "name",
                               "description", "as"]
            while !c.atEnd {
                let option = try c.keyword(optionWords, what: "a key option (\(optionWords.joined(separator: ", ")))")
                switch option {
                case "root": options.kind = .root
                case "standard": options.kind = .standard
                case "imported": if options.material == .generated { options.material = .importedSeeded }
                case "payload": options.material = .imported(try c.base64())
                case "expires":
                    let how = try c.keyword(["at", "in"], what: "'at <time>' or 'in <duration>'")
                    if how == "at" { options.expiresAt = try c.timestamp() } else { options.expiresIn = try c.duration(restOfLine: false) }
                case "dual-auth": options.dualAuth = true
                case "rotation": options.rotationMonths = try c.rotationMonths()
                case "alias": options.aliases.append(try c.word(what: "an alias"))
                case "name": options.name = try c.word(what: "a key name")
                case "description": options.description = try c.word(what: "a description")
                default: principal = try c.word(what: "a principal (who acts)")
                }
            }
            names.keys.insert(name)
            return .createKey(name: name, options: options, principal: principal)
        }
        let key = try c.knownName(names.keys, what: "a key created earlier in the scenario (key create …)")
        switch verb {
        case "policy":
            let which = try c.keyword(["dual-auth", "rotation"], what: "'dual-auth' or 'rotation every <n> months'")
            let change: PolicyChange = which == "dual-auth" ? .dualAuth : .rotation(months: try c.rotationMonths())
            return .policy(key: key, change, principal: try c.principal())
        case "wrap":
            let name = try c.newName(what: "a name for the ciphertext")
            let plaintext = c.atEnd || c.peekIs("as") ? nil : try c.word(what: "the plaintext to wrap")
            names.ciphertexts.insert(name)
            return .wrap(key: key, ciphertext: name, plaintext: plaintext, principal: try c.principal())
        case "unwrap":
            let name = try c.knownName(names.ciphertexts, what: "a ciphertext named by an earlier 'key wrap'")
            return .unwrap(key: key, ciphertext: name, principal: try c.principal())
        default:
            let keyVerb = KeyVerb(rawValue: verb)!
            var force = false
            var payload: Data?
            if keyVerb == .delete { force = try c.optionalKeyword("force") }
            if keyVerb == .rotate, try c.optionalKeyword("payload") { payload = try c.base64() }
            return .keyAction(keyVerb, key: key, force: force, payload: payload, principal: try c.principal())
        }
    }

    static func parseBus(_ c: inout Cursor) throws(ScenarioSyntaxError) -> StepAction {
        let faults = ["drop", "fail", "delay", "duplicate", "partition", "heal"]
        let fault = try c.keyword(faults, what: "a bus fault (\(faults.joined(separator: ", ")))")
        let service = try c.service()
        switch fault {
        case "drop": return .bus(.drop(try c.count(what: "how many notifications to drop")), service: service)
        case "fail": return .bus(.fail(try c.count(what: "how many deliveries to fail")), service: service)
        case "delay": return .bus(.delay(try c.duration(restOfLine: true)), service: service)
        case "duplicate": return .bus(.duplicate(c.atEnd ? 1 : try c.count(what: "how many notifications to duplicate")), service: service)
        case "partition":
            if c.atEnd { return .bus(.partition(until: nil, duration: nil), service: service) }
            let how = try c.keyword(["until", "for"], what: "'until <time>', 'for <duration>' or the end of the line")
            if how == "until" { return .bus(.partition(until: try c.timestamp(), duration: nil), service: service) }
            return .bus(.partition(until: nil, duration: try c.duration(restOfLine: true)), service: service)
        default: return .bus(.heal, service: service)
        }
    }

    static func parseExpect(_ c: inout Cursor, names: Names) throws(ScenarioSyntaxError) -> Expectation {
        let resources = Set(names.resources.keys)
        if let token = c.peek, !token.quoted, resources.contains(token.text) {
            c.advance()
            _ = try c.keyword(["key-version"], what: "'key-version <n>' after a resource name")
            return .resourceKeyVersion(resource: token.text, ordinal: try c.count(what: "a key version number (1 = the first)"))
        }
        let kinds = ["ok", "status", "error", "key", "access", "drift", "notifications", "read", "plaintext"]
        let kind = try c.keyword(kinds, what: "an expectation (\(kinds.joined(separator: ", ")), or a resource name then key-version)")
        switch kind {
        case "ok": return .ok
        case "status": return .status(try c.count(what: "an HTTP status such as 204 or 409"))
        case "error":
            let code = try c.word(what: "a reason code such as REQ_TOO_EARLY_ERR")
            guard ReasonCode(rawValue: code) != nil else {
                throw c.error(at: c.previous, "a Key Protect reason code such as REQ_TOO_EARLY_ERR, saw \(Quoted.shown(code))")
            }
            return .error(code: code, messageContains: c.atEnd ? nil : try c.word(what: "text the message contains"))
        case "key":
            let key = try c.knownName(names.keys, what: "a key created earlier in the scenario")
            let what = try c.keyword(["state", "version", "versions", "registrations"], what: "'state', 'version' or 'registrations'")
            switch what {
            case "state":
                let word = try c.word(what: "a key state (active, suspended, deactivated, destroyed, purged)")
                if word == "purged" { return .keyPurged(key: key) }
                guard let state = KeyState(name: word), state != .preActivation else {
                    throw c.error(at: c.previous, "a key state (active, suspended, deactivated, destroyed, purged), saw \(Quoted.shown(word))")
                }
                return .keyState(key: key, state: state)
            case "registrations": return .registrations(key: key, count: try c.count(what: "a number of registrations"))
            default: return .keyVersion(key: key, count: try c.count(what: "a version number (1 = never rotated)"))
            }
        case "access":
            let resource = try c.knownName(resources, what: "a bucket or deployment created earlier")
            let verdict = try c.keyword(["allowed", "denied"], what: "'allowed' or 'denied'")
            return .access(resource: resource, allowed: verdict == "allowed")
        case "drift":
            var key: String?
            if let token = c.peek, names.keys.contains(token.text) { key = token.text; c.advance() }
            return .drift(key: key, count: try c.count(what: key == nil ? "a key name or a number of drifted registrations" : "a number of drifted registrations"))
        case "notifications":
            var key: String?
            var service: String?
            if let token = c.peek, !token.text.contains("=") {
                if names.keys.contains(token.text) { key = token.text; c.advance() } else { service = try c.service() }
            }
            var counts: [(NotificationStatus, Int)] = []
            while !c.atEnd {
                let token = c.peek!
                let parts = token.text.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, let status = NotificationStatus(rawValue: parts[0]), let n = Int(parts[1]),
                      (0...FaultInjector.maximumCount).contains(n) else {
                    throw c.error(at: token, "a count such as pending=0, sent=1, acknowledged=2 or dead=1, saw \(Quoted.shown(token.text))")
                }
                counts.append((status, n))
                c.advance()
            }
            guard !counts.isEmpty else { throw c.error(at: nil, "at least one count such as pending=0 or acknowledged=2") }
            return .notifications(key: key, service: service, counts: counts)
        case "read":
            let resource = try c.knownName(resources, what: "a bucket or deployment created earlier")
            let object = try c.word(what: "an object name")
            return .read(resource: resource, object: object, text: try c.word(what: "the expected text, in quotes"))
        default:
            return .plaintext(try c.word(what: "the expected plaintext, in quotes"))
        }
    }
}

/// How an error message echoes input: quoted, and cut to 40 characters so that a huge token never fills a terminal
/// or a log.
enum Quoted {
    static let limit = 40
    static func shown(_ text: String) -> String {
        guard text.count > limit else { return "'\(text)'" }
        return "'\(text.prefix(limit))…' (\(text.utf8.count) bytes)"
    }
}

/// Walks the words of one line, producing precise errors.
struct Cursor {
    let file: String
    let line: LexedLine
    var index = 0

    init(file: String, line: LexedLine) {
        self.file = file
        self.line = line
    }

    var atEnd: Bool { index >= line.tokens.count }
    var peek: Token? { atEnd ? nil : line.tokens[index] }
    var previous: Token? { index > 0 ? line.tokens[index - 1] : nil }
    mutating func advance() { index += 1 }
    func peekIs(_ word: String) -> Bool { peek.map { !$0.quoted && $0.text == word } ?? false }

    /// An error at `token` (or, when nil, at the end of the line).
    func error(at token: Token?, _ expected: String) -> ScenarioSyntaxError {
        let column = token?.column ?? (line.source.count + 1 + (line.tokens.first.map { $0.column - 1 } ?? 0))
        return ScenarioSyntaxError(file: file, line: line.number, column: column, expected: expected)
    }

    private func describe(_ token: Token?) -> String {
        guard let token else { return "the end of the line" }
        return Quoted.shown(token.text)
    }

    mutating func word(what: String) throws(ScenarioSyntaxError) -> String {
        guard let token = peek else { throw error(at: nil, "\(what), saw the end of the line") }
        advance()
        return token.text
    }

    mutating func keyword(_ words: [String], what: String) throws(ScenarioSyntaxError) -> String {
        guard let token = peek, !token.quoted, words.contains(token.text) else {
            throw error(at: peek, "\(what), saw \(describe(peek))")
        }
        advance()
        return token.text
    }

    mutating func optionalKeyword(_ word: String) throws(ScenarioSyntaxError) -> Bool {
        guard peekIs(word) else { return false }
        advance()
        return true
    }

    mutating func newName(what: String) throws(ScenarioSyntaxError) -> String {
        guard let token = peek else { throw error(at: nil, "\(what), saw the end of the line") }
        let ok = !token.text.isEmpty && token.text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
        guard ok else { throw error(at: token, "\(what) (letters, digits, '-', '_', '.'), saw \(Quoted.shown(token.text))") }
        advance()
        return token.text
    }

    mutating func knownName(_ known: Set<String>, what: String) throws(ScenarioSyntaxError) -> String {
        guard let token = peek else { throw error(at: nil, "\(what), saw the end of the line") }
        guard known.contains(token.text) else { throw error(at: token, "\(what), saw \(Quoted.shown(token.text))") }
        advance()
        return token.text
    }

    /// A whole number from 0 to `maximum` (default `FaultInjector.maximumCount`, one million): every count a script
    /// names is bounded, so none can overflow a counter it is added to.
    mutating func count(what: String, maximum: Int = FaultInjector.maximumCount) throws(ScenarioSyntaxError) -> Int {
        guard let token = peek, let n = Int(token.text), (0...maximum).contains(n) else {
            throw error(at: peek, "\(what) (a whole number from 0 to \(maximum)), saw \(describe(peek))")
        }
        advance()
        return n
    }

    mutating func timestamp() throws(ScenarioSyntaxError) -> Date {
        guard let token = peek, let date = Timestamp.parse(token.text) else {
            throw error(at: peek, "an RFC 3339 time from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z such as 2026-01-01T00:00:00Z, saw \(describe(peek))")
        }
        advance()
        return date
    }

    /// A duration: the rest of the line (`advance 1h 1s`), or the words that read as durations (`expires in 2h 30m`).
    mutating func duration(restOfLine: Bool) throws(ScenarioSyntaxError) -> TimeInterval {
        guard let first = peek else { throw error(at: nil, "a duration such as 4h, 1h 1s or 30d, saw the end of the line") }
        var words: [String] = []
        var end = index
        if restOfLine {
            words = line.tokens[index...].map(\.text)
            end = line.tokens.count
        } else {
            while end < line.tokens.count, DurationText.parse(line.tokens[end].text) != nil {
                words.append(line.tokens[end].text)
                end += 1
            }
        }
        guard !words.isEmpty, let interval = DurationText.parse(words.joined(separator: " ")), interval > 0 else {
            throw error(at: first, "a duration such as 4h, 1h 1s or 30d (units ms, s, m, h, d, w; at most \(DurationText.maximumText)), saw \(Quoted.shown(words.isEmpty ? first.text : words.joined(separator: " ")))")
        }
        index = end
        return interval
    }

    mutating func base64() throws(ScenarioSyntaxError) -> Data {
        guard let token = peek, let data = Data(base64Encoded: token.text) else {
            throw error(at: peek, "base64 key material (e.g. the output of `openssl rand -base64 32`), saw \(describe(peek))")
        }
        advance()
        return data
    }

    /// `every <n> month(s)` or `<n>`; n from 1 to 12.
    mutating func rotationMonths() throws(ScenarioSyntaxError) -> Int {
        _ = try optionalKeyword("every")
        guard let token = peek, let n = Int(token.text), (1...12).contains(n) else {
            throw error(at: peek, "a rotation interval of 1 to 12 months, saw \(describe(peek))")
        }
        advance()
        if !(try optionalKeyword("months")) { _ = try optionalKeyword("month") }
        return n
    }

    mutating func service() throws(ScenarioSyntaxError) -> String {
        guard let token = peek, let name = ServiceName.canonical(token.text) else {
            throw error(at: peek, "a service name (cloud-object-storage or cos, databases-for-postgresql or databases), saw \(describe(peek))")
        }
        advance()
        return name
    }

    /// An optional trailing `as <principal>`.
    mutating func principal() throws(ScenarioSyntaxError) -> String? {
        guard try optionalKeyword("as") else { return nil }
        return try word(what: "a principal (who acts)")
    }

    func end() throws(ScenarioSyntaxError) {
        if let token = peek { throw error(at: token, "the end of the line, saw \(Quoted.shown(token.text))") }
    }
}
