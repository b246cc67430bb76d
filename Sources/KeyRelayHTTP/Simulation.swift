import Foundation
import Hummingbird
import KeyRelay
import KeyRelayAdapters
import KeyRelayBus
import Synchronization

/// The simulated associated services that run inside `keyrelay serve`: one Cloud Object Storage and one Cloud
/// Databases (PostgreSQL) service per Key Protect instance, subscribed to the server's bus. They register their
/// resources with the engine, wrap and unwrap their data keys through it, follow every notification and
/// acknowledge it — so a deleted key really makes a bucket unreadable, and a lost notification really leaves it
/// readable until a sync.
public final class SimulatedCloud: ServiceSubscriber {
    struct Services {
        let objectStorage: ObjectStorageService
        let databases: DatabasesService
    }

    public let engine: KeyRelayEngine
    private let services = Mutex<[String: Services]>([:])

    /// Creates the simulation and subscribes it to the COS and PostgreSQL topics of `bus`.
    public init(engine: KeyRelayEngine, bus: ServiceBus) {
        self.engine = engine
        bus.subscribe(self, to: ServiceTopic.objectStorage)
        bus.subscribe(self, to: ServiceTopic.postgreSQL)
    }

    /// The services of one instance, created on first use.
    func services(for instanceID: String) -> Services {
        services.withLock { all in
            if let existing = all[instanceID] { return existing }
            let client = engine.adopterClient(instanceID: instanceID)
            let created = Services(
                objectStorage: ObjectStorageService(client: client, clock: engine.clock, account: engine.configuration.account,
                                                    serviceInstance: "cos-\(instanceID)"),
                databases: DatabasesService(client: client, clock: engine.clock, account: engine.configuration.account))
            all[instanceID] = created
            return created
        }
    }

    /// Routes a notification to the service of its key's instance. A resource the simulation does not host was
    /// registered by an adopter outside the process (through the service-to-service endpoints): the notification
    /// counts as handed over, and that adopter acknowledges it with `POST /api/v2/event_ack`.
    public func deliver(_ notification: ResourceNotification) async throws {
        let services = services(for: notification.event.instanceID)
        let core = notification.serviceName == ServiceTopic.objectStorage ? services.objectStorage.core : services.databases.core
        guard await core.hosts(notification.resourceCRN) else { return }
        try await core.deliver(notification)
    }
}

extension KeyProtectAPI {
    /// `/api/v2/_sim/…` (KeyRelay extension): create and use simulated buckets and deployments in the caller's
    /// instance. Creating needs the `create` permission; reading and writing data needs `use`; listing needs `read`.
    func addSimulationRoutes(to router: Router<KeyRelayRequestContext>, simulation: SimulatedCloud) {
        let api = self
        let read = group(router, .read)
        let create = group(router, .create)
        let use = group(router, .use)
        read.get("/api/v2/_sim/buckets") { _, context in
            let statuses = await simulation.services(for: try context.caller.instanceID).objectStorage.buckets()
            return WireResponse(.ok, SimulatedResources(resources: statuses.map(SimulatedResource.init)))
        }
        create.post("/api/v2/_sim/buckets") { request, context in
            try await api.createSimulated(request, context, simulation: simulation, kind: "bucket")
        }
        read.get("/api/v2/_sim/buckets/{name}") { _, context in
            let instanceID = try context.caller.instanceID
            let name = try context.parameters.require("name")
            let status = try await Self.simulated {
                try await simulation.services(for: instanceID).objectStorage.status(ofBucket: name)
            }
            return WireResponse(.ok, SimulatedResource(status))
        }
        use.put("/api/v2/_sim/buckets/{name}/objects/{object}") { request, context in
            let instanceID = try context.caller.instanceID
            var request = request
            let data = Data(buffer: try await request.collectBody(upTo: context.maxUploadSize))
            let bucket = try context.parameters.require("name")
            let object = try context.parameters.require("object")
            try await Self.simulated {
                try await simulation.services(for: instanceID).objectStorage.putObject(bucket: bucket, key: object, data: data)
            }
            return Response(status: .noContent)
        }
        use.get("/api/v2/_sim/buckets/{name}/objects/{object}") { _, context in
            let instanceID = try context.caller.instanceID
            let bucket = try context.parameters.require("name")
            let object = try context.parameters.require("object")
            let data = try await Self.simulated {
                try await simulation.services(for: instanceID).objectStorage.getObject(bucket: bucket, key: object)
            }
            return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        read.get("/api/v2/_sim/deployments") { _, context in
            let statuses = await simulation.services(for: try context.caller.instanceID).databases.deployments()
            return WireResponse(.ok, SimulatedResources(resources: statuses.map(SimulatedResource.init)))
        }
        create.post("/api/v2/_sim/deployments") { request, context in
            try await api.createSimulated(request, context, simulation: simulation, kind: "deployment")
        }
    }

    /// `{"name": "invoices", "keyId": "<key id or alias>", "retention": false}`.
    func createSimulated(_ request: Request, _ context: KeyRelayRequestContext, simulation: SimulatedCloud, kind: String) async throws -> Response {
        let op = "Simulated \(kind) could not be created"
        let caller = try context.caller
        guard let body = try await KeyProtectRequestDecoder.decodeIfPresent(SimulatedResourceRequest.self, from: request,
                                                                            maxSize: context.maxUploadSize, operation: op) else {
            throw KeyRelayError(.noBody, "Missing body in request", operation: op)
        }
        guard !body.name.isEmpty else {
            throw KeyRelayError(.invalidField, "The field 'name' must be: the \(kind) name", operation: op, target: ErrorTarget(.field, "name"))
        }
        let key = try await engine.key(body.keyId, context: caller)
        let retention = body.retention?.value ?? false
        let services = simulation.services(for: caller.instanceID)
        let status = try await Self.simulated {
            kind == "bucket"
                ? try await services.objectStorage.createBucket(body.name, keyID: key.id, retention: retention)
                : try await services.databases.createDeployment(body.name, keyID: key.id, preventKeyDeletion: retention)
        }
        background.poke()
        return try WireResponse(.created, SimulatedResource(status)).response(from: request, context: context)
    }

    /// Runs a simulated service's call, turning its data-plane errors into KeyRelay error bodies (403 for denied
    /// access, 404 for unknown resources, 409 for duplicates).
    static func simulated<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as ServiceAccessError {
            throw KeyRelayError(error)
        }
    }
}

/// `POST /api/v2/_sim/buckets|deployments` (KeyRelay extension).
struct SimulatedResourceRequest: Decodable, Sendable {
    var name: String
    var keyId: String
    var retention: WireBool?
}

/// A simulated bucket or deployment as `/api/v2/_sim` shows it.
struct SimulatedResource: Codable, Sendable {
    var name: String
    var resourceCrn: String
    var keyId: String
    var keyVersion: KeyVersionReference
    var adopterKeyState: String
    var access: String
    var accessDeniedReason: String?
    var items: Int
    var lastAppliedEventId: String?

    init(_ status: ResourceStatus) {
        name = status.name
        resourceCrn = status.resourceCRN
        keyId = status.keyID
        keyVersion = KeyVersionReference(id: status.keyVersionID)
        adopterKeyState = status.adopterKeyState.rawValue
        access = status.access.isAllowed ? "allowed" : "denied"
        if case .denied(let reason) = status.access { accessDeniedReason = reason.rawValue }
        items = status.itemCount
        lastAppliedEventId = status.lastAppliedEventID
    }
}

/// `{"resources": [...]}` of `/api/v2/_sim` lists.
struct SimulatedResources: Codable, Sendable {
    var resources: [SimulatedResource]
}

extension KeyRelayError {
    /// A simulated service's data-plane refusal as KeyRelay's error (over HTTP and on the command line alike): 404
    /// for an unknown resource or item, 403 for denied access, 409 for a duplicate.
    public init(_ error: ServiceAccessError, operation: String = "Simulated service request could not be processed") {
        switch error {
        case .noSuchResource, .noSuchItem:
            self.init(.notFound, error.description, operation: operation)
        case .accessDenied:
            self.init(.featureRestricted, error.description, operation: operation)
        case .resourceExists:
            self.init(.registrationExists, error.description, operation: operation)
        }
    }
}
