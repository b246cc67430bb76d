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
        subcommands: KeyRelayCommand.allSubcommands)

    static var allSubcommands: [any ParsableCommand.Type] {
        [ScenarioCommand.self, Serve.self, KeyCommand.self, ResourceCommand.self, StatusCommand.self, EventsCommand.self]
    }
}

/// Prints `message` to standard error.
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Runs `body`, turning a `KeyRelayError` into its reason code and message on standard error (and, with `--json`, an
/// error object on standard output) and a non-zero exit. Anything else is left to ArgumentParser: the command line's
/// own errors are usage errors (`ValidationError`), printed with the usage.
func reportingErrors<T>(json: Bool, _ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as KeyRelayError {
        if json {
            print(CLIJSON.encode(ErrorView(code: error.code.rawValue, status: error.statusCode, message: error.message,
                                           errorMsg: error.errorMsg)))
        }
        printError("error: \(error.code.rawValue) (\(error.statusCode)): \(error.message)")
        throw ExitCode.failure
    }
}

struct ErrorView: Codable {
    var code: String
    var status: Int
    var message: String
    var errorMsg: String?
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
