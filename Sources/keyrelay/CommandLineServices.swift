import Crypto
import Foundation
import KeyRelay
import KeyRelayAdapters
import KeyRelayBus
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The simulated Cloud Object Storage and Cloud Databases services of the command line, as `keyrelay serve` and
/// the scenario runner run them (``ObjectStorageService``, ``DatabasesService`` on a ``ServiceBus``), with one
/// difference: every `keyrelay` command is a new process, so the services' memory (each resource's wrapped and
/// cached data key, the events it applied, its encrypted objects) is kept in a file beside the database,
/// `<db>.services`, sealed with AES-GCM under a key derived from the master key (it holds cached data keys).
///
/// The file belongs to the simulation, not to the key service: the database never depends on it, `keyrelay backup`
/// does not copy it, and losing it only loses the simulated buckets' contents. Commands that use it hold an
/// exclusive lock on `<db>.services.lock` from loading to saving.
final class CommandLineServices: ServiceSubscriber {
    struct Instance: Sendable {
        let objectStorage: ObjectStorageService
        let databases: DatabasesService
    }

    /// What the file holds: per instance, each service's snapshot.
    struct Contents: Codable {
        var format = 1
        var instances: [String: [String: ProtectedResourceService.Snapshot]] = [:]
    }

    let engine: KeyRelayEngine
    let path: String
    private let sealingKey: SymmetricKey
    private let loaded: Contents
    private let instances = Mutex<[String: Instance]>([:])

    private init(engine: KeyRelayEngine, path: String, sealingKey: SymmetricKey, contents: Contents) {
        self.engine = engine
        self.path = path
        self.sealingKey = sealingKey
        self.loaded = contents
    }

    /// Loads the services of the database at `databasePath` (none yet when the file is missing), runs `body`
    /// with them, and saves them, all under the file's lock.
    static func with<T>(engine: KeyRelayEngine, databasePath: String, masterKey: MasterKey,
                        _ body: (CommandLineServices) async throws -> T) async throws -> T {
        let path = databasePath + ".services"
        let lock = try FileLock(path + ".lock")
        defer { lock.release() }
        let raw = Data(base64Encoded: masterKey.base64EncodedString()) ?? Data()
        let sealingKey = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: raw), salt: Data("keyrelay-cli".utf8),
                                                info: Data("simulated services v1".utf8), outputByteCount: 32)
        var contents = Contents()
        if let sealed = FileManager.default.contents(atPath: path) {
            do {
                let plain = try AES.GCM.open(try AES.GCM.SealedBox(combined: sealed), using: sealingKey)
                contents = try JSONDecoder().decode(Contents.self, from: plain)
            } catch {
                throw KeyRelayError.commandLine("\(path): the simulated services' file cannot be read with this master key (\(error)); move it away to start the simulation afresh")
            }
        }
        let services = CommandLineServices(engine: engine, path: path, sealingKey: sealingKey, contents: contents)
        for instance in contents.instances.keys { _ = await services.instance(instance) }
        let result = try await body(services)
        try await services.save()
        return result
    }

    /// The services of one Key Protect instance, restored from the file on first use.
    func instance(_ id: String) async -> Instance {
        if let existing = instances.withLock({ $0[id] }) { return existing }
        let client = engine.adopterClient(instanceID: id)
        let created = Instance(
            objectStorage: ObjectStorageService(client: client, clock: engine.clock, account: ResourceCommand.account),
            databases: DatabasesService(client: client, clock: engine.clock, account: ResourceCommand.account))
        if let saved = loaded.instances[id] {
            if let snapshot = saved[ServiceTopic.objectStorage] { await created.objectStorage.core.restore(snapshot) }
            if let snapshot = saved[created.databases.serviceName] { await created.databases.core.restore(snapshot) }
        }
        return instances.withLock { all in
            if let raced = all[id] { return raced }
            all[id] = created
            return created
        }
    }

    private func save() async throws {
        var contents = Contents()
        for (id, instance) in instances.withLock({ $0 }) {
            contents.instances[id] = [ServiceTopic.objectStorage: await instance.objectStorage.core.snapshot(),
                                      instance.databases.serviceName: await instance.databases.core.snapshot()]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        guard let sealed = try AES.GCM.seal(try encoder.encode(contents), using: sealingKey).combined else { return }
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: sealed, attributes: [.posixPermissions: 0o600]) else {
            throw KeyRelayError.commandLine(.internalError, "\(path): cannot write the simulated services' file")
        }
        guard rename(temporary, path) == 0 else {
            throw KeyRelayError.commandLine(.internalError, "\(path): cannot replace the simulated services' file (\(String(cString: strerror(errno))))")
        }
    }

    /// A bus with these services subscribed to their topics.
    func bus() -> ServiceBus {
        let bus = ServiceBus()
        bus.subscribe(self, to: ServiceTopic.objectStorage)
        bus.subscribe(self, to: ServiceTopic.postgreSQL)
        return bus
    }

    /// Routes a notification to the simulated service of its key's instance that hosts the resource. Any other
    /// resource's notification fails its attempt, saying so, and the bus retries it with backoff like any failed
    /// delivery: webhooks are `keyrelay serve --webhook SERVICE=URL`'s, not this command's.
    func deliver(_ notification: ResourceNotification) async throws {
        let instance = await instance(notification.event.instanceID)
        let core = notification.serviceName == ServiceTopic.objectStorage ? instance.objectStorage.core : instance.databases.core
        if await core.hosts(notification.resourceCRN) {
            try await core.deliver(notification)
        } else {
            throw KeyRelayError.commandLine(.notFound, "\(notification.resourceCRN) is not a resource this command line simulates: `keyrelay deliver` reaches only the simulated services (webhooks are delivered by `keyrelay serve --webhook SERVICE=URL`)")
        }
    }
}

/// An exclusive advisory lock (`flock`) on a file, held until released.
struct FileLock {
    private let descriptor: Int32

    init(_ path: String) throws {
        descriptor = open(path, O_RDWR | O_CREAT, 0o600)
        guard descriptor >= 0 else { throw KeyRelayError.commandLine(.internalError, "\(path): cannot open the lock file (\(String(cString: strerror(errno))))") }
        guard flock(descriptor, LOCK_EX) == 0 else {
            close(descriptor)
            throw KeyRelayError.commandLine(.internalError, "\(path): cannot lock (\(String(cString: strerror(errno))))")
        }
    }

    func release() {
        _ = flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
