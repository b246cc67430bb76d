import ArgumentParser
import Foundation
import KeyRelay
import KeyRelayHTTP

/// `keyrelay audit`: reads the trail `serve --audit FILE` writes, filters it and prints it.
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Filter and print the audit trail written by serve --audit.",
        discussion: """
            Prints one line per matching event: time, action, outcome, status, Key Protect's reason code on failure, \
            initiator, target CRN and correlation id. --json prints the events themselves (one CADF object per line).
            """)

    @Option(help: ArgumentHelp("The audit trail (serve --audit FILE).", valueName: "FILE")) var file: String
    @Option(help: ArgumentHelp("Only this action, e.g. kms.secrets.sync.", valueName: "ACTION")) var action: String?
    @Option(help: ArgumentHelp("Only success or failure.", valueName: "OUTCOME")) var outcome: String?
    @Option(help: ArgumentHelp("Only events on this key: its id or alias, as the request named it.", valueName: "ID")) var key: String?
    @Option(help: ArgumentHelp("Only events at or after this time (RFC 3339, e.g. 2026-01-01T00:00:00Z).", valueName: "ISO8601"))
    var since: String?
    @Flag(help: "Print the matching events as JSON lines.") var json = false

    func validate() throws {
        if let outcome, !["success", "failure"].contains(outcome) {
            throw ValidationError("--outcome must be success or failure, not '\(outcome)'")
        }
        if let since, Timestamp.parse(since) == nil {
            throw ValidationError("--since must be an RFC 3339 time such as 2026-01-01T00:00:00Z, not '\(since)'")
        }
    }

    func run() throws {
        guard let data = FileManager.default.contents(atPath: file) else {
            printError("error: --file \(file): the audit trail cannot be read")
            throw ExitCode.failure
        }
        let filter = AuditFilter(action: action, outcome: outcome, keyID: key, since: since.flatMap(Timestamp.parse))
        let decoder = JSONDecoder()
        var unreadable = 0
        for (index, line) in data.split(separator: UInt8(ascii: "\n")).enumerated() where !line.isEmpty {
            guard let event = try? decoder.decode(AuditEvent.self, from: Data(line)) else {
                unreadable += 1
                if unreadable <= 3 { printError("warning: \(file):\(index + 1): not an audit event, skipped") }
                continue
            }
            guard filter.matches(event) else { continue }
            print(json ? event.jsonLine : event.summary)
        }
    }
}
