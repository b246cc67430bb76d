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
enum Lexer {
    static func lex(_ text: String, file: String) throws(ScenarioSyntaxError) -> [LexedLine] {
        var result: [LexedLine] = []
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        for (index, rawLine) in lines.enumerated() {
            let number = index + 1
            var line = String(rawLine)
            if line.hasSuffix("\r") { line.removeLast() }
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
            if !tokens.isEmpty { result.append(LexedLine(number: number, tokens: tokens, source: source)) }
        }
        return result
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

