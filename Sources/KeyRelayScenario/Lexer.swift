import Foundation

/// One word of a scenario line, after quoting is resolved.
struct Token: Sendable, Equatable {
    /// The word's text with quotes and escapes resolved.
    var text: String
    /// 1-based column of the word's first character in the line.
    var column: Int
    /// Whether any part of the word was quoted (a quoted word is never a keyword).
    var quoted: Bool
}

/// A line split into words, with where its comment starts.
struct LexedLine: Sendable {
    var number: Int
    var tokens: [Token]
    /// The line's text without its comment, trimmed: what the transcript shows.
    var source: String
}

/// Splits scenario text into lines of words: shell-style quoting (`"..."` with backslash escapes, `'...'` literal),
/// backslash escapes outside quotes, `#` comments to the end of the line.
///
/// Input is taken as bytes and checked line by line before any line becomes a `String`: a line longer than
/// ``maximumLineBytes`` or a byte sequence that is not UTF-8 is a syntax error at its line and column, found without
/// decoding (or holding in memory as characters) anything but that line.
enum Lexer {
    /// The longest line a scenario may have: 16 KiB. Real steps are a few dozen characters; the bound keeps a
    /// hostile file from costing more than a linear scan.
    static let maximumLineBytes = 16 * 1024

    static func lex(_ text: String, file: String) throws(ScenarioSyntaxError) -> [LexedLine] {
        try lex(bytes: Array(text.utf8), file: file)
    }

    static func lex(bytes: [UInt8], file: String) throws(ScenarioSyntaxError) -> [LexedLine] {
        var result: [LexedLine] = []
        var number = 0
        var start = 0
        while start <= bytes.count {
            number += 1
            let newline = bytes[start...].firstIndex(of: 0x0A) ?? bytes.count
            var end = newline
            if end > start, bytes[end - 1] == 0x0D { end -= 1 }
            let raw = bytes[start..<end]
            start = newline + 1
            if raw.count > maximumLineBytes {
                throw ScenarioSyntaxError(file: file, line: number, column: 1,
                                          expected: "a line of at most \(maximumLineBytes) bytes, saw one of \(raw.count) bytes")
            }
            let line = try decode(raw, file: file, line: number)
            if let lexed = try lexLine(line, number: number, file: file) { result.append(lexed) }
        }
        return result
    }

    /// The line as text, or a syntax error at the first byte that is not UTF-8.
    private static func decode(_ raw: ArraySlice<UInt8>, file: String, line: Int) throws(ScenarioSyntaxError) -> String {
        if let text = String(validating: raw, as: UTF8.self) { return text }
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = raw.makeIterator()
        var offset = 0
        scan: while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let scalar): offset += scalar.count
            case .error: break scan
            case .emptyInput: break scan
            }
        }
        let prefix = raw.prefix(offset)
        let column = String(decoding: prefix, as: UTF8.self).count + 1
        let bad = offset < raw.count ? raw[raw.startIndex + offset] : 0
        throw ScenarioSyntaxError(file: file, line: line, column: column,
                                  expected: "UTF-8 text, saw the byte 0x\(String(bad, radix: 16, uppercase: true)) that does not start or continue a UTF-8 character")
    }

    /// One line's words, or nil for a blank or comment-only line.
    private static func lexLine(_ line: String, number: Int, file: String) throws(ScenarioSyntaxError) -> LexedLine? {
        let chars = Array(line)
        var tokens: [Token] = []
        var i = 0
        var commentStart = chars.count
        func error(_ column: Int, _ expected: String) -> ScenarioSyntaxError {
            ScenarioSyntaxError(file: file, line: number, column: column, expected: expected)
        }
        while i < chars.count {
            let c = chars[i]
            if c == " " || c == "\t" { i += 1; continue }
            if c == "#" { commentStart = i; break }
            let start = i
            var word = ""
            var quoted = false
            while i < chars.count, chars[i] != " ", chars[i] != "\t" {
                let ch = chars[i]
                if ch == "\"" {
                    quoted = true
                    let open = i
                    i += 1
                    var closed = false
                    while i < chars.count {
                        if chars[i] == "\\", i + 1 < chars.count {
                            word.append(unescape(chars[i + 1]))
                            i += 2
                        } else if chars[i] == "\"" {
                            closed = true
                            i += 1
                            break
                        } else {
                            word.append(chars[i])
                            i += 1
                        }
                    }
                    if !closed { throw error(open + 1, "a closing '\"' for the quote opened here") }
                } else if ch == "'" {
                    quoted = true
                    let open = i
                    i += 1
                    var closed = false
                    while i < chars.count {
                        if chars[i] == "'" { closed = true; i += 1; break }
                        word.append(chars[i])
                        i += 1
                    }
                    if !closed { throw error(open + 1, "a closing \"'\" for the quote opened here") }
                } else if ch == "\\" {
                    guard i + 1 < chars.count else { throw error(i + 1, "a character after '\\'") }
                    word.append(unescape(chars[i + 1]))
                    i += 2
                } else {
                    word.append(ch)
                    i += 1
                }
            }
            tokens.append(Token(text: word, column: start + 1, quoted: quoted))
        }
        let source = String(chars[0..<commentStart]).trimmingCharacters(in: .whitespaces)
        return tokens.isEmpty ? nil : LexedLine(number: number, tokens: tokens, source: source)
    }

    private static func unescape(_ c: Character) -> Character {
        switch c {
        case "n": "\n"
        case "t": "\t"
        case "r": "\r"
        case "0": "\0"
        default: c
        }
    }
}

