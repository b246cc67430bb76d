import ArgumentParser
import Foundation
import KeyRelay

/// `keyrelay key …`
struct KeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key", abstract: "Create, inspect and drive keys in a database file.",
        subcommands: [Create.self, List.self, Show.self, Rotate.self, Disable.self, Enable.self, Delete.self,
                      Restore.self, Purge.self, Sync.self, SetForDeletion.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a root key (or, with --standard, a standard key).",
            discussion: "The only command that creates the database file when it is missing.")
        @OptionGroup var options: DatabaseOptions
        @Argument(help: "The key's name.") var name: String
        @Flag(help: "A standard key instead of a root key.") var standard = false
        @Option(help: "Import this base64 key material instead of generating it.") var payload: String?
        @Option(help: "Expiration date (RFC 3339).") var expires: String?
        @Option(help: "Expire after this duration (e.g. 30d).") var expiresIn: String?
        @Flag(help: "Require dual authorization to delete.") var dualAuth = false
        @Option(help: "Rotation policy interval in months (1-12).") var rotationMonths: Int?
        @Option(help: "An alias (repeatable).") var alias: [String] = []
        @Option(help: "A description.") var description: String?

        func validate() throws {
            if expires != nil, expiresIn != nil { throw ValidationError("give --expires or --expires-in, not both") }
            if let rotationMonths, !(1...12).contains(rotationMonths) {
                throw ValidationError("--rotation-months must be from 1 to 12, not \(rotationMonths)")
            }
            _ = try expirationDate()
            _ = try expiryDuration()
            _ = try base64Payload(payload)
        }

        /// `--expires`, parsed; a wrong one is a usage error.
        func expirationDate() throws -> Date? {
            guard let expires else { return nil }
            guard let date = Timestamp.parse(expires) else {
                throw ValidationError("--expires must be an RFC 3339 time such as 2026-12-31T00:00:00Z, not '\(expires)'")
            }
            return date
        }

        /// `--expires-in`, parsed. The engine adds it to now on its own clock (and bounds it): the command line reads
        /// no clock.
        func expiryDuration() throws -> TimeInterval? {
            guard let expiresIn else { return nil }
            guard let interval = DurationText.parse(expiresIn) else {
                throw ValidationError("--expires-in must be a duration such as 30d or 4h, at most \(DurationText.maximumText), not '\(expiresIn.prefix(40))'")
            }
            return interval
        }

        func run() async throws {
            try await reportingErrors(json: options.json) {
                let engine = try await options.engine(creating: true)
                let spec = KeySpec(name: name, description: description, aliases: alias, extractable: standard,
                                   payload: try base64Payload(payload), expirationDate: try expirationDate(),
                                   dualAuthDelete: dualAuth ? true : nil,
                                   rotation: rotationMonths.map { RotationPolicy(enabled: true, intervalMonth: $0) })
                let key = if let duration = try expiryDuration() {
                    try await engine.createKey(spec, expiringAfter: duration, context: options.context)
                } else {
                    try await engine.createKey(spec, context: options.context)
                }
                show(key, options)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (with --all, destroyed ones too).")
        @OptionGroup var options: DatabaseOptions
        @Flag(help: "Include destroyed keys.") var all = false

        func run() async throws {
            try await reportingErrors(json: options.json) {
                let engine = try await options.engine()
                var query = KeyQuery()
                if all { query.states = [.active, .suspended, .deactivated, .destroyed] }
                query.limit = 5000
                let keys = try await engine.listKeys(query, context: options.context).items
                if options.json {
                    for key in keys { print(CLIJSON.encode(KeyView(key))) }
                } else if keys.isEmpty {
                    print("no keys in instance '\(options.instance)'")
                } else {
                    printTable(["ID", "NAME", "TYPE", "STATE", "VERSIONS"],
                               keys.map { [$0.id, $0.name, $0.isRoot ? "root" : "standard", $0.state.description, String($0.versionCount)] })
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a key by id or alias.")
        @OptionGroup var options: DatabaseOptions
        @Argument(help: "Key id or alias.") var key: String
        func run() async throws {
            try await reportingErrors(json: options.json) {
                show(try await options.engine().key(key, context: options.context), options)
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rotate a root key (at most once an hour).")
        @OptionGroup var options: DatabaseOptions
        @Argument(help: "Key id or alias.") var key: String
        @Option(help: "New base64 key material (imported keys only).") var payload: String?
        func validate() throws { _ = try base64Payload(payload) }
        func run() async throws {
            try await reportingErrors(json: options.json) {
                let material = try base64Payload(payload)
                show(try await options.engine().rotate(key, payload: material, context: options.context), options)
            }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable an active key.")
        @OptionGroup var options: DatabaseOptions
        @Argument(help: "Key id or alias.") var key: String
        func run() async throws {
            try await reportingErrors(json: options.json) { show(try await options.engine().disable(key, context: options.context), options) }
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a suspended key.")
        @OptionGroup var options: DatabaseOptions
        @Argument(help: "Key id or alias.") var key: String
        func run() async throws {
            try await reportingErrors(json: options.json) { show(try await options.engine().enable(key, context: options.context), options) }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a key (with --force, even when resources are registered).")
        @OptionGroup var options: DatabaseOptions
        @Argument(help: "Key id or alias.") var key: String
        @Flag(help: "Delete even though resources are registered with the key.") var force = false
        func run() async throws {
            try await reportingErrors(json: options.json) {
                show(try await options.engine().delete(key, force: force, context: options.context), options)
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Restore a deleted key (within 30 days).")
        @OptionGroup var options: DatabaseOptions
        @Argument(help: "Key id or alias.") var key: String
        func run() async throws {
            try await reportingErrors(json: options.json) { show(try await options.engine().restore(key, context: options.context), options) }
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Purge a deleted key (4 hours or more after deletion).")
        @OptionGroup var options: DatabaseOptions
        @Argument(help: "Key id or alias.") var key: String
        func run() async throws {
            try await reportingErrors(json: options.json) {
                let key = try await options.engine().purge(key, context: options.context)
                if options.json { print(CLIJSON.encode(["purged": key.id])) } else { print("purged \(key.id)") }
            }
        }
    }

    struct Sync: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Re-notify every associated resource of the key's current state (at most once an hour).")
        @OptionGroup var options: DatabaseOptions
        @Argument(help: "Key id or alias.") var key: String
        func run() async throws {
            try await reportingErrors(json: options.json) {
                let receipt = try await options.engine().sync(key, context: options.context)
                if options.json {
                    print(CLIJSON.encode(SyncView(keyID: receipt.event.keyID, eventID: receipt.event.id, keyState: receipt.event.keyState.description,
                                                  notifications: receipt.notifications)))
                } else {
                    print("sync accepted: \(receipt.notifications) notification(s) of state \(receipt.event.keyState) (event \(receipt.event.id))")
                }
            }
        }
    }

    struct SetForDeletion: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set-for-deletion",
                                                        abstract: "Authorize deletion of a dual-authorization key (valid 7 days).")
        @OptionGroup var options: DatabaseOptions
        @Argument(help: "Key id or alias.") var key: String
        func run() async throws {
            try await reportingErrors(json: options.json) {
                show(try await options.engine().setKeyForDeletion(key, context: options.context), options)
            }
        }
    }
}

struct SyncView: Codable {
    var keyID: String
    var eventID: String
    var keyState: String
    var notifications: Int
}

func show(_ key: Key, _ options: DatabaseOptions) {
    print(options.json ? CLIJSON.encode(KeyView(key)) : KeyView(key).text)
}

/// `--payload`, decoded; anything but base64 is a usage error.
func base64Payload(_ text: String?) throws -> Data? {
    guard let text else { return nil }
    guard let data = Data(base64Encoded: text) else { throw ValidationError("--payload must be base64 key material") }
    return data
}
