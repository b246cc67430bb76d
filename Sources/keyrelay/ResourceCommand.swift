import ArgumentParser
import Foundation
import KeyRelay
import KeyRelayAdapters
import KeyRelayBus

/// `keyrelay resource …`: simulated COS buckets and Cloud Databases deployments, registered with their keys, whose
/// data is encrypted under data keys the root key wraps (``CommandLineServices``).
struct ResourceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resource", abstract: "Simulated COS buckets and Cloud Databases deployments protected by keys.",
        discussion: """
            A bucket or deployment is registered with its root key and keeps its data under a data key the root key \
            wraps; the simulated service caches that data key and keeps serving until a notification, delivered by \
            `keyrelay deliver`, tells it the key's state. The services' memory is kept in <db>.services, sealed \
            under a key derived from the master key.
            """,
        subcommands: [Bucket.self, Deployment.self, Registrations.self])

    static let account = "keyrelay"

    /// The two kinds of simulated resource, for the commands they share.
    enum Kind: String {
        case bucket, deployment

        var service: String { self == .bucket ? ServiceTopic.objectStorage : ServiceTopic.postgreSQL }

        func core(_ instance: CommandLineServices.Instance) -> ProtectedResourceService {
            self == .bucket ? instance.objectStorage.core : instance.databases.core
        }
    }

    struct Bucket: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "COS buckets.", subcommands: [Create.self, List.self, Put.self, Get.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Create a COS bucket protected by a root key.")
            @OptionGroup var options: DatabaseOptions
            @Argument(help: "The bucket's name.") var name: String
            @Option(help: "The root key (id or alias) protecting it.") var key: String
            @Flag(help: "The bucket has a retention policy: the key cannot be deleted, even with --force.") var retention = false
            func run() async throws { try await ResourceCommand.create(.bucket, name: name, key: key, retention: retention, options: options) }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List registered COS buckets.")
            @OptionGroup var options: DatabaseOptions
            func run() async throws { try await ResourceCommand.list(service: ServiceTopic.objectStorage, options: options) }
        }

        struct Put: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Write an object, encrypted under the bucket's data key.")
            @OptionGroup var options: DatabaseOptions
            @Argument(help: "The bucket's name.") var bucket: String
            @Argument(help: "The object's name.") var object: String
            @Argument(help: "The object's content (text).") var content: String
            func run() async throws { try await ResourceCommand.put(.bucket, bucket, object, content, options: options) }
        }

        struct Get: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Read an object (refused once the service has heard its key is deleted or disabled).")
            @OptionGroup var options: DatabaseOptions
            @Argument(help: "The bucket's name.") var bucket: String
            @Argument(help: "The object's name.") var object: String
            func run() async throws { try await ResourceCommand.get(.bucket, bucket, object, options: options) }
        }
    }

    struct Deployment: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cloud Databases deployments.",
                                                        subcommands: [Create.self, List.self, Put.self, Get.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Create a Cloud Databases deployment protected by a root key.")
            @OptionGroup var options: DatabaseOptions
            @Argument(help: "The deployment's name.") var name: String
            @Option(help: "The root key (id or alias) protecting it.") var key: String
            @Flag(help: "Prevent deletion of the key while the deployment is registered.") var retention = false
            func run() async throws { try await ResourceCommand.create(.deployment, name: name, key: key, retention: retention, options: options) }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List registered Cloud Databases deployments.")
            @OptionGroup var options: DatabaseOptions
            func run() async throws { try await ResourceCommand.list(service: ServiceTopic.postgreSQL, options: options) }
        }

        struct Put: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Write a record, encrypted under the deployment's data key.")
            @OptionGroup var options: DatabaseOptions
            @Argument(help: "The deployment's name.") var deployment: String
            @Argument(help: "The record's id.") var record: String
            @Argument(help: "The record's content (text).") var content: String
            func run() async throws { try await ResourceCommand.put(.deployment, deployment, record, content, options: options) }
        }

        struct Get: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Read a record (refused once the service has heard its key is deleted or disabled).")
            @OptionGroup var options: DatabaseOptions
            @Argument(help: "The deployment's name.") var deployment: String
            @Argument(help: "The record's id.") var record: String
            func run() async throws { try await ResourceCommand.get(.deployment, deployment, record, options: options) }
        }
    }

    struct Registrations: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List registrations (every key's, or one key's).")
        @OptionGroup var options: DatabaseOptions
        @Option(help: "Only this key's (id or alias).") var key: String?
        func run() async throws { try await ResourceCommand.list(service: nil, key: key, options: options) }
    }

    /// Runs `body` with the engine and the simulated services of the database, saving the services afterwards.
    static func withServices<T>(_ options: DatabaseOptions,
                                _ body: (KeyRelayEngine, CommandLineServices.Instance) async throws -> T) async throws -> T {
        let engine = try await options.engine()
        return try await CommandLineServices.with(engine: engine, databasePath: options.db, masterKey: try options.masterKey()) { services in
            try await body(engine, await services.instance(options.instance))
        }
    }

    /// A simulated service's own refusal (no such bucket, access denied) as the API renders it (404, 403, 409).
    static func service<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as ServiceAccessError {
            throw KeyRelayError(error, operation: "Command could not be completed")
        }
    }

    static func create(_ kind: Kind, name: String, key: String, retention: Bool, options: DatabaseOptions) async throws {
        try await reportingErrors(json: options.json) {
            let status = try await withServices(options) { engine, instance in
                // The service keeps the key's id (notifications name it), whatever the operator typed.
                let keyID = try await engine.key(key, context: options.context).id
                return try await service {
                    switch kind {
                    case .bucket: try await instance.objectStorage.createBucket(name, keyID: keyID, retention: retention)
                    case .deployment: try await instance.databases.createDeployment(name, keyID: keyID, preventKeyDeletion: retention)
                    }
                }
            }
            if options.json {
                print(CLIJSON.encode(ResourceView(status)))
            } else {
                print("registered \(status.resourceCRN) with key \(status.keyID) (data key wrapped by version \(status.keyVersionID))")
            }
        }
    }

    static func put(_ kind: Kind, _ name: String, _ item: String, _ content: String, options: DatabaseOptions) async throws {
        try await reportingErrors(json: options.json) {
            try await withServices(options) { _, instance in
                try await service { try await kind.core(instance).put(name, item: item, data: Data(content.utf8)) }
            }
            if !options.json { print("wrote \(item) to \(kind.rawValue) \(name)") }
        }
    }

    static func get(_ kind: Kind, _ name: String, _ item: String, options: DatabaseOptions) async throws {
        try await reportingErrors(json: options.json) {
            let data = try await withServices(options) { _, instance in
                try await service { try await kind.core(instance).get(name, item: item) }
            }
            print(String(decoding: data, as: UTF8.self))
        }
    }

    static func list(service: String?, key: String? = nil, options: DatabaseOptions) async throws {
        try await reportingErrors(json: options.json) {
            let engine = try await options.engine()
            var all: [Registration] = []
            var offset = 0
            while true {
                let page = try await engine.registrations(keyID: key, limit: 5000, offset: offset, context: options.context)
                all += page.items
                offset += page.items.count
                if page.items.isEmpty || offset >= page.total { break }
            }
            let shown = all.filter { service == nil || $0.serviceName == service }
            if options.json {
                for registration in shown { print(CLIJSON.encode(RegistrationView(registration))) }
            } else if shown.isEmpty {
                print("no registrations")
            } else {
                printTable(["RESOURCE", "KEY", "RETENTION", "ACKNOWLEDGED"],
                           shown.map { [$0.resourceCRN, $0.keyID, $0.preventKeyDeletion ? "yes" : "no",
                                        $0.acknowledgement?.adopterKeyState.rawValue ?? "-"] })
            }
        }
    }
}

/// A simulated resource as the command line shows it (never its data key).
struct ResourceView: Codable {
    var name: String
    var resourceCRN: String
    var keyID: String
    var keyVersion: String
    var access: String

    init(_ status: ResourceStatus) {
        name = status.name
        resourceCRN = status.resourceCRN
        keyID = status.keyID
        keyVersion = status.keyVersionID
        access = if case .denied(let reason) = status.access { "denied: \(reason.rawValue)" } else { "allowed" }
    }
}
