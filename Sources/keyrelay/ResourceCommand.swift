import ArgumentParser
import Foundation
import KeyRelay

/// `keyrelay resource …`: simulated buckets and deployments, recorded as registrations with their keys.
struct ResourceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resource", abstract: "Register simulated COS buckets and Cloud Databases deployments with keys.",
        subcommands: [Bucket.self, Deployment.self, Registrations.self])

    static let account = "keyrelay"

    struct Bucket: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "COS buckets.", subcommands: [Create.self, List.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Register a COS bucket with a root key.")
            @OptionGroup var options: DatabaseOptions
            @Argument(help: "The bucket's name.") var name: String
            @Option(help: "The root key (id or alias) protecting it.") var key: String
            @Flag(help: "The bucket has a retention policy: the key cannot be deleted, even with force.") var retention = false
            func run() async throws {
                let crn = CRN.bucket(account: ResourceCommand.account, serviceInstance: "cos-instance-1", bucket: name)
                try await ResourceCommand.register(crn: crn, key: key, retention: retention, options: options)
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List registered COS buckets.")
            @OptionGroup var options: DatabaseOptions
            func run() async throws { try await ResourceCommand.list(service: "cloud-object-storage", options: options) }
        }
    }

    struct Deployment: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cloud Databases deployments.", subcommands: [Create.self, List.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Register a Cloud Databases deployment with a root key.")
            @OptionGroup var options: DatabaseOptions
            @Argument(help: "The deployment's name.") var name: String
            @Option(help: "The root key (id or alias) protecting it.") var key: String
            @Flag(help: "Prevent deletion of the key while the deployment is registered.") var retention = false
            func run() async throws {
                let crn = CRN.deployment(account: ResourceCommand.account, deployment: name)
                try await ResourceCommand.register(crn: crn, key: key, retention: retention, options: options)
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List registered Cloud Databases deployments.")
            @OptionGroup var options: DatabaseOptions
            func run() async throws { try await ResourceCommand.list(service: "databases-for-postgresql", options: options) }
        }
    }

    struct Registrations: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List registrations (every key's, or one key's).")
        @OptionGroup var options: DatabaseOptions
        @Option(help: "Only this key's (id or alias).") var key: String?
        func run() async throws { try await ResourceCommand.list(service: nil, key: key, options: options) }
    }

    static func register(crn: String, key: String, retention: Bool, options: DatabaseOptions) async throws {
        try await reportingErrors(json: options.json) {
            let registration = try await options.engine().register(
                keyID: key, resourceCRN: crn, input: RegistrationInput(preventKeyDeletion: retention), context: options.context)
            print(options.json ? CLIJSON.encode(RegistrationView(registration)) : "registered \(crn) with key \(registration.keyID)")
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
