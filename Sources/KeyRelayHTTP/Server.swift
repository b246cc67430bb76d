import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import KeyRelay
import KeyRelayBus
import Logging
import NIOCore
import ServiceLifecycle

/// How `keyrelay serve` is configured.
public struct ServeOptions: Sendable {
    /// Where the data is (`--db`): an SQLite file path, or a `postgres://` URL (``StoreLocation/init(parsing:)``).
    public var databasePath: String
    public var host = "127.0.0.1"
    public var port = 8080
    /// A second listener on the same host, Key Protect's private endpoint (`--private-port`): its requests count as
    /// private for an `allowedNetwork: private-only` instance, and `GET /api/v2/instance/allowed_ip_port` reports
    /// it. Nil: no private listener (the endpoint then reports ``port``).
    public var privatePort: Int?
    /// A file holding the base64 master key; otherwise `KEYRELAY_MASTER_KEY`; with `dev`, read from (or, for a new
    /// database only, generated into) `<database>.master-key`. `--dev` never writes a key file beside an existing database.
    public var masterKeyFile: String?
    /// The access file (tokens → grants); required without `dev`.
    public var accessFile: String?
    /// Development mode: a root token with Manager, KeyPurge and Service on every instance.
    public var dev = false
    /// The dev root token; generated when nil.
    public var devToken: String?
    /// Run the engine on a manual clock, moved by `POST /api/v2/_dev/clock` (dev only).
    public var manualClock = false
    /// RSA modulus size of import tokens.
    public var importTokenKeySize = 4096
    /// Webhook subscriptions (`--webhook SERVICE=URL`); when empty, `KEYRELAY_WEBHOOKS` is read. A subscribed
    /// service gets signed CloudEvents webhooks instead of the in-process simulated service.
    public var webhooks = WebhookSubscriptions()
    /// The file holding the webhook secret (`whsec_…`); otherwise `KEYRELAY_WEBHOOK_SECRET`. Required with webhooks.
    public var webhookSecretFile: String?
    /// How long a webhook receiver has to answer; otherwise `KEYRELAY_WEBHOOK_TIMEOUT`, else 10 s.
    public var webhookTimeout: TimeInterval?
    /// The PEM certificate chain to serve HTTPS with (`--tls-cert`); with ``tlsKeyFile``, both or neither.
    public var tlsCertificateFile: String?
    /// The PEM private key of ``tlsCertificateFile`` (`--tls-key`).
    public var tlsKeyFile: String?
    /// How long a graceful shutdown may take (in-flight requests and deliveries) before the rest is cancelled.
    public var shutdownTimeout: Duration = .seconds(30)
    /// The lowest level logged (`--log-level`); the CLI bootstraps the logging system with it too.
    public var logLevel: Logger.Level = .info
    /// How log lines are written (`--log-format`); applied by the CLI's logging bootstrap.
    public var logFormat: LogFormat = .text
    /// The audit trail: a file appended to (created with mode 0600), `-` for standard output, `nil` for none.
    public var auditFile: String?

    public init(databasePath: String) { self.databasePath = databasePath }
}

/// Builds and runs the server behind `keyrelay serve`.
public enum KeyRelayServer {
    /// What a prepared server is made of (everything but the listening socket).
    public struct Prepared: Sendable {
        public var api: KeyProtectAPI
        /// The dev root token, in dev mode.
        public var devToken: String?
        /// Lines to print before serving (warnings, the dev token).
        public var notices: [String]
        /// The webhook transport subscribed on the dispatcher's bus, if webhooks are configured: shut it down
        /// after the background work has stopped (``run(_:background:print:)`` does).
        public var webhookTransport: WebhookTransport?
        /// TLS, when `--tls-cert` and `--tls-key` are given (loaded and checked by ``prepare(_:environment:background:)``).
        public var tls: ServerTLS?
        /// The access file `SIGHUP` re-reads into `api.liveAccess` (nil in dev mode).
        public var accessFile: String?
        /// The audit trail of `--audit`: finish it after the server has stopped (``run(_:background:print:)`` does).
        public var audit: AuditTrail?
    }

    /// A logger for the server's parts at the configured level.
    static func logger(_ label: String, _ options: ServeOptions) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = options.logLevel
        return logger
    }

    /// Makes the background work for an engine (and the manual clock in `--manual-clock` mode).
    public typealias BackgroundFactory = @Sendable (KeyRelayEngine, ManualClock?) async throws -> any BackgroundWork

    /// The default background: the bus dispatcher over the engine's outbox (delivery, retries, dead letters,
    /// acknowledgement window, key expiry). Its bus starts with no subscribers: adopters outside the process
    /// acknowledge through `POST /api/v2/event_ack`; ``KeyRelayServer/prepare(_:environment:background:)``
    /// subscribes the simulated COS and Cloud Databases services (``SimulatedCloud``) to `dispatcher.bus`.
    public static let defaultBackground: BackgroundFactory = { engine, _ in DispatcherBackground(engine: engine) }

    /// Validates the options, loads TLS, loads or (dev) creates the master key and access, opens the engine.
    ///
    /// The API records metrics into ``ServerMetrics/shared``, whose first use bootstraps swift-metrics'
    /// `MetricsSystem` (a process that has bootstrapped it already should build its ``KeyProtectAPI`` itself).
    public static func prepare(_ options: ServeOptions, environment: [String: String] = ProcessInfo.processInfo.environment,
                               background: BackgroundFactory = defaultBackground) async throws -> Prepared {
        let op = "Server could not be started"
        var notices: [String] = []
        if options.manualClock, !options.dev {
            throw KeyRelayError(.badBody, "--manual-clock is only available with --dev", operation: op)
        }
        // TLS before anything is printed or written: a bad PEM is one line naming its flag.
        let tls: ServerTLS?
        switch (options.tlsCertificateFile, options.tlsKeyFile) {
        case (nil, nil): tls = nil
        case let (certificate?, key?): tls = try ServerTLS(certificateFile: certificate, keyFile: key)
        case (_?, nil):
            throw KeyRelayError(.badBody, "--tls-cert needs --tls-key (the certificate's private key): give both or neither", operation: op)
        case (nil, _?):
            throw KeyRelayError(.badBody, "--tls-key needs --tls-cert (the key's certificate): give both or neither", operation: op)
        }
        // Webhook settings first: a missing secret must not leave a generated dev master key behind.
        let webhooks = try webhookSettings(options, environment: environment, operation: op)
        // The audit file too: one that cannot be opened is refused before a dev master key is generated.
        let audit = try options.auditFile.map { try AuditTrail.open($0, logger: logger("keyrelay.audit", options)) }
        // The database: an SQLite file, or a PostgreSQL URL that several replicas share.
        let location = try StoreLocation(parsing: options.databasePath)
        // Master key.
        var masterKey: MasterKey?
        do {
            masterKey = try MasterKey.load(environment: environment, file: options.masterKeyFile)
        } catch let error as KeyRelayError {
            throw KeyRelayError(error.code, "\(options.masterKeyFile.map { "--master-key-file \($0)" } ?? "KEYRELAY_MASTER_KEY"): \(error.message)",
                                operation: op)
        }
        if masterKey == nil {
            guard options.dev else {
                throw KeyRelayError(.badBody, "No master key: pass --master-key-file FILE (base64 of 32 bytes, e.g. `openssl rand -base64 32 > FILE`) or set KEYRELAY_MASTER_KEY; or use --dev for local experiments",
                                    operation: op)
            }
            // A generated dev key lives beside an SQLite file; a shared (PostgreSQL) database has no "beside", and
            // its replicas must all hold the same key.
            guard let databasePath = location.filePath else {
                throw KeyRelayError(.badBody, "No master key for \(location): a PostgreSQL database needs the master key every replica shares: set KEYRELAY_MASTER_KEY or pass --master-key-file FILE (--dev generates a key only beside a new SQLite file)",
                                    operation: op)
            }
            let path = databasePath + ".master-key"
            // A key file is generated only for a new database: beside an existing one, a fresh key could never
            // open it, and every later --dev run would pick that wrong file up.
            if !FileManager.default.fileExists(atPath: path), FileManager.default.fileExists(atPath: databasePath) {
                throw KeyRelayError(.badBody, "The database \(databasePath) already exists and needs the master key it was created with: set KEYRELAY_MASTER_KEY or pass --master-key-file FILE (looked in KEYRELAY_MASTER_KEY, --master-key-file and \(path); --dev generates a key only for a new database)",
                                    operation: op)
            }
            if FileManager.default.fileExists(atPath: path) {
                masterKey = try MasterKey.load(environment: [:], file: path)
                notices.append("WARNING: dev mode: using the master key in \(path) (beside the database). Do not use --dev in production.")
            } else {
                let key = MasterKey.generate()
                guard FileManager.default.createFile(atPath: path, contents: Data((key.base64EncodedString() + "\n").utf8),
                                                     attributes: [.posixPermissions: 0o600]) else {
                    throw KeyRelayError(.badBody, "Could not write the dev master key file \(path)", operation: op)
                }
                masterKey = key
                notices.append("WARNING: dev mode: generated a master key in \(path) (mode 0600, beside the database). Anyone who can read both files can read every key. Do not use --dev in production.")
            }
        }
        // Access.
        let access: AccessControl
        var devToken: String?
        if options.dev {
            if options.accessFile != nil {
                throw KeyRelayError(.badBody, "--access and --dev cannot be combined: --dev uses a single root token", operation: op)
            }
            let token = options.devToken ?? Self.randomToken()
            devToken = token
            access = .development(token: token)
            notices.append("Dev root token (Manager, KeyPurge, Service on every instance): \(token)")
        } else {
            guard let file = options.accessFile else {
                throw KeyRelayError(.badBody, "No access file: pass --access FILE (JSON: {\"tokens\": {\"<token>\": {\"principal\": …, \"role\": \"Manager\", \"instances\": [\"…\"]}}}); or use --dev for local experiments",
                                    operation: op)
            }
            access = try AccessControl.load(file: file)
        }
        let clock: ManualClock? = options.manualClock ? ManualClock(start: Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))) : nil
        var configuration = KeyRelayConfiguration()
        configuration.importTokenKeySize = options.importTokenKeySize
        let engine = try await KeyRelayEngine.open(location, masterKey: masterKey!,
                                                   clock: clock ?? SystemClock(), configuration: configuration,
                                                   logger: logger("keyrelay.engine", options))
        let work = try await background(engine, clock)
        // The simulated services run inside the server, on the dispatcher's bus.
        let simulation = (work as? DispatcherBackground).map { SimulatedCloud(engine: engine, bus: $0.dispatcher.bus) }
        // Webhooks replace the simulated subscriber of each subscribed service on the same bus, so the bus's
        // faults (`POST /api/v2/_dev/bus`) apply to webhook deliveries too.
        var transport: WebhookTransport?
        if case let (subscriptions, secret, timeout)? = webhooks {
            guard let dispatcher = (work as? DispatcherBackground)?.dispatcher else {
                throw KeyRelayError(.badBody, "Webhooks need the bus dispatcher as the background work", operation: op)
            }
            // Signed with wall-clock time even on a manual clock: receivers check the timestamp against theirs.
            let made = WebhookTransport(subscriptions: subscriptions, secret: secret, clock: SystemClock(),
                                        timeout: .milliseconds(Int64((timeout * 1000).rounded())),
                                        connectionsPerReceiver: dispatcher.policy.concurrency)
            made.subscribe(on: dispatcher.bus)
            transport = made
            notices.append("Webhooks (signed CloudEvents, timeout \(DurationText.goStyle(timeout))): \(subscriptions)")
        }
        let api = KeyProtectAPI(engine: engine, access: access, devClock: clock, background: work, simulation: simulation,
                                privateEndpointPort: options.privatePort ?? options.port, audit: audit, logger: logger("keyrelay.http", options),
                                metrics: ServerMetrics.shared)
        return Prepared(api: api, devToken: devToken, notices: notices, webhookTransport: transport, tls: tls,
                        accessFile: options.dev ? nil : options.accessFile, audit: audit)
    }

    /// Runs the API and its background work until SIGTERM/SIGINT, as one `ServiceGroup`: the background work (the
    /// dispatcher), the `SIGHUP` access reloader and the HTTP server. A signal shuts them down gracefully, in reverse
    /// order: the server stops accepting and finishes its requests, then the dispatcher finishes the delivery in
    /// flight (recording its outcome) and starts no other. Prints "shutting down…" on the signal and "stopped" at the
    /// end; a shutdown that outlasts `options.shutdownTimeout` cancels what is left.
    public static func run(_ options: ServeOptions, background: BackgroundFactory = defaultBackground,
                           print output: @escaping @Sendable (String) -> Void = { FileHandle.standardOutput.write(Data(($0 + "\n").utf8)) }) async throws {
        let prepared = try await prepare(options, background: background)
        for line in prepared.notices { output(line) }
        let host = options.host
        let scheme = prepared.tls == nil ? "http" : "https"
        let logger = Self.logger("keyrelay.serve", options)
        let app = try makeApplication(api: prepared.api, host: host, port: options.port, tls: prepared.tls, logger: logger) { channel in
            let port = channel.localAddress?.port ?? options.port
            // Without a private listener, allowed_ip_port reports this one.
            if options.privatePort == nil { prepared.api.privateEndpointBound(to: port) }
            output("KeyRelay listening on \(scheme)://\(host):\(port)")
            output("console: \(scheme)://\(host):\(port)/ui")
        }
        // Shut down in reverse order: the notice first, then the server, then the reloader, then the dispatcher.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: prepared.api.background, successTerminationBehavior: .gracefullyShutdownGroup, serviceName: "dispatcher"),
        ]
        services.append(.init(service: await AccessReloader(access: prepared.api.liveAccess, file: prepared.accessFile, logger: logger),
                              successTerminationBehavior: .gracefullyShutdownGroup, serviceName: "access-reloader"))
        services.append(.init(service: app, successTerminationBehavior: .gracefullyShutdownGroup, serviceName: "http"))
        if let privatePort = options.privatePort {
            let privateApp = try makeApplication(api: prepared.api, host: host, port: privatePort, tls: prepared.tls, network: .private,
                                                 logger: logger) { channel in
                let bound = channel.localAddress?.port ?? privatePort
                prepared.api.privateEndpointBound(to: bound)
                output("private endpoint: \(scheme)://\(host):\(bound)")
            }
            services.append(.init(service: privateApp, successTerminationBehavior: .gracefullyShutdownGroup, serviceName: "http-private"))
        }
        services.append(.init(service: ShutdownNotice(print: output), successTerminationBehavior: .gracefullyShutdownGroup,
                              serviceName: "shutdown-notice"))
        var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = options.shutdownTimeout
        do {
            try await ServiceGroup(configuration: configuration).run()
        } catch {
            try? await prepared.webhookTransport?.shutdown()
            await prepared.audit?.finish()
            throw error
        }
        // The dispatcher has stopped: no delivery uses the webhook client any more.
        try? await prepared.webhookTransport?.shutdown()
        // No request is in flight: every audit event is queued; write them out.
        await prepared.audit?.finish()
        output("KeyRelay stopped")
    }

    /// The HTTP application `serve` runs (and the tests that talk to a real socket): the API's router on
    /// Hummingbird's HTTP/1.1 server with Key Protect's envelope for the requests refused below the router
    /// (``Hummingbird/HTTPServerBuilder/keyRelayHTTP1()``), wrapped in TLS when `tls` is given. Port 0 picks a free
    /// port; `onServerRunning` gets the listening channel.
    public static func makeApplication(api: KeyProtectAPI, host: String, port: Int, tls: ServerTLS? = nil,
                                       network: RequestNetwork = .public,
                                       logger: Logger = Logger(label: "keyrelay.serve"),
                                       onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }) throws
        -> Application<RouterResponder<KeyRelayRequestContext>> {
        let server: HTTPServerBuilder = try tls.map { try .tls(.keyRelayHTTP1(), tlsConfiguration: $0.configuration) } ?? .keyRelayHTTP1()
        return Application(router: api.makeRouter(network: network), server: server,
                           configuration: .init(address: .hostname(host, port: port), serverName: "KeyRelay"),
                           onServerRunning: onServerRunning, logger: logger)
    }

    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(generator.next() as UInt64, radix: 16) }.joined()
    }
}

/// Prints the shutdown line as soon as a graceful shutdown starts (it is the group's last service, so the first
/// told), then ends.
struct ShutdownNotice: Service {
    let print: @Sendable (String) -> Void

    func run() async throws {
        do { try await gracefulShutdown() } catch { return }
        print("KeyRelay shutting down… (finishing in-flight requests and deliveries)")
    }
}
