import Foundation
import KeyRelayBus
import KeyRelayCore

/// A simulated IBM Cloud Object Storage instance (bus topic `cloud-object-storage`): buckets holding objects,
/// each bucket protected by a root key (SSE with Key Protect).
///
/// A bucket caches its unwrapped data key and keeps serving until a notification tells it otherwise: exactly the
/// failure sync exists for. Behaviour on notifications: see ``ProtectedResourceService``.
public final class ObjectStorageService: ServiceSubscriber {
    /// The shared DEK-protected resource behaviour.
    public let core: ProtectedResourceService
    public let account: String
    public let serviceInstance: String

    /// - Parameters:
    ///   - client: how the service talks to the key service (the engine's ``AdopterClient``, or an HTTP one).
    ///   - account: the account named in bucket CRNs.
    ///   - serviceInstance: the COS instance named in bucket CRNs.
    public init(client: any AdopterClient, clock: any KeyRelayClock, account: String = "keyrelay",
                serviceInstance: String = "cos-instance-1") {
        core = ProtectedResourceService(serviceName: ServiceTopic.objectStorage, client: client, clock: clock)
        self.account = account
        self.serviceInstance = serviceInstance
    }

    /// Subscribes the service to its topic on `bus`.
    public func subscribe(to bus: ServiceBus) { bus.subscribe(self, to: ServiceTopic.objectStorage) }

    /// The CRN of bucket `name`.
    public func crn(ofBucket name: String) -> String {
        CRN.bucket(account: account, serviceInstance: serviceInstance, bucket: name)
    }

    /// Creates a bucket protected by root key `keyID`: registers it with the key (with `preventKeyDeletion` when
    /// the bucket has a retention policy), wraps a fresh DEK through the key service and caches it.
    @discardableResult
    public func createBucket(_ name: String, keyID: String, retention: Bool = false) async throws -> ResourceStatus {
        try await core.create(name: name, resourceCRN: crn(ofBucket: name), keyID: keyID, preventKeyDeletion: retention,
                              description: "COS bucket \(name)")
    }

    /// Writes an object (AES-GCM under the bucket's DEK). Throws ``ServiceAccessError/accessDenied(resource:reason:)``
    /// when the bucket has no usable DEK.
    public func putObject(bucket: String, key: String, data: Data) async throws {
        try await core.put(bucket, item: key, data: data)
    }

    /// Reads an object. Throws ``ServiceAccessError/accessDenied(resource:reason:)`` when the bucket has no usable DEK.
    public func getObject(bucket: String, key: String) async throws -> Data {
        try await core.get(bucket, item: key)
    }

    /// Object names of a bucket.
    public func listObjects(bucket: String) async throws -> [String] { try await core.items(bucket) }

    /// A bucket's status: access allowed or denied, the key version its DEK is wrapped with.
    public func status(ofBucket name: String) async throws -> ResourceStatus { try await core.status(name) }

    /// Every bucket's status.
    public func buckets() async -> [ResourceStatus] { await core.statuses() }

    /// Deletes a bucket (unregisters it from its key).
    public func deleteBucket(_ name: String) async throws { try await core.remove(name) }

    public func deliver(_ notification: ResourceNotification) async throws { try await core.deliver(notification) }
}

/// A simulated IBM Cloud Databases service (bus topic `databases-for-postgresql` by default): deployments holding
/// records, each deployment's disks protected by a root key (BYOK). Same behaviour as ``ObjectStorageService``.
public final class DatabasesService: ServiceSubscriber {
    public let core: ProtectedResourceService
    public let account: String
    public let region: String

    public init(client: any AdopterClient, clock: any KeyRelayClock, serviceName: String = ServiceTopic.postgreSQL,
                account: String = "keyrelay", region: String = "us-south") {
        core = ProtectedResourceService(serviceName: serviceName, client: client, clock: clock)
        self.account = account
        self.region = region
    }

    /// The bus topic.
    public var serviceName: String { core.serviceName }

    /// Subscribes the service to its topic on `bus`.
    public func subscribe(to bus: ServiceBus) { bus.subscribe(self, to: serviceName) }

    /// The CRN of deployment `name`.
    public func crn(ofDeployment name: String) -> String {
        CRN.deployment(service: serviceName, region: region, account: account, deployment: name)
    }

    /// Creates a deployment protected by root key `keyID` (see ``ObjectStorageService/createBucket(_:keyID:retention:)``).
    @discardableResult
    public func createDeployment(_ name: String, keyID: String, preventKeyDeletion: Bool = false) async throws -> ResourceStatus {
        try await core.create(name: name, resourceCRN: crn(ofDeployment: name), keyID: keyID,
                              preventKeyDeletion: preventKeyDeletion, description: "Cloud Databases deployment \(name)")
    }

    /// Writes a record.
    public func insert(deployment: String, id: String, record: Data) async throws {
        try await core.put(deployment, item: id, data: record)
    }

    /// Reads a record.
    public func read(deployment: String, id: String) async throws -> Data {
        try await core.get(deployment, item: id)
    }

    /// A deployment's status.
    public func status(ofDeployment name: String) async throws -> ResourceStatus { try await core.status(name) }

    /// Every deployment's status.
    public func deployments() async -> [ResourceStatus] { await core.statuses() }

    /// Deletes a deployment (unregisters it from its key).
    public func deleteDeployment(_ name: String) async throws { try await core.remove(name) }

    public func deliver(_ notification: ResourceNotification) async throws { try await core.deliver(notification) }
}
