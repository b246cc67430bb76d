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

            Every option can also be set in the environment: KEYRELAY_ and the flag in upper snake case \
            (KEYRELAY_DB, KEYRELAY_PORT, KEYRELAY_TLS_CERT, KEYRELAY_DEV=1, ...); a flag on the command line wins. \
            GET /health, /ready and /metrics (Prometheus) answer without a token. SIGHUP re-reads --access; SIGTERM \
            or SIGINT stops gracefully, finishing in-flight requests and deliveries. See docs/operations.md.
            """)

    // Every option is also an environment variable (ServeSetting: KEYRELAY_ + the flag in upper snake case); the
    // flag wins. `validate()` folds the environment in, so `run()` reads resolved values.
    @Option(name: .long, help: ServeSetting.db.help("The database: an SQLite file, created if missing (default: keyrelay.sqlite), or postgres://user[:password]@host[:port]/database, shared by replicas."))
    var db: String?

    @Option(name: .long, help: ServeSetting.host.help("The address to listen on (default: 127.0.0.1)."))
    var host: String?

    @Option(name: .long, help: ServeSetting.port.help(
        "The port to listen on, 1-65535; 0 asks the system for any free port, printed once listening (default: 8080)."))
    var port: Int?

    @Option(name: .customLong("private-port"), help: ServeSetting.privatePort.help(
        "Also listen on this port as Key Protect's private endpoint (for allowedNetwork private-only instances; reported by GET /api/v2/instance/allowed_ip_port), 1-65535 or 0 for any free port."))
    var privatePort: Int?

    @Option(name: .customLong("master-key-file"), help: ServeSetting.masterKeyFile.help(
        "A file holding the base64 master key (32 bytes); or give the key itself in KEYRELAY_MASTER_KEY."))
    var masterKeyFile: String?

    @Option(name: .long, help: ServeSetting.access.help("The access file (JSON: tokens → principal, role, instances); SIGHUP re-reads it."))
    var access: String?

    @Flag(name: .long, help: ServeSetting.dev.help("Development mode: a root token on every instance; generated master key if none."))
    var dev = false

    @Option(name: .customLong("dev-token"), help: ServeSetting.devToken.help("The dev root token (default: random, printed)."))
    var devToken: String?

    @Flag(name: .customLong("manual-clock"), help: ServeSetting.manualClock.help(
        "Run on a manual clock moved by POST /api/v2/_dev/clock (--dev only)."))
    var manualClock = false

    @Option(name: .customLong("webhook"), help: ServeSetting.webhook.help(
        "Deliver SERVICE's notifications as signed CloudEvents webhooks to URL (repeatable).",
        valueName: "SERVICE=URL"))
    var webhooks: [String] = []

    @Option(name: .customLong("webhook-secret-file"), help: ServeSetting.webhookSecretFile.help(
        "The file holding the webhook signing secret, whsec_ + base64 (or the secret itself in KEYRELAY_WEBHOOK_SECRET). Required with webhooks.",
        valueName: "FILE"))
    var webhookSecretFile: String?

    @Option(name: .customLong("webhook-timeout"), help: ServeSetting.webhookTimeout.help(
        "How long a webhook receiver has to answer, e.g. 10s or 500ms (default: 10s).",
        valueName: "DURATION"))
    var webhookTimeout: String?

    @Option(name: .customLong("delivery-concurrency"), help: ServeSetting.deliveryConcurrency.help(
        "How many notifications (to distinct resources) are delivered at once, 1-\(DeliveryPolicy.maximumConcurrency) (default: \(DeliveryPolicy.defaultConcurrency)).",
        valueName: "N"))
    var deliveryConcurrency: Int?

    @Option(name: .customLong("tls-cert"), help: ServeSetting.tlsCert.help(
        "Serve HTTPS with this PEM certificate chain, leaf first (with --tls-key).", valueName: "FILE"))
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: ServeSetting.tlsKey.help("The PEM private key of --tls-cert.", valueName: "FILE"))
    var tlsKey: String?

    @Option(name: .customLong("shutdown-timeout"), help: ServeSetting.shutdownTimeout.help(
        "How long SIGTERM/SIGINT waits for in-flight requests and deliveries before cancelling them, e.g. 30s (default: 30s).",
        valueName: "DURATION"))
    var shutdownTimeout: String?

    @Option(name: .customLong("log-level"), help: ServeSetting.logLevel.help(
        "The lowest level logged: trace, debug, info, notice, warning, error or critical (default: info).", valueName: "LEVEL"))
    var logLevel: String?

    @Option(name: .customLong("log-format"), help: ServeSetting.logFormat.help(
        "Log lines as text or json (one object per line), on standard error (default: text).", valueName: "FORMAT"))
    var logFormat: String?

    @Option(name: .customLong("audit"), help: ServeSetting.audit.help(
        "Append the audit trail (Activity Tracker CADF events, one JSON object per line) to FILE, created with mode 0600; - for standard output.",
        valueName: "FILE"))
    var audit: String?

    /// `--log-level` as a level (validated by ``validate()``).
    var level: Logger.Level { logLevel.flatMap(Logger.Level.init(rawValue:)) ?? .info }
    /// `--log-format` as a format (validated by ``validate()``).
    var format: LogFormat { logFormat.flatMap(LogFormat.init(rawValue:)) ?? .text }

    mutating func validate() throws {
        let environment = ServeEnvironment()
        db = environment.string(.db, db) ?? "keyrelay.sqlite"
        host = environment.string(.host, host) ?? "127.0.0.1"
        // Port 0 asks the system for a free port; anything outside 0–65535 would fail deep inside the bind (or wrap).
        port = try environment.integer(.port, port, in: 0...65535, what: "from 1 to 65535 (or 0 for any free port)") ?? 8080
        privatePort = try environment.integer(.privatePort, privatePort, in: 0...65535, what: "from 1 to 65535 (or 0 for any free port)")
        if let privatePort, privatePort != 0, privatePort == port {
            throw ValidationError("--private-port must differ from --port (\(privatePort))")
        }
        masterKeyFile = environment.string(.masterKeyFile, masterKeyFile)
        access = environment.string(.access, access)
        dev = try environment.flag(.dev, dev)
        devToken = environment.string(.devToken, devToken)
        manualClock = try environment.flag(.manualClock, manualClock)
        webhookSecretFile = environment.string(.webhookSecretFile, webhookSecretFile)
        let concurrencyRange = 1...DeliveryPolicy.maximumConcurrency
        deliveryConcurrency = try environment.integer(.deliveryConcurrency, deliveryConcurrency, in: concurrencyRange,
                                                      what: "from 1 to \(concurrencyRange.upperBound)")
        tlsCert = environment.string(.tlsCert, tlsCert)
        tlsKey = environment.string(.tlsKey, tlsKey)
        if shutdownTimeout == nil, let text = environment.string(.shutdownTimeout, nil) {
            guard DurationText.parse(text) != nil else {
                throw ValidationError("\(ServeSetting.shutdownTimeout.variable) must be a duration such as 30s or 500ms, not '\(text.prefix(64))'")
            }
            shutdownTimeout = text
        }
        // KEYRELAY_WEBHOOKS, KEYRELAY_WEBHOOK_SECRET and KEYRELAY_WEBHOOK_TIMEOUT are read by the server itself.
        // Logging: a bad value names where it came from, the flag or its variable.
        let levelSource = logLevel == nil ? ServeSetting.logLevel.variable : ServeSetting.logLevel.flag
        logLevel = environment.string(.logLevel, logLevel)
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("\(levelSource) must be one of \(Logger.Level.names.joined(separator: ", ")), not '\(logLevel.prefix(64))'")
        }
        let formatSource = logFormat == nil ? ServeSetting.logFormat.variable : ServeSetting.logFormat.flag
        logFormat = environment.string(.logFormat, logFormat)
        if let logFormat, LogFormat(rawValue: logFormat) == nil {
            throw ValidationError("\(formatSource) must be text or json, not '\(logFormat.prefix(64))'")
        }
        if let audit, audit.isEmpty { throw ValidationError("--audit needs a file name (or - for standard output)") }
        audit = environment.string(.audit, audit)
        do throws(WebhookConfigurationError) { _ = try WebhookSubscriptions(parsing: webhooks) } catch { throw ValidationError(error.message) }
        if let webhookTimeout, DurationText.parse(webhookTimeout) == nil {
            throw ValidationError("--webhook-timeout must be a duration such as 10s or 500ms, not '\(webhookTimeout)'")
        }
        if let shutdownTimeout, DurationText.parse(shutdownTimeout) == nil {
            throw ValidationError("--shutdown-timeout must be a duration such as 30s or 500ms, not '\(shutdownTimeout)'")
        }
        // --tls-cert and --tls-key, both or neither: KeyRelayServer checks that (one rule, for embedders too).
    }

    func run() async throws {
        // validate() has resolved these from the flags, the environment and the defaults.
        let db = db ?? "keyrelay.sqlite", host = host ?? "127.0.0.1", port = port ?? 8080
        var options = ServeOptions(databasePath: db)
        options.host = host
        options.port = port
        options.privatePort = privatePort
        options.tlsCertificateFile = tlsCert
        options.tlsKeyFile = tlsKey
        if let seconds = shutdownTimeout.flatMap(DurationText.parse) { options.shutdownTimeout = .milliseconds(Int64((seconds * 1000).rounded())) }
        options.masterKeyFile = masterKeyFile
        options.accessFile = access
        options.dev = dev
        options.devToken = devToken
        options.manualClock = manualClock
        // Before anything is printed or written (a dev token, a generated key file): a port that cannot be bound is
        // one line, not a NIO error after the side effects. (The server binds again for real; losing that race is
        // still reported as one line below.)
        for listener in [port] + (privatePort.map { [$0] } ?? []) {
            if let problem = ListenCheck.problem(host: host, port: listener) {
                printError("keyrelay serve: cannot listen on \(ListenCheck.display(host: host, port: listener)): \(problem)")
                throw ExitCode(2)
            }
        }
        options.webhooks = try WebhookSubscriptions(parsing: webhooks)
        options.webhookSecretFile = webhookSecretFile
        options.webhookTimeout = webhookTimeout.flatMap(DurationText.parse)
        options.logLevel = level
        options.logFormat = format
        options.auditFile = audit
        // The dispatcher hands `--delivery-concurrency` notifications over at once, and leases its claims on them for
        // twice the webhook timeout (plus a margin): the longest a hand-over can take.
        let concurrency = deliveryConcurrency ?? DeliveryPolicy.defaultConcurrency
        let timeout = options.webhookTimeout ?? ProcessInfo.processInfo.environment["KEYRELAY_WEBHOOK_TIMEOUT"].flatMap(DurationText.parse) ?? 10
        let background: KeyRelayServer.BackgroundFactory = { engine, _ in
            let policy = DeliveryPolicy(acknowledgementWindow: engine.configuration.lifecycle.acknowledgementWindow,
                                        concurrency: concurrency, deliveryTimeout: timeout)
            return DispatcherBackground(dispatcher: engine.makeDispatcher(bus: ServiceBus(), policy: policy), wakingOnCommitsOf: engine)
        }
        do {
            try await KeyRelayServer.run(options, background: background)
        } catch let error as KeyRelayError {
            printError("keyrelay serve: \(error.message)")
            throw ExitCode(2)
        } catch {
            printError("keyrelay serve: \(error)")
            throw ExitCode(2)
        }
    }
}
