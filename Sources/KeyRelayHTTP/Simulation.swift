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
    func addSimulationRoutes(to router: Router<BasicRequestContext>, simulation: SimulatedCloud) {
        let api = self
        router.get("/api/v2/_sim/buckets") { request, _ in
            let caller = try api.authorize(request, .read)
            let statuses = await simulation.services(for: caller.context.instanceID).objectStorage.buckets()
            return Wire.response(.ok, json: ["resources": statuses.map(Self.statusObject)])
        }
        router.post("/api/v2/_sim/buckets") { request, context in
            try await api.createSimulated(request, context, simulation: simulation, kind: "bucket")
        }
        router.get("/api/v2/_sim/buckets/{name}") { request, context in
            let caller = try api.authorize(request, .read)
            let status = try await Self.simulated {
                try await simulation.services(for: caller.context.instanceID).objectStorage.status(ofBucket: try context.parameters.require("name"))
            }
            return Wire.response(.ok, json: Self.statusObject(status))
        }
        router.put("/api/v2/_sim/buckets/{name}/objects/{object}") { request, context in
            let caller = try api.authorize(request, .use)
            var request = request
            let data = Data(buffer: try await request.collectBody(upTo: context.maxUploadSize))
            try await Self.simulated {
                try await simulation.services(for: caller.context.instanceID).objectStorage.putObject(
                    bucket: try context.parameters.require("name"), key: try context.parameters.require("object"), data: data)
            }
            return Response(status: .noContent)
        }
        router.get("/api/v2/_sim/buckets/{name}/objects/{object}") { request, context in
            let caller = try api.authorize(request, .use)
            let data = try await Self.simulated {
                try await simulation.services(for: caller.context.instanceID).objectStorage.getObject(
                    bucket: try context.parameters.require("name"), key: try context.parameters.require("object"))
            }
            return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        router.get("/api/v2/_sim/deployments") { request, _ in
            let caller = try api.authorize(request, .read)
            let statuses = await simulation.services(for: caller.context.instanceID).databases.deployments()
            return Wire.response(.ok, json: ["resources": statuses.map(Self.statusObject)])
        }
        router.post("/api/v2/_sim/deployments") { request, context in
            try await api.createSimulated(request, context, simulation: simulation, kind: "deployment")
        }
    }

    /// `{"name": "invoices", "keyId": "<key id or alias>", "retention": false}`.
    func createSimulated(_ request: Request, _ context: BasicRequestContext, simulation: SimulatedCloud, kind: String) async throws -> Response {
        let op = "Simulated \(kind) could not be created"
        let caller = try authorize(request, .create)
        guard let body = try await Body.read(request, context: context, operation: op) else {
            throw KeyRelayError(.noBody, "Missing body in request", operation: op)
        }
        let fields = Fields(object: body.object, operation: op)
        guard let name = try fields.string("name", required: true), !name.isEmpty else {
            throw KeyRelayError(.invalidField, "The field 'name' must be: the \(kind) name", operation: op, target: ErrorTarget(.field, "name"))
        }
        guard let reference = try fields.string("keyId", required: true) else {
            throw KeyRelayError(.invalidField, "The field 'keyId' must be: the root key's id or alias", operation: op, target: ErrorTarget(.field, "keyId"))
        }
        let key = try await engine.key(reference, context: caller.context)
        let retention = try fields.bool("retention") ?? false
        let services = simulation.services(for: caller.context.instanceID)
        let status = try await Self.simulated {
            kind == "bucket"
                ? try await services.objectStorage.createBucket(name, keyID: key.id, retention: retention)
                : try await services.databases.createDeployment(name, keyID: key.id, preventKeyDeletion: retention)
        }
        background.poke()
        return Wire.response(.created, json: Self.statusObject(status))
    }

    static func statusObject(_ status: ResourceStatus) -> [String: Any] {
        var object: [String: Any] = [
            "name": status.name, "resourceCrn": status.resourceCRN, "keyId": status.keyID,
            "keyVersion": ["id": status.keyVersionID], "adopterKeyState": status.adopterKeyState.rawValue,
            "access": status.access.isAllowed ? "allowed" : "denied", "items": status.itemCount,
        ]
        if case .denied(let reason) = status.access { object["accessDeniedReason"] = reason.rawValue }
        if let event = status.lastAppliedEventID { object["lastAppliedEventId"] = event }
        return object
    }

    /// Runs a simulated service's call, turning its data-plane errors into KeyRelay error bodies (403 for denied
    /// access, 404 for unknown resources, 409 for duplicates).
    static func simulated<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as ServiceAccessError {
            let op = "Simulated service request could not be processed"
            switch error {
            case .noSuchResource, .noSuchItem:
                throw KeyRelayError(.notFound, error.description, operation: op)
            case .accessDenied:
                throw HTTPFailure(error: KeyRelayError(.featureRestricted, error.description, operation: op), status: 403)
            case .resourceExists:
                throw KeyRelayError(.registrationExists, error.description, operation: op)
            }
        }
    }
}
