import ArgumentParser
import Foundation
import KeyRelay
import KeyRelayBus
import KeyRelayHTTP
import Logging

/// `keyrelay serve`: the Key Protect–compatible HTTP API (all logic lives in KeyRelayHTTP).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the Key Protect v2-compatible HTTP API over a database.",
        discussion: """
            Without --dev, a master key (--master-key-file or KEYRELAY_MASTER_KEY) and an access file (--access) are \
            required. --dev prints a root token, grants it Manager, KeyPurge and Service on every instance and, if no \
            master key is given, generates one beside a new database (mode 0600); an existing database needs the key it was created with. --manual-clock (with --dev) adds \
            POST /api/v2/_dev/clock.
            """)

    @Option(name: .long, help: "The SQLite database file (created if missing).")
    var db: String = "keyrelay.sqlite"

    @Option(name: .long, help: "The address to listen on.")
    var host: String = "127.0.0.1"

    @Option(name: .long, help: "The port to listen on (1-65535; 0 asks the system for any free port, printed once listening).")
    var port: Int = 8080

    @Option(name: .customLong("master-key-file"), help: "A file holding the base64 master key (32 bytes).")
    var masterKeyFile: String?

    @Option(name: .long, help: "The access file (JSON: tokens → principal, role, instances).")
    var access: String?

    @Flag(name: .long, help: "Development mode: a root token on every instance; generated master key if none.")
    var dev = false

    @Option(name: .customLong("dev-token"), help: "The dev root token (default: random, printed).")
    var devToken: String?

    @Flag(name: .customLong("manual-clock"), help: "Run on a manual clock moved by POST /api/v2/_dev/clock (--dev only).")
    var manualClock = false

    @Option(name: .customLong("webhook"), help: ArgumentHelp(
        "Deliver SERVICE's notifications as signed CloudEvents webhooks to URL (repeatable; or KEYRELAY_WEBHOOKS).",
        valueName: "SERVICE=URL"))
    var webhooks: [String] = []

    @Option(name: .customLong("webhook-secret-file"), help: ArgumentHelp(
        "The file holding the webhook signing secret, whsec_ + base64 (or KEYRELAY_WEBHOOK_SECRET). Required with webhooks.",
        valueName: "FILE"))
    var webhookSecretFile: String?

    @Option(name: .customLong("webhook-timeout"), help: ArgumentHelp(
        "How long a webhook receiver has to answer, e.g. 10s or 500ms (or KEYRELAY_WEBHOOK_TIMEOUT; default 10s).",
        valueName: "DURATION"))
    var webhookTimeout: String?

    @Option(name: .customLong("log-level"), help: ArgumentHelp(
        "The lowest level logged: trace, debug, info, notice, warning, error or critical (default info).", valueName: "LEVEL"))
    var logLevel: String = "info"

    @Option(name: .customLong("log-format"), help: ArgumentHelp(
        "Log lines as text or json (one object per line), on standard error (default text).", valueName: "FORMAT"))
    var logFormat: String = "text"

    @Option(name: .customLong("audit"), help: ArgumentHelp(
        "Append the audit trail (Activity Tracker CADF events, one JSON object per line) to FILE, created with mode 0600; - for standard output.",
        valueName: "FILE"))
    var audit: String?

    /// `--log-level` as a level (validated by ``validate()``).
    var level: Logger.Level { Logger.Level(rawValue: logLevel) ?? .info }
    /// `--log-format` as a format (validated by ``validate()``).
    var format: LogFormat { LogFormat(rawValue: logFormat) ?? .text }

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of \(Logger.Level.names.joined(separator: ", ")), not '\(logLevel)'")
        }
        guard LogFormat(rawValue: logFormat) != nil else {
            throw ValidationError("--log-format must be text or json, not '\(logFormat)'")
        }
        if let audit, audit.isEmpty { throw ValidationError("--audit needs a file name (or - for standard output)") }
        do throws(WebhookConfigurationError) { _ = try WebhookSubscriptions(parsing: webhooks) } catch { throw ValidationError(error.message) }
        if let webhookTimeout, DurationText.parse(webhookTimeout) == nil {
            throw ValidationError("--webhook-timeout must be a duration such as 10s or 500ms, not '\(webhookTimeout)'")
        }
        // Port 0 asks the system for a free port; anything outside 0–65535 would fail deep inside the bind (or wrap).
        guard (0...65535).contains(port) else {
            throw ValidationError("--port must be from 1 to 65535 (or 0 for any free port), not \(port)")
        }
    }

    func run() async throws {
        var options = ServeOptions(databasePath: db)
        options.host = host
        options.port = port
        options.masterKeyFile = masterKeyFile
        options.accessFile = access
        options.dev = dev
        options.devToken = devToken
        options.manualClock = manualClock
        // Before anything is printed or written (a dev token, a generated key file): a port that cannot be bound is
        // one line, not a NIO error after the side effects. (The server binds again for real; losing that race is
        // still reported as one line below.)
        if let problem = ListenCheck.problem(host: host, port: port) {
            printError("keyrelay serve: cannot listen on \(ListenCheck.display(host: host, port: port)): \(problem)")
            throw ExitCode(2)
        }
        options.webhooks = try WebhookSubscriptions(parsing: webhooks)
        options.webhookSecretFile = webhookSecretFile
        options.webhookTimeout = webhookTimeout.flatMap(DurationText.parse)
        options.logLevel = level
        options.logFormat = format
        options.auditFile = audit
        do {
            try await KeyRelayServer.run(options)
        } catch let error as KeyRelayError {
            printError("keyrelay serve: \(error.message)")
            throw ExitCode(2)
        } catch {
            printError("keyrelay serve: \(error)")
            throw ExitCode(2)
        }
    }
}
