import Crypto
import Foundation
import KeyRelayBus
import KeyRelayCore

/// Why a simulated service refuses access to a resource's data.
public enum AccessDenial: String, Sendable, Equatable {
    /// The root key was deleted: the cached DEK was shredded (crypto-erasure).
    case keyDeleted = "key deleted: the data key was shredded"
    /// The root key was disabled: access is suspended until it is enabled.
    case keyDisabled = "key disabled: access is suspended"
    /// The data key could not be unwrapped.
    case unwrapFailed = "the data key could not be unwrapped"
}

/// Errors of the simulated services' data plane (COS, Cloud Databases). These are the *services'* answers to their
/// own clients, not Key Protect's, so they are not `KeyRelayError`s.
public enum ServiceAccessError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No bucket or deployment of that name (or CRN).
    case noSuchResource(String)
    /// The resource exists but its data cannot be read or written.
    case accessDenied(resource: String, reason: AccessDenial)
    /// No object or record of that name in the resource.
    case noSuchItem(resource: String, item: String)
    /// A bucket or deployment of that name already exists.
    case resourceExists(String)

    public var description: String {
        switch self {
        case .noSuchResource(let name): "No such resource '\(name)'"
        case .accessDenied(let name, let reason): "Access denied to '\(name)': \(reason.rawValue)"
        case .noSuchItem(let name, let item): "No item '\(item)' in '\(name)'"
        case .resourceExists(let name): "A resource named '\(name)' already exists"
        }
    }
}

/// Whether a resource's data can be used.
public enum ResourceAccess: Sendable, Equatable {
    case allowed
    case denied(AccessDenial)

    public var isAllowed: Bool { self == .allowed }
}

/// The observable state of one protected resource (a bucket or a deployment).
public struct ResourceStatus: Sendable, Equatable {
    public var name: String
    public var resourceCRN: String
    public var keyID: String
    public var access: ResourceAccess
    /// The key version the stored wrapped DEK is wrapped with.
    public var keyVersionID: String
    /// The state this service reports in its acknowledgements.
    public var adopterKeyState: AdopterKeyState
    /// The last event applied (not merely acknowledged), if any.
    public var lastAppliedEventID: String?
    /// The per-key sequence of the newest event applied (0 before any).
    public var newestKeySequence: Int
    /// How many objects or records it holds.
    public var itemCount: Int
}

/// The behaviour every simulated DEK-protected service shares (COS buckets, Cloud Databases deployments):
/// register the resource with the root key, wrap a fresh DEK, cache the unwrapped DEK, encrypt data with it
/// (AES-GCM), and follow the key's lifecycle from bus notifications, acknowledging each.
///
/// Notification handling is driven by the event's key state (its kind is informational):
/// - destroyed → shred the cached DEK; access denied; ack `DEK_DELETED`;
/// - suspended → drop the cached DEK; access denied; ack `DEK_DISABLED`;
/// - active / deactivated → unwrap the stored wrapped DEK again (access allowed) and, when the event names a key
///   version other than the one the DEK is wrapped with, rewrap it and store the result; ack `DEK_ENABLED` with
///   the version.
///
/// Idempotent by event id; an event whose per-key sequence is older than the newest applied is ignored but still
/// acknowledged (with the state the resource is in), so it does not stay pending.
public actor ProtectedResourceService: ServiceSubscriber {
    struct Resource {
        var name: String
        var crn: String
        var keyID: String
        var wrappedDEK: String
        var keyVersion: KeyVersion
        var cachedDEK: SymmetricKey?
        var access: ResourceAccess
        var adopterState: AdopterKeyState
        /// The events applied at ``newestKeySequence`` (in practice one: a key's events have distinct sequences). An
        /// event of an older sequence is stale whatever its id, so older ids are not kept: the set does not grow with
        /// every event a long-running `keyrelay simulate` process applies.
        var appliedEvents: Set<String> = []
        var lastApplied: String?
        var newestKeySequence = 0
        var items: [String: Data] = [:]
    }

    /// The bus topic (CRN service name).
    public nonisolated let serviceName: String
    public nonisolated let client: any AdopterClient
    private let clock: any KeyRelayClock
    // Internal, not private: ProtectedResourceService+Snapshot.swift saves and restores them.
    var resources: [String: Resource] = [:]
    var crnByName: [String: String] = [:]
    private var received: [String] = []
    /// How many received event ids ``receivedEventIDs`` keeps (the most recent).
    public static let receivedLogLimit = 1_000

    public init(serviceName: String, client: any AdopterClient, clock: any KeyRelayClock) {
        self.serviceName = serviceName
        self.client = client
        self.clock = clock
    }

    /// Subscribes this service to its topic on `bus`.
    public nonisolated func subscribe(to bus: ServiceBus) {
        bus.subscribe(self, to: serviceName)
    }

    /// The AAD binding a wrapped DEK to its resource.
    static func dekAAD(_ crn: String) -> [String] { [crn] }

    /// Creates a resource protected by `keyID`: registers it (with `preventKeyDeletion`), generates and wraps a DEK
    /// through the key service, and caches it.
    @discardableResult
    public func create(name: String, resourceCRN: String, keyID: String, preventKeyDeletion: Bool,
                       description: String?) async throws -> ResourceStatus {
        guard crnByName[name] == nil, resources[resourceCRN] == nil else { throw ServiceAccessError.resourceExists(name) }
        try await client.registerResource(keyID: keyID, resourceCRN: resourceCRN, preventKeyDeletion: preventKeyDeletion,
                                          description: description)
        let dek = try await client.generateDEK(keyID: keyID, aad: Self.dekAAD(resourceCRN))
        guard crnByName[name] == nil, resources[resourceCRN] == nil else { throw ServiceAccessError.resourceExists(name) }
        resources[resourceCRN] = Resource(name: name, crn: resourceCRN, keyID: keyID, wrappedDEK: dek.ciphertext,
                                          keyVersion: dek.keyVersion, cachedDEK: SymmetricKey(data: dek.plaintext),
                                          access: .allowed, adopterState: .enabled)
        crnByName[name] = resourceCRN
        return try status(name)
    }

    private func crn(_ name: String) throws(ServiceAccessError) -> String {
        if let crn = crnByName[name] { return crn }
        if resources[name] != nil { return name }
        throw .noSuchResource(name)
    }

    private func usableDEK(_ name: String) throws(ServiceAccessError) -> (String, SymmetricKey) {
        let crn = try crn(name)
        let resource = resources[crn]!
        guard case .allowed = resource.access, let dek = resource.cachedDEK else {
            if case .denied(let reason) = resource.access { throw .accessDenied(resource: name, reason: reason) }
            throw .accessDenied(resource: name, reason: .unwrapFailed)
        }
        return (crn, dek)
    }

    /// Encrypts and stores `data` under `item` with the resource's cached DEK.
    public func put(_ name: String, item: String, data: Data) throws {
        let (crn, dek) = try usableDEK(name)
        let sealed = try AES.GCM.seal(data, using: dek, authenticating: Data("\(crn)\u{0}\(item)".utf8))
        guard let combined = sealed.combined else { throw ServiceAccessError.accessDenied(resource: name, reason: .unwrapFailed) }
        resources[crn]!.items[item] = combined
    }

    /// Decrypts `item` with the resource's cached DEK.
    public func get(_ name: String, item: String) throws -> Data {
        let (crn, dek) = try usableDEK(name)
        guard let combined = resources[crn]!.items[item] else { throw ServiceAccessError.noSuchItem(resource: name, item: item) }
        return try AES.GCM.open(try AES.GCM.SealedBox(combined: combined), using: dek,
                                authenticating: Data("\(crn)\u{0}\(item)".utf8))
    }

    /// Names of the items of a resource, sorted (listing needs no DEK, as in COS).
    public func items(_ name: String) throws -> [String] {
        resources[try crn(name)]!.items.keys.sorted()
    }

    /// The status of a resource, by name or CRN.
    public func status(_ name: String) throws -> ResourceStatus {
        let r = resources[try crn(name)]!
        return ResourceStatus(name: r.name, resourceCRN: r.crn, keyID: r.keyID, access: r.access, keyVersionID: r.keyVersion.id,
                              adopterKeyState: r.adopterState, lastAppliedEventID: r.lastApplied,
                              newestKeySequence: r.newestKeySequence, itemCount: r.items.count)
    }

    /// Every resource's status, by name.
    public func statuses() -> [ResourceStatus] {
        crnByName.keys.sorted().compactMap { try? status($0) }
    }

    /// The wrapped DEK as stored (opaque), for inspection.
    public func wrappedDEK(_ name: String) throws -> String { resources[try crn(name)]!.wrappedDEK }

    /// Event ids received (including duplicates and ignored ones), in order: the most recent
    /// ``receivedLogLimit`` of them, so that a long-running service does not grow with every delivery.
    public var receivedEventIDs: [String] { Array(received.suffix(Self.receivedLogLimit)) }

    /// Deletes a resource: unregisters it from its key and forgets it.
    public func remove(_ name: String) async throws {
        let crn = try crn(name)
        let r = resources[crn]!
        try await client.unregisterResource(keyID: r.keyID, resourceCRN: crn)
        resources[crn] = nil
        crnByName[r.name] = nil
    }

    // MARK: - Notifications

    /// Whether this service holds the resource named by `resourceCRN`.
    public func hosts(_ resourceCRN: String) -> Bool { resources[resourceCRN] != nil }

    public func deliver(_ notification: ResourceNotification) async throws {
        received.append(notification.event.id)
        // Trimmed a limit's worth at a time (amortised), never past the last `receivedLogLimit`.
        if received.count >= 2 * Self.receivedLogLimit { received.removeFirst(received.count - Self.receivedLogLimit) }
        let event = notification.event
        let crn = notification.resourceCRN
        // What is needed of the resource, not a copy of it (see `apply`).
        guard let (known, wrappedDEK, keyVersion) = resources[crn].flatMap({ r in
            r.keyID == event.keyID
                ? (r.appliedEvents.contains(event.id) || event.keySequence < r.newestKeySequence, r.wrappedDEK, r.keyVersion) : nil
        }) else {
            throw ServiceAccessError.noSuchResource(crn)
        }
        if known {
            try await acknowledge(event, crn: crn)   // duplicate or stale: report the state we are in
            return
        }
        var access: ResourceAccess
        var cached: SymmetricKey?
        var adopterState: AdopterKeyState
        var wrapped = wrappedDEK
        var version = keyVersion
        switch event.keyState {
        case .destroyed:
            (access, cached, adopterState) = (.denied(.keyDeleted), nil, .deleted)
        case .suspended:
            (access, cached, adopterState) = (.denied(.keyDisabled), nil, .disabled)
        case .active, .deactivated, .preActivation:
            do {
                let dek = try await client.unwrapDEK(keyID: event.keyID, ciphertext: wrapped, aad: Self.dekAAD(crn))
                (access, cached, adopterState) = (.allowed, SymmetricKey(data: dek.plaintext), .enabled)
                if event.keyVersion.id != version.id, event.keyVersion.creationDate >= version.creationDate {
                    let rewrapped = try await client.rewrapDEK(keyID: event.keyID, ciphertext: wrapped, aad: Self.dekAAD(crn))
                    wrapped = rewrapped.ciphertext
                    version = rewrapped.keyVersion
                }
            } catch let error as KeyRelayError where error.statusCode < 500 {
                // The key service refused (the key moved on since this event): no access until a later event.
                (access, cached, adopterState) = (.denied(.unwrapFailed), nil, .disabled)
            }
        }
        // Re-read after the awaits: another delivery may have applied a newer event meanwhile.
        guard let newer = resources[crn].map({ event.keySequence >= $0.newestKeySequence && !$0.appliedEvents.contains(event.id) })
        else { throw ServiceAccessError.noSuchResource(crn) }
        if newer {
            // In place (no copy of the resource held meanwhile): a copy taken out of `resources` and written back
            // duplicated the resource's applied-event set, which grows with every event, on every delivery.
            Self.apply(event, access: access, cached: cached, adopterState: adopterState, wrapped: wrapped, version: version,
                       to: &resources[crn]!)
        }
        try await acknowledge(event, crn: crn)
    }

    private static func apply(_ event: LifecycleEvent, access: ResourceAccess, cached: SymmetricKey?, adopterState: AdopterKeyState,
                              wrapped: String, version: KeyVersion, to resource: inout Resource) {
        resource.access = access
        resource.cachedDEK = cached
        resource.adopterState = adopterState
        resource.wrappedDEK = wrapped
        resource.keyVersion = version
        if event.keySequence > resource.newestKeySequence { resource.appliedEvents.removeAll(keepingCapacity: true) }
        resource.newestKeySequence = event.keySequence
        resource.lastApplied = event.id
        resource.appliedEvents.insert(event.id)
    }

    private func acknowledge(_ event: LifecycleEvent, crn: String) async throws {
        guard let r = resources[crn] else { return }
        try await client.acknowledge(EventAcknowledgement(eventID: event.id, resourceCRN: crn, adopterKeyState: r.adopterState,
                                                            keyVersionID: r.keyVersion.id, timestamp: clock.now()))
    }
}
