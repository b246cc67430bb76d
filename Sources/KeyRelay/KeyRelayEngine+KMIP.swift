import Foundation
import KeyRelayCore
internal import KeyRelayStore
// Not re-exported: no X509 type is part of the engine's API.
internal import X509

/// What a new KMIP adapter is made of (one resource of Key Protect's create-adapter body).
public struct KMIPAdapterSpec: Sendable, Equatable {
    /// Unique within the instance; the adapter's id when `nil`.
    public var name: String?
    public var description: String?
    /// Must be ``KMIPAdapter/nativeProfile``.
    public var profile: String
    /// `profile_data.crk_id`: the id (or an alias) of an active root key of the instance.
    public var crkID: String?

    public init(name: String? = nil, description: String? = nil, profile: String = KMIPAdapter.nativeProfile, crkID: String?) {
        self.name = name
        self.description = description
        self.profile = profile
        self.crkID = crkID
    }
}

/// KMIP adapter management (reference §1.5): adapters on a root key, their client certificates, and the KMIP objects
/// their clients create — persisted in the store, scoped to the caller's instance and, when the context names one,
/// to the key ring of the adapter's root key.
///
/// KeyRelay has no KMIP endpoint (yet), so nothing creates KMIP objects: object lists are empty, and reading or
/// deleting an object answers 404. The rules are the ones the real service applies:
/// - an adapter names an **active root key** of the instance (an expiring key only with `allowExpiringKey`);
/// - a key that an adapter names cannot be deleted (`PROTECTED_RESOURCE_ERR`, even with `force`): delete the
///   adapter first. A key ring therefore never holds a destroyed key with an adapter, and its deletion rules are
///   unchanged;
/// - deleting an adapter deletes its client certificates and objects;
/// - a client certificate is one PEM X.509 certificate that is not expired (parsed with swift-certificates).
extension KeyRelayEngine {
    // MARK: Adapters

    /// Creates a KMIP adapter on a root key.
    public func createKMIPAdapter(_ spec: KMIPAdapterSpec, allowExpiringKey: Bool = false, context: RequestContext) async throws -> KMIPAdapter {
        try context.check()
        let op = "KMIP adapter could not be created"
        guard spec.profile == KMIPAdapter.nativeProfile else {
            throw KeyRelayError(.invalidField, "The field 'profile' must be: \(KMIPAdapter.nativeProfile)", operation: op,
                                target: ErrorTarget(.field, "profile"))
        }
        guard let reference = spec.crkID, !reference.isEmpty else {
            throw KeyRelayError(.invalidField, "The field 'profile_data.crk_id' must be: the id of a root key (it is required for profile \(KMIPAdapter.nativeProfile))",
                                operation: op, target: ErrorTarget(.field, "profile_data.crk_id"))
        }
        if let name = spec.name { try KMIPNames.validate(name, operation: op) }
        try KMIPNames.validateDescription(spec.description, operation: op)
        let now = now()
        let id = ids.next()
        return try await storage.write { [self] tx in
            let key = effective(try Self.resolve(reference, in: tx, context: context, operation: op), at: now)
            guard !key.extractable else {
                throw KeyRelayError(.keyRootRequired, "Requested action can only be completed with a root key: a KMIP adapter needs a root key, '\(key.id)' is a standard key",
                                    operation: op, target: ErrorTarget(.field, "profile_data.crk_id"))
            }
            guard key.state == .active else {
                throw KeyRelayError(.keyInvalidState, "Key is not in a valid state: a KMIP adapter needs an active root key, '\(key.id)' is \(key.state)",
                                    operation: op)
            }
            if key.expirationDate != nil, !allowExpiringKey {
                throw KeyRelayError(.invalidField, "The field 'profile_data.crk_id' must be: a root key without an expiration date (pass allowExpiringKey=true to use a key that expires)",
                                    operation: op, target: ErrorTarget(.field, "profile_data.crk_id"))
            }
            let name = spec.name ?? id
            guard try tx.kmipAdapter(name: name, instanceID: context.instanceID) == nil else {
                throw KeyRelayError(.kmipNameNotUnique, "A KMIP adapter named '\(name)' already exists in this instance", operation: op,
                                    target: ErrorTarget(.field, "name"))
            }
            let adapter = KMIPAdapter(id: id, instanceID: context.instanceID, name: name, description: spec.description,
                                      crkID: key.id, createdAt: now, createdBy: context.principal)
            try tx.insertKMIPAdapter(adapter)
            return adapter
        }
    }

    /// A page of the instance's adapters (only those on root key `crkID` when given; only those whose key is in the
    /// context's key ring when it names one). `limit` is 1–200.
    public func kmipAdapters(crkID: String? = nil, limit: Int = 100, offset: Int = 0, context: RequestContext) async throws -> Page<KMIPAdapter> {
        try context.check()
        try Self.validatePaging(limit: limit, offset: offset, maximum: KMIPLimits.maxListLimit, operation: "KMIP adapters could not be retrieved")
        return try await storage.read { tx in
            Page(items: try tx.kmipAdapters(instanceID: context.instanceID, crkID: crkID, keyRingID: context.keyRingID, limit: limit, offset: offset),
                 total: try tx.countKMIPAdapters(instanceID: context.instanceID, crkID: crkID, keyRingID: context.keyRingID))
        }
    }

    /// One adapter, by id or name.
    public func kmipAdapter(_ reference: String, context: RequestContext) async throws -> KMIPAdapter {
        try context.check()
        return try await storage.read { tx in try Self.resolveAdapter(reference, in: tx, context: context, operation: "KMIP adapter could not be retrieved") }
    }

    /// Deletes an adapter, by id or name, with its client certificates and objects.
    public func deleteKMIPAdapter(_ reference: String, context: RequestContext) async throws {
        try context.check()
        try await storage.write { tx in
            let adapter = try Self.resolveAdapter(reference, in: tx, context: context, operation: "KMIP adapter could not be deleted")
            _ = try tx.deleteKMIPAdapter(id: adapter.id)
        }
    }

    // MARK: Client certificates

    /// Adds a client certificate (one PEM X.509 certificate, not expired) to an adapter.
    public func addKMIPClientCertificate(_ pem: String, name: String? = nil, adapter reference: String,
                                         context: RequestContext) async throws -> KMIPClientCertificate {
        try context.check()
        let op = "KMIP client certificate could not be added"
        if let name { try KMIPNames.validate(name, operation: op) }
        let now = now()
        try Self.validateClientCertificate(pem, at: now, operation: op)
        let id = ids.next()
        return try await storage.write { tx in
            let adapter = try Self.resolveAdapter(reference, in: tx, context: context, operation: op)
            let name = name ?? id
            guard try tx.kmipClientCertificate(name: name, adapterID: adapter.id) == nil else {
                throw KeyRelayError(.kmipNameNotUnique, "The KMIP adapter '\(adapter.name)' already has a client certificate named '\(name)'",
                                    operation: op, target: ErrorTarget(.field, "name"))
            }
            guard try tx.countKMIPClientCertificates(adapterID: adapter.id) < KMIPLimits.maxCertificatesPerAdapter else {
                throw KeyRelayError(.kmipCertificateQuotaExceeded, "A KMIP adapter can have at most \(KMIPLimits.maxCertificatesPerAdapter) client certificates",
                                    operation: op)
            }
            let certificate = KMIPClientCertificate(id: id, adapterID: adapter.id, name: name, certificate: pem, createdAt: now,
                                                    createdBy: context.principal)
            try tx.insertKMIPClientCertificate(certificate)
            return certificate
        }
    }

    /// A page of an adapter's client certificates. `limit` is 1–200.
    public func kmipClientCertificates(adapter reference: String, limit: Int = 100, offset: Int = 0,
                                       context: RequestContext) async throws -> Page<KMIPClientCertificate> {
        try context.check()
        let op = "KMIP client certificates could not be retrieved"
        try Self.validatePaging(limit: limit, offset: offset, maximum: KMIPLimits.maxListLimit, operation: op)
        return try await storage.read { tx in
            let adapter = try Self.resolveAdapter(reference, in: tx, context: context, operation: op)
            return Page(items: try tx.kmipClientCertificates(adapterID: adapter.id, limit: limit, offset: offset),
                        total: try tx.countKMIPClientCertificates(adapterID: adapter.id))
        }
    }

    /// One client certificate of an adapter, by id or name.
    public func kmipClientCertificate(_ certificate: String, adapter reference: String, context: RequestContext) async throws -> KMIPClientCertificate {
        try context.check()
        let op = "KMIP client certificate could not be retrieved"
        return try await storage.read { tx in
            let adapter = try Self.resolveAdapter(reference, in: tx, context: context, operation: op)
            return try Self.resolveCertificate(certificate, of: adapter, in: tx, operation: op)
        }
    }

    /// Removes a client certificate from an adapter, by id or name.
    public func deleteKMIPClientCertificate(_ certificate: String, adapter reference: String, context: RequestContext) async throws {
        try context.check()
        let op = "KMIP client certificate could not be deleted"
        try await storage.write { tx in
            let adapter = try Self.resolveAdapter(reference, in: tx, context: context, operation: op)
            let found = try Self.resolveCertificate(certificate, of: adapter, in: tx, operation: op)
            _ = try tx.deleteKMIPClientCertificate(id: found.id)
        }
    }

    // MARK: Objects

    /// A page of an adapter's KMIP objects in `states` (by default every state but destroyed: 1–4). `limit` is
    /// 1–5000.
    public func kmipObjects(adapter reference: String, states: Set<KMIPObjectState>? = nil, limit: Int = 100, offset: Int = 0,
                            context: RequestContext) async throws -> Page<KMIPObject> {
        try context.check()
        let op = "KMIP objects could not be retrieved"
        try Self.validatePaging(limit: limit, offset: offset, maximum: KMIPLimits.maxObjectListLimit, operation: op)
        let states = states ?? KMIPObjectState.listedByDefault
        return try await storage.read { tx in
            let adapter = try Self.resolveAdapter(reference, in: tx, context: context, operation: op)
            return Page(items: try tx.kmipObjects(adapterID: adapter.id, states: states, limit: limit, offset: offset),
                        total: try tx.countKMIPObjects(adapterID: adapter.id, states: states))
        }
    }

    /// One KMIP object of an adapter.
    public func kmipObject(_ id: String, adapter reference: String, context: RequestContext) async throws -> KMIPObject {
        try context.check()
        let op = "KMIP object could not be retrieved"
        return try await storage.read { tx in
            let adapter = try Self.resolveAdapter(reference, in: tx, context: context, operation: op)
            return try Self.object(id, of: adapter, in: tx, operation: op)
        }
    }

    /// Deletes (destroys) a KMIP object: its state becomes destroyed and its material is erased. An active object
    /// needs `force`.
    @discardableResult
    public func deleteKMIPObject(_ id: String, adapter reference: String, force: Bool = false, context: RequestContext) async throws -> KMIPObject {
        try context.check()
        let op = "KMIP object could not be deleted"
        let now = now()
        return try await storage.write { tx in
            let adapter = try Self.resolveAdapter(reference, in: tx, context: context, operation: op)
            let destroyed = try Self.object(id, of: adapter, in: tx, operation: op).destroyed(at: now, by: context.principal, force: force)
            try tx.saveKMIPObject(destroyed)
            return destroyed
        }
    }

    // MARK: Rules

    /// `PROTECTED_RESOURCE_ERR` when a KMIP adapter uses `key`: a key cannot be deleted under an adapter (not even
    /// with `force`, which only overrides registrations).
    static func checkNoKMIPAdapter(_ key: Key, in tx: any StorageReader, operation: String) throws {
        let count = try tx.countKMIPAdapters(instanceID: key.instanceID, crkID: key.id, keyRingID: nil)
        guard count > 0 else { return }
        let names = try tx.kmipAdapters(instanceID: key.instanceID, crkID: key.id, keyRingID: nil, limit: 3, offset: 0).map { "'\($0.name)'" }
        throw KeyRelayError(.protectedResource, "Key is protecting one or more cloud resources: \(count) KMIP adapter(s) use it (\(names.joined(separator: ", ")))"
                            + ": delete the adapter(s) first", operation: operation)
    }

    /// One PEM X.509 certificate (`-----BEGIN CERTIFICATE-----`), parsed and not expired at `now`; otherwise
    /// `INVALID_FIELD_ERR` on `certificate`.
    static func validateClientCertificate(_ pem: String, at now: Date, operation: String) throws(KeyRelayError) {
        func invalid(_ why: String) -> KeyRelayError {
            KeyRelayError(.invalidField, "The field 'certificate' must be: a PEM encoded X.509 certificate (\(why))", operation: operation,
                          target: ErrorTarget(.field, "certificate"))
        }
        let blocks = pem.components(separatedBy: "-----BEGIN ").count - 1
        guard blocks == 1 else { throw invalid(blocks == 0 ? "no PEM block found" : "exactly one certificate per request") }
        let certificate: Certificate
        do { certificate = try Certificate(pemEncoded: pem) } catch { throw invalid("it does not parse") }
        guard certificate.notValidAfter > now else {
            throw invalid("it expired at \(Timestamp.format(certificate.notValidAfter))")
        }
    }

    /// The caller's adapter with this id or name (404 `NOT_FOUND_ERR` otherwise), checked against the context's key
    /// ring through its root key.
    static func resolveAdapter(_ reference: String, in tx: any StorageReader, context: RequestContext, operation: String) throws -> KMIPAdapter {
        // A reference containing U+0000 names nothing (no stored text can contain it, see StoredText).
        guard !StoredText.containsNUL(reference), let adapter = try tx.kmipAdapter(id: reference, instanceID: context.instanceID)
                ?? tx.kmipAdapter(name: reference, instanceID: context.instanceID) else {
            throw KeyRelayError(.notFound, "KMIP adapter does not exist: no adapter with id or name '\(reference)' in this instance", operation: operation)
        }
        if context.keyRingID != nil, let key = try tx.key(id: adapter.crkID, instanceID: context.instanceID) {
            try checkScope(key, context: context, operation: operation)
        }
        return adapter
    }

    static func resolveCertificate(_ reference: String, of adapter: KMIPAdapter, in tx: any StorageReader,
                                   operation: String) throws -> KMIPClientCertificate {
        guard !StoredText.containsNUL(reference), let certificate = try tx.kmipClientCertificate(id: reference, adapterID: adapter.id)
                ?? tx.kmipClientCertificate(name: reference, adapterID: adapter.id) else {
            throw KeyRelayError(.notFound, "KMIP client certificate does not exist: the adapter '\(adapter.name)' has no certificate with id or name '\(reference)'",
                                operation: operation)
        }
        return certificate
    }

    static func object(_ id: String, of adapter: KMIPAdapter, in tx: any StorageReader, operation: String) throws -> KMIPObject {
        guard !StoredText.containsNUL(id), let object = try tx.kmipObject(id: id, adapterID: adapter.id) else {
            throw KeyRelayError(.notFound, "KMIP object does not exist: the adapter '\(adapter.name)' has no object '\(id)'", operation: operation)
        }
        return object
    }
}
