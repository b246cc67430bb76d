import Foundation
import KeyRelay
import KeyRelayAdapters
import KeyRelayBus

/// What the runner needs from the simulated services and the service bus. Kept small so the runner's core does not
/// depend on how the bus and the adapters are built.
protocol ScenarioServices: Sendable {
    /// Creates a bucket or deployment protected by `keyID` (registering it with the engine); returns its CRN.
    func createResource(_ kind: ResourceKind, name: String, keyID: String, retention: Bool) async throws -> String
    func write(_ kind: ResourceKind, name: String, object: String, text: String) async throws
    func read(_ kind: ResourceKind, name: String, object: String) async throws -> String
    /// Whether the resource serves its data now.
    func isAccessible(_ kind: ResourceKind, name: String) async throws -> Bool
    /// The id of the key version the resource's data key is wrapped with.
    func keyVersionInUse(_ kind: ResourceKind, name: String) async throws -> String
    func inject(_ fault: BusFault, service: String) async throws
    /// Delivers everything due at the clock's current instant (the `drain` step).
    func drain() async throws
    /// Moves the clock to `target`, stopping at every instant where the bus or a key expiry has work, and doing it.
    func advance(to target: Date) async throws
}

/// Raised by a step the runner cannot perform.
struct ScenarioRunError: Error, CustomStringConvertible {
    var description: String
}

/// The simulated COS and Cloud Databases services on a seeded service bus, driven by the engine's dispatcher.
struct BusServices: ScenarioServices {
    let clock: ManualClock
    let bus: ServiceBus
    let dispatcher: Dispatcher
    let objectStorage: ObjectStorageService
    let databases: DatabasesService

    init(engine: KeyRelayEngine, clock: ManualClock, seed: UInt64, instanceID: String) {
        self.clock = clock
        bus = ServiceBus()
        dispatcher = engine.makeDispatcher(bus: bus, seed: seed)
        let client = engine.adopterClient(instanceID: instanceID)
        objectStorage = ObjectStorageService(client: client, clock: clock)
        databases = DatabasesService(client: client, clock: clock)
        objectStorage.subscribe(to: bus)
        databases.subscribe(to: bus)
    }

    func createResource(_ kind: ResourceKind, name: String, keyID: String, retention: Bool) async throws -> String {
        switch kind {
        case .bucket: try await objectStorage.createBucket(name, keyID: keyID, retention: retention).resourceCRN
        case .deployment: try await databases.createDeployment(name, keyID: keyID, preventKeyDeletion: retention).resourceCRN
        }
    }

    func write(_ kind: ResourceKind, name: String, object: String, text: String) async throws {
        switch kind {
        case .bucket: try await objectStorage.putObject(bucket: name, key: object, data: Data(text.utf8))
        case .deployment: try await databases.insert(deployment: name, id: object, record: Data(text.utf8))
        }
    }

    func read(_ kind: ResourceKind, name: String, object: String) async throws -> String {
        let data = switch kind {
        case .bucket: try await objectStorage.getObject(bucket: name, key: object)
        case .deployment: try await databases.read(deployment: name, id: object)
        }
        return String(decoding: data, as: UTF8.self)
    }

    func status(_ kind: ResourceKind, name: String) async throws -> ResourceStatus {
        switch kind {
        case .bucket: try await objectStorage.status(ofBucket: name)
        case .deployment: try await databases.status(ofDeployment: name)
        }
    }

    func isAccessible(_ kind: ResourceKind, name: String) async throws -> Bool {
        try await status(kind, name: name).access.isAllowed
    }

    func keyVersionInUse(_ kind: ResourceKind, name: String) async throws -> String {
        try await status(kind, name: name).keyVersionID
    }

    func inject(_ fault: BusFault, service: String) async throws {
        switch fault {
        case .drop(let n): bus.dropNext(n, for: service)
        case .fail(let n): bus.failNext(n, for: service)
        case .delay(let interval): bus.delay(interval, for: service)
        case .duplicate(let n): bus.duplicateNext(n, for: service)
        case .partition(let until, let duration):
            bus.partition(service, until: until ?? duration.map { clock.now().addingTimeInterval($0) })
        case .heal: bus.heal(service)
        }
    }

    func drain() async throws {
        try await dispatcher.drain()
    }

    func advance(to target: Date) async throws {
        try await dispatcher.advance(clock, to: target)
    }
}
