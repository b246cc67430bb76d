import ArgumentParser
import Foundation
import Hummingbird
import KeyRelay
import KeyRelayAdapters
import KeyRelayBus

/// `keyrelay simulate cos|databases`: a simulated associated service as its own process. It receives signed
/// webhooks from `keyrelay serve --webhook …`, applies them with the same adapter code as in-process (which
/// unwraps and rewraps through the Key Protect API and acknowledges with `event_ack`), and serves its data.
struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run a simulated associated service (COS, Cloud Databases) as its own process, receiving webhooks.",
        discussion: """
            The service calls the Key Protect API of --kms like a real adopter (registrations, wrap/unwrap/rewrap, \
            event_ack) and answers webhooks on POST /webhooks. Its HTTP surface is documented in docs/webhooks.md \
            ("Simulated services as processes").
            """,
        subcommands: [SimulateObjectStorage.self, SimulateDatabases.self])
}

/// The options both simulated services take.
struct SimulateOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The address to listen on (port 0: any free port; the chosen one is printed).", valueName: "HOST:PORT"))
    var listen: String = "127.0.0.1:8081"

    @Option(help: ArgumentHelp("The Key Protect API to call, e.g. http://127.0.0.1:8080.", valueName: "URL"))
    var kms: String

    @Option(help: ArgumentHelp("The bearer token to call the API with (Service role); or KEYRELAY_TOKEN.", valueName: "TOKEN"))
    var token: String?

    @Option(help: ArgumentHelp("The Key Protect instance the keys live in (Bluemix-Instance).", valueName: "ID"))
    var instance: String

    @Option(name: .customLong("webhook-secret-file"), help: ArgumentHelp(
        "The file holding the webhook secret, whsec_ + base64 (the one serve signs with); or KEYRELAY_WEBHOOK_SECRET.",
        valueName: "FILE"))
    var webhookSecretFile: String?

    @Option(name: .customLong("webhook-tolerance"), help: ArgumentHelp(
        "How far a webhook's timestamp may be from this clock before it is refused as stale.", valueName: "DURATION"))
    var webhookTolerance: String = "5m"

    @Option(help: ArgumentHelp("The account named in the resources' CRNs.", valueName: "ACCOUNT"))
    var account: String = "keyrelay"

    @Option(name: .customLong("kms-timeout"), help: ArgumentHelp("How long one Key Protect call may take.", valueName: "DURATION"))
    var kmsTimeout: String = "10s"

    func validate() throws {
        _ = try address()
        guard let url = URL(string: kms), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme), url.host != nil else {
            throw ValidationError("--kms must be an http:// or https:// URL, e.g. http://127.0.0.1:8080")
        }
        guard let tolerance = DurationText.parse(webhookTolerance), tolerance >= 1 else {
            throw ValidationError("--webhook-tolerance must be a duration of at least 1s, e.g. 5m")
        }
        guard let timeout = DurationText.parse(kmsTimeout), timeout >= 0.001 else {
            throw ValidationError("--kms-timeout must be a duration such as 10s")
        }
        guard !instance.isEmpty else { throw ValidationError("--instance must name the Key Protect instance") }
    }

    /// `HOST:PORT` split at its last colon (`[::1]:8081` works too).
    func address() throws -> (host: String, port: Int) {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("--listen must be HOST:PORT with a port from 0 to 65535, e.g. 127.0.0.1:8081, not '\(listen)'")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ValidationError("--listen must name a host, e.g. 127.0.0.1:8081") }
        return (host, port)
    }

    /// Reads the token and the secret (flag, then environment), or says what is missing.
    func credentials() throws -> (token: String, secret: WebhookSecret) {
        let environment = ProcessInfo.processInfo.environment
        guard let token = token ?? environment["KEYRELAY_TOKEN"], !token.isEmpty else {
            throw ValidationError("No token: pass --token TOKEN or set KEYRELAY_TOKEN (a principal with the Service role)")
        }
        let text: String
        if let file = webhookSecretFile {
            guard let contents = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ValidationError("The webhook secret file \(file) could not be read")
            }
            text = contents
        } else if let value = environment["KEYRELAY_WEBHOOK_SECRET"], !value.isEmpty {
            text = value
        } else {
            throw ValidationError("No webhook secret: pass --webhook-secret-file FILE or set KEYRELAY_WEBHOOK_SECRET (the secret serve signs with)")
        }
        do throws(WebhookConfigurationError) {
            return (token, try WebhookSecret(parsing: text))
        } catch {
            throw ValidationError(error.message)
        }
    }

    /// Runs the service's HTTP server until SIGINT/SIGTERM.
    func run(name: String, serviceName: String,
             make: (any AdopterClient) -> (ProtectedResourceService, @Sendable (String, String, Bool) async throws -> ResourceStatus),
             collection: String, items: String) async throws {
        let (host, port) = try address()
        let (token, secret) = try credentials()
        let timeout = DurationText.parse(kmsTimeout) ?? 10
        let client = KeyProtectAdopterClient(baseURL: URL(string: kms)!, token: token, instanceID: instance,
                                             timeout: .milliseconds(Int64((timeout * 1000).rounded())))
        let (core, create) = make(client)
        let verifier = WebhookVerifier(secret: secret, clock: SystemClock(),
                                       tolerance: Int64((DurationText.parse(webhookTolerance) ?? 300).rounded()))
        let server = SimulatedServiceServer(collection: collection, items: items, serviceName: serviceName, core: core,
                                            create: create, verifier: verifier)
        let app = Application(router: server.makeRouter(),
                              configuration: .init(address: .hostname(host, port: port), serverName: "KeyRelay-Simulate"),
                              onServerRunning: { channel in
                                  let bound = channel.localAddress?.port ?? port
                                  let line = "keyrelay simulate \(name) (\(serviceName)) listening on http://\(host):\(bound) (webhooks on POST /webhooks; key service \(kms))\n"
                                  FileHandle.standardOutput.write(Data(line.utf8))
                              })
        do {
            try await app.runService()
        } catch {
            try? await client.shutdown()
            throw error
        }
        try? await client.shutdown()
    }
}

/// `keyrelay simulate cos`.
struct SimulateObjectStorage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cos",
        abstract: "Simulated Cloud Object Storage: buckets on root keys, objects under their data keys.",
        discussion: """
            HTTP surface: POST /webhooks (signed CloudEvents from serve; 401 bad or stale signature, 400 malformed, \
            204 applied and acknowledged); PUT /buckets/NAME?key=KEYID[&retention=true] (registers the bucket on the \
            key through the API); GET /buckets, GET /buckets/NAME, DELETE /buckets/NAME; PUT and GET \
            /buckets/NAME/objects/OBJECT (403 once the key is deleted or disabled); GET /health.
            """)

    @OptionGroup var options: SimulateOptions

    @Option(name: .customLong("service-instance"), help: ArgumentHelp("The COS instance named in bucket CRNs.", valueName: "ID"))
    var serviceInstance: String = "cos-simulated"

    func run() async throws {
        let account = options.account
        let serviceInstance = serviceInstance
        try await options.run(name: "cos", serviceName: ServiceTopic.objectStorage, make: { client in
            let service = ObjectStorageService(client: client, clock: SystemClock(), account: account, serviceInstance: serviceInstance)
            return (service.core, { name, keyID, retention in try await service.createBucket(name, keyID: keyID, retention: retention) })
        }, collection: "buckets", items: "objects")
    }
}

/// `keyrelay simulate databases`.
struct SimulateDatabases: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "databases",
        abstract: "Simulated Cloud Databases: deployments on root keys, records under their data keys.",
        discussion: """
            HTTP surface: POST /webhooks (as for cos); PUT /deployments/NAME?key=KEYID[&retention=true]; GET \
            /deployments, GET /deployments/NAME, DELETE /deployments/NAME; PUT and GET \
            /deployments/NAME/records/ID (403 once the key is deleted or disabled); GET /health.
            """)

    @OptionGroup var options: SimulateOptions

    @Option(name: .customLong("service"), help: ArgumentHelp("The CRN service name (the webhook subscription's SERVICE).", valueName: "NAME"))
    var service: String = ServiceTopic.postgreSQL

    @Option(help: ArgumentHelp("The region named in deployment CRNs.", valueName: "REGION"))
    var region: String = "us-south"

    func run() async throws {
        let account = options.account
        let (serviceName, region) = (service, region)
        try await options.run(name: "databases", serviceName: serviceName, make: { client in
            let databases = DatabasesService(client: client, clock: SystemClock(), serviceName: serviceName, account: account, region: region)
            return (databases.core, { name, keyID, retention in
                try await databases.createDeployment(name, keyID: keyID, preventKeyDeletion: retention)
            })
        }, collection: "deployments", items: "records")
    }
}
