import ArgumentParser
import Foundation
import KeyRelay
import KeyRelayHTTP

/// The `keyrelay` command line: scenarios on a virtual clock, and the lifecycle verbs on a database file.
@main
struct KeyRelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keyrelay",
        abstract: "Key lifecycle and notification engine modelled on IBM Key Protect.",
        discussion: """
        Start with: keyrelay scenario run scenarios
        Database commands read the master key from KEYRELAY_MASTER_KEY (base64 of 32 bytes) or --master-key-file.
        """,
        version: KeyRelayVersion.current,
        subcommands: KeyRelayCommand.allSubcommands)

    static var allSubcommands: [any ParsableCommand.Type] {
        [ScenarioCommand.self, Serve.self, SimulateCommand.self, KeyCommand.self, ResourceCommand.self, StatusCommand.self,
         EventsCommand.self, DeliverCommand.self, BackupCommand.self, AuditCommand.self]
    }
}

/// Prints `message` to standard error.
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

extension KeyRelayError {
    /// A failure of the command line's surroundings (a database that is not there, a file that cannot be read or
    /// written) as the one error type, its message naming the flag or file: `BAD_BODY_ERR` (400) for what the
    /// command line was given, `INTERNAL_SERVER_ERR` (500) for its own files.
    static func commandLine(_ code: ReasonCode, _ message: String) -> KeyRelayError {
        KeyRelayError(code, message, operation: "Command could not be completed")
    }

    /// `BAD_BODY_ERR`: what the command line was given (a `--db`, a `--to`) does not work.
    static func commandLine(_ message: String) -> KeyRelayError {
        commandLine(.badBody, message)
    }
}

/// Runs `body`, turning a `KeyRelayError` into its reason code and message on standard error (and, with `--json`, an
/// error object on standard output) and a non-zero exit. Anything else is left to ArgumentParser: the command
/// line's own errors are usage errors (`ValidationError`), printed with the usage.
/// The engine's messages use Key Protect's wording, which names API fields (`force=true`); they are shown with the
/// command line's flags instead (``CLIVocabulary``). KeyRelay's own explanation (``KeyRelayError/hint``) follows on a
/// `hint:` line of its own.
func reportingErrors<T>(json: Bool, _ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as KeyRelayError {
        let message = CLIVocabulary.rewrite(error.message)
        let hint = error.hint.map(CLIVocabulary.rewrite)
        if json {
            print(CLIJSON.encode(ErrorView(code: error.code.rawValue, status: error.statusCode, message: message,
                                           errorMsg: error.errorMsg, hint: hint)))
        }
        printError("error: \(error.code.rawValue) (\(error.statusCode)): \(message)")
        if let hint { printError("hint: \(hint)") }
        throw ExitCode.failure
    }
}

/// The API's words for what the command line calls by its flags, in one table.
enum CLIVocabulary {
    static let terms: [(api: String, cli: String)] = [
        ("delete with force=true", "delete with --force"),
        ("with force=true", "with --force"),
        ("The field 'interval_month'", "--rotation-months"),
        ("The field 'payload'", "--payload"),
        ("The field 'expirationDate'", "--expires"),
        ("The field 'aliases'", "--alias"),
        ("The field 'alias'", "--alias"),
        ("The field 'description'", "--description"),
        ("The field 'name'", "The key name"),
    ]

    static func rewrite(_ message: String) -> String {
        terms.reduce(message) { $0.replacingOccurrences(of: $1.api, with: $1.cli) }
    }
}

struct ErrorView: Codable {
    var code: String
    var status: Int
    var message: String
    var errorMsg: String?
    var hint: String?
}

enum CLIJSON {
    static func encode<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Timestamp.format(date))
        }
        guard let data = try? encoder.encode(value) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
