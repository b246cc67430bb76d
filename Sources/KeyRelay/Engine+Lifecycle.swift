import Crypto
import Foundation
import KeyRelayCore
internal import KeyRelayStore

/// What a new key should be.
public struct KeySpec: Sendable, Equatable {
    public var name: String
    public var description: String?
    public var tags: [String]
    public var aliases: [String]
    /// `false` (default) for a root key, `true` for a standard key.
    public var extractable: Bool
    /// Key material to import (16, 24 or 32 bytes for a root key); `nil` to generate it.
    public var payload: Data?
    /// Key material to import securely, encrypted to the instance's import token (instead of `payload`).
    public var encryptedPayload: EncryptedKeyMaterial?
    public var expirationDate: Date?
    /// The key ring; a context scoped to a ring (``RequestContext/keyRingID``) creates the key there.
    public var keyRingID: String
    /// Per-key policy overrides (create with policy overrides).
    public var dualAuthDelete: Bool?
    public var rotation: RotationPolicy?

    public init(name: String, description: String? = nil, tags: [String] = [], aliases: [String] = [],
                extractable: Bool = false, payload: Data? = nil, expirationDate: Date? = nil,
                keyRingID: String = KeyRing.defaultID, dualAuthDelete: Bool? = nil, rotation: RotationPolicy? = nil) {
        self.name = name
        self.description = description
        self.tags = tags
        self.aliases = aliases
        self.extractable = extractable
        self.payload = payload
        self.expirationDate = expirationDate
        self.keyRingID = keyRingID
        self.dualAuthDelete = dualAuthDelete
        self.rotation = rotation
    }
}

/// The outcome of an accepted sync.
public struct SyncReceipt: Sendable, Equatable {
    /// The sync event re-emitted to every registration.
    public var event: LifecycleEvent
    /// How many notifications it wrote (one per registered resource).
    public var notifications: Int
}

extension KeyRelayEngine {
    static let maxStandardPayload = 7168
    /// Key Protect's `BAD_BODY_ERR` message.
    public static let badBodyMessage = "Invalid body data was passed: Please ensure the data passed had valid formatting with no invalid characters"

    // MARK: Create

    /// Creates a root key (default) or a standard key, generated or imported. Emits a `create` event (creation does
    /// not start the sync cooldown).
    public func createKey(_ spec: KeySpec, context: RequestContext) async throws -> Key {
        try context.check()
        return try await logged(LifecycleEventKind.create.rawValue, nil, context: context, keyID: { $0.id }) {
            try await makeKey(spec, context: context)
        }
    }

    /// Nonisolated (issue #16): validating the spec, drawing the ids, generating and sealing the material run on the
    /// caller's thread, not on the engine actor every command passes through; only opening an import-token
    /// payload needs the actor (the tokens are its state).
    private nonisolated func makeKey(_ spec: KeySpec, context: RequestContext) async throws -> Key {
        let op = "Key could not be created"
        var resolved = spec
        resolved.keyRingID = try Self.ringForNewKey(spec, context: context)
        if let encrypted = spec.encryptedPayload {
            guard spec.payload == nil else {
                throw KeyRelayError(.badBody, Self.badBodyMessage, operation: op,
                                    hint: "give the key material either in clear or encrypted to an import token, not both")
            }
            resolved.payload = try await openImportedMaterial(encrypted, instanceID: context.instanceID, operation: op)
            resolved.encryptedPayload = nil
        }
        let spec = resolved
        try Self.validate(spec, now: now())
        let now = now()
        let keyID = ids.next()
        let versionID = ids.next()
        let eventID = ids.next()
        let material: Data
        if let payload = spec.payload {
            material = payload
        } else {
            material = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        }
        let sealed = try vault.seal(material, keyID: keyID, versionID: versionID)
        let rules = rules
        let maxAliases = configuration.lifecycle.maxAliasesPerKey
        return try await countedWrite("create") { tx in
            try tx.ensureInstance(context.instanceID, at: now)
            if spec.keyRingID != KeyRing.defaultID,
               try !tx.keyRings(instanceID: context.instanceID).contains(where: { $0.id == spec.keyRingID }) {
                throw KeyRelayError(.keyRingNotFound, "The key ring '\(spec.keyRingID)' does not exist in this instance: create it first or create the key in another ring",
                                    operation: "Key could not be created")
            }
            let policies = try tx.instancePolicies(instanceID: context.instanceID)
            try Self.checkCreateImportAccess(policies, spec: spec)
            guard spec.aliases.count <= maxAliases else {
                throw KeyRelayError(.aliasQuotaExceeded, "A key can have at most \(maxAliases) aliases", operation: "Key could not be created",
                                    target: ErrorTarget(.field, "aliases"))
            }
            for alias in spec.aliases where try tx.keyID(alias: alias, instanceID: context.instanceID) != nil {
                throw KeyRelayError(.aliasNotUnique, "The alias '\(alias)' is already used by another key in this instance: aliases are unique per instance",
                                    operation: "Key could not be created", target: ErrorTarget(.field, "aliases"))
            }
            let version = KeyVersion(id: versionID, creationDate: now)
            let instanceDualAuth = policies.first { $0.policyType == "dualAuthDelete" }?.enabled ?? false
            var key = Key(id: keyID, instanceID: context.instanceID, name: spec.name, description: spec.description,
                          tags: spec.tags, aliases: spec.aliases, keyRingID: spec.keyRingID, extractable: spec.extractable,
                          imported: spec.payload != nil, creationDate: now, createdBy: context.principal,
                          expirationDate: spec.expirationDate, currentVersion: version,
                          dualAuthDelete: DualAuthDelete(enabled: spec.dualAuthDelete ?? instanceDualAuth),
                          rotation: rules.rotationPolicy(forNewKey: spec.rotation, extractable: spec.extractable,
                                                         instancePolicy: Self.instanceRotationPolicy(policies)))
            if key.dualAuthDelete.enabled {
                key.dualAuthStamp = PolicyStamp(createdBy: context.principal, creationDate: now, updatedBy: context.principal, lastUpdateDate: now)
            }
            if key.rotation != nil {
                key.rotationStamp = PolicyStamp(createdBy: context.principal, creationDate: now, updatedBy: context.principal, lastUpdateDate: now)
            }
            let event = key.recordEvent(.create, id: eventID, at: now, by: context.principal, correlationID: context.correlationID)
            try tx.insertKey(key)
            try tx.insertVersion(keyID: keyID, version: version, ordinal: 1, sealedMaterial: sealed)
            for alias in spec.aliases {
                try tx.insertAlias(AliasRecord(alias: alias, keyID: keyID, creationDate: now, createdBy: context.principal),
                                   instanceID: context.instanceID)
            }
            try Self.emit(event, in: tx, at: now)
            return key
        }
    }

    static func validate(_ spec: KeySpec, now: Date) throws(KeyRelayError) {
        let op = "Key could not be created"
        try StoredText.check(spec.name, field: "name", operation: op)
        try StoredText.check(spec.description, field: "description", operation: op)
        try StoredText.check(spec.tags, field: "tags", operation: op)
        guard (2...90).contains(spec.name.count), !spec.name.contains(where: \.isNewline) else {
            throw KeyRelayError(.invalidField, "The field 'name' must be: 2 to 90 characters on one line", operation: op,
                                target: ErrorTarget(.field, "name"))
        }
        if let description = spec.description, description.count > 240 {
            throw KeyRelayError(.invalidField, "The field 'description' must be: at most 240 characters", operation: op,
                                target: ErrorTarget(.field, "description"))
        }
        guard spec.tags.count <= 30, spec.tags.allSatisfy({ (1...30).contains($0.count) }) else {
            throw KeyRelayError(.invalidField, "The field 'tags' must be: at most 30 tags of 1 to 30 characters", operation: op,
                                target: ErrorTarget(.field, "tags"))
        }
        for alias in spec.aliases { try Alias.validate(alias) }
        guard Set(spec.aliases).count == spec.aliases.count else {
            throw KeyRelayError(.invalidField, "The field 'aliases' must be: distinct aliases", operation: op, target: ErrorTarget(.field, "aliases"))
        }
        if spec.keyRingID != KeyRing.defaultID { try KeyRing.validate(spec.keyRingID) }
        if let expiry = spec.expirationDate, expiry <= now {
            throw KeyRelayError(.invalidField, "The field 'expirationDate' must be: a date in the future (got \(Timestamp.format(expiry)))",
                                operation: op, target: ErrorTarget(.field, "expirationDate"))
        }
        if let payload = spec.payload {
            if spec.extractable {
                guard (1...maxStandardPayload).contains(payload.count) else {
                    throw KeyRelayError(.invalidField, "The field 'payload' must be: base64-encoded key material of 1 to \(maxStandardPayload) bytes",
                                        operation: op, target: ErrorTarget(.field, "payload"))
                }
            } else {
                guard [16, 24, 32].contains(payload.count) else {
                    throw KeyRelayError(.invalidField, "The field 'payload' must be: base64-encoded key material of 16, 24 or 32 bytes for a root key (got \(payload.count) bytes)",
                                        operation: op, target: ErrorTarget(.field, "payload"))
                }
            }
        }
        if let rotation = spec.rotation {
            guard !spec.extractable else {
                throw KeyRelayError(.keyRootRequired, "Requested action can only be completed with a root key: Rotation policy cannot be set on a standard key",
                                    operation: op)
            }
            guard (1...12).contains(rotation.intervalMonth) else {
                throw KeyRelayError(.invalidField, "The field 'interval_month' must be: an integer from 1 to 12", operation: op,
                                    target: ErrorTarget(.field, "interval_month"))
            }
        }
    }

    /// The instance's `rotation` policy as a key rotation policy (`policy_data.attributes.interval_month`), if set.
    static func instanceRotationPolicy(_ policies: [InstancePolicy]) -> RotationPolicy? {
        guard let policy = policies.first(where: { $0.policyType == "rotation" }) else { return nil }
        let attributes = Self.attributes(policy.attributesJSON)
        guard let months = attributes["interval_month"] as? Int else { return nil }
        return RotationPolicy(enabled: policy.enabled, intervalMonth: months)
    }

    /// Enforces a `keyCreateImportAccess` instance policy, if one is enabled.
    static func checkCreateImportAccess(_ policies: [InstancePolicy], spec: KeySpec) throws(KeyRelayError) {
        guard let policy = policies.first(where: { $0.policyType == "keyCreateImportAccess" }), policy.enabled else { return }
        let attributes = Self.attributes(policy.attributesJSON)
        let attribute = switch (spec.extractable, spec.payload != nil) {
        case (false, false): "create_root_key"
        case (true, false): "create_standard_key"
        case (false, true): "import_root_key"
        case (true, true): "import_standard_key"
        }
        if let allowed = attributes[attribute] as? Bool, !allowed {
            throw KeyRelayError(.keyCreateImportAccess, "KeyCreateImportAccess instance policy does not allow this action",
                                operation: "Key could not be created", hint: "the policy's '\(attribute)' is false")
        }
    }

    // MARK: Lifecycle actions

    /// Rotates a root key: a new version with new material. Imported keys must supply `payload`, in clear or
    /// (`encryptedPayload`) encrypted to the instance's import token.
    ///
    /// Nonisolated (issue #16): the new material is generated and sealed on the caller's thread, not on the engine
    /// actor; opening an import-token payload and the command itself run on the actor as before.
    @discardableResult
    public nonisolated func rotate(_ reference: String, payload: Data? = nil, encryptedPayload: EncryptedKeyMaterial? = nil,
                                   context: RequestContext) async throws -> Key {
        try context.check()
        var payload = payload
        if let encryptedPayload {
            guard payload == nil else {
                throw KeyRelayError(.badBody, Self.badBodyMessage, operation: KeyAction.rotate.operation,
                                    hint: "give the key material either in clear or encrypted to an import token, not both")
            }
            payload = try await openImportedMaterial(encryptedPayload, instanceID: context.instanceID, operation: KeyAction.rotate.operation)
        }
        let versionID = ids.next()
        let vault = vault
        let rules = rules
        // The new material is generated and sealed before the transaction, not on the store's single writer: the
        // seal binds the key id, and a reference is nearly always the id itself (an alias is resolved in the
        // transaction, and the material sealed again there for the id it names).
        let material = payload ?? SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        let presealed = try vault.seal(material, keyID: reference, versionID: versionID)
        return try await lifecycleCommand(reference, context: context, kind: .rotate, operation: KeyAction.rotate.operation) { [payload] key, now, tx in
            if let payload, key.imported, !(payload.count == 16 || payload.count == 24 || payload.count == 32) {
                throw KeyRelayError(.invalidField, "The field 'payload' must be: base64-encoded key material of 16, 24 or 32 bytes",
                                    operation: KeyAction.rotate.operation, target: ErrorTarget(.field, "payload"))
            }
            let version = KeyVersion(id: versionID, creationDate: now)
            let next = try rules.rotate(key, at: now, newVersion: version, payloadSupplied: payload != nil, by: context.principal)
            let sealed = key.id == reference ? presealed : try vault.seal(material, keyID: key.id, versionID: versionID)
            try tx.insertVersion(keyID: key.id, version: version, ordinal: next.versionCount, sealedMaterial: sealed)
            return next
        }
    }

    /// Disables an active key (→ suspended).
    @discardableResult
    public func disable(_ reference: String, context: RequestContext) async throws -> Key {
        try context.check()
        let rules = rules
        return try await lifecycleCommand(reference, context: context, kind: .disable, operation: KeyAction.disable.operation) { key, now, _ in
            try rules.disable(key, at: now, by: context.principal)
        }
    }

    /// Enables a suspended key (→ active), not within 30 s of its last action.
    @discardableResult
    public func enable(_ reference: String, context: RequestContext) async throws -> Key {
        try context.check()
        let rules = rules
        return try await lifecycleCommand(reference, context: context, kind: .enable, operation: KeyAction.enable.operation) { key, now, _ in
            try rules.enable(key, at: now, by: context.principal)
        }
    }

    /// Deletes a key (→ destroyed). Registrations that protect it block it unless `force`; one with
    /// `preventKeyDeletion` blocks it even with `force`. A forced delete ends the protection of every registration
    /// (``Registration/protectionEndedAt``): a restored key then deletes without `force`, until a service registers
    /// again. The registrations stay listed, and sync still reaches them. A KMIP adapter on the key blocks it even
    /// with `force`: delete the adapter first. A service caller may not delete keys (403 `RESOURCE_OWNER_ERR`).
    @discardableResult
    public func delete(_ reference: String, force: Bool = false, context: RequestContext) async throws -> Key {
        try context.check()
        guard !context.isService else {
            throw KeyRelayError(.resourceOwner, "The resource(s) queried does not belong to the service",
                                operation: KeyAction.delete.operation, hint: "an associated service cannot delete keys; a user deletes them")
        }
        let rules = rules
        return try await lifecycleCommand(reference, context: context, kind: .delete, operation: KeyAction.delete.operation) { key, now, tx in
            let summary = try tx.registrationSummary(keyID: key.id)
            let next = try rules.delete(key, at: now, by: context.principal, force: force, registrations: summary)
            try Self.checkNoKMIPAdapter(key, in: tx, operation: KeyAction.delete.operation)
            if summary.count > 0 { _ = try tx.endRegistrationProtection(keyID: key.id, at: now) }
            return next
        }
    }

    /// Restores a destroyed key (→ active) within 30 days of deletion.
    @discardableResult
    public func restore(_ reference: String, context: RequestContext) async throws -> Key {
        try context.check()
        let rules = rules
        return try await lifecycleCommand(reference, context: context, kind: .restore, operation: KeyAction.restore.operation) { key, now, _ in
            try rules.restore(key, at: now, by: context.principal)
        }
    }

    /// Purges a destroyed key 4 h or more after deletion: its material, aliases and registrations are erased and
    /// every later call answers `KEY_NOT_FOUND_ERR`. Returns the key as it was just before.
    @discardableResult
    public func purge(_ reference: String, context: RequestContext) async throws -> Key {
        try context.check()
        let now = now()
        let rules = rules
        let ids = ids
        return try await logged(LifecycleEventKind.purge.rawValue, reference, context: context, keyID: { $0.id }) {
            try await countedWrite("purge") { tx in
                let key = try Self.resolve(reference, in: tx, context: context, operation: KeyAction.purge.operation)
                try rules.checkPurge(key, at: now)
                return try Self.erase(key, by: context.principal, correlationID: context.correlationID, ids: ids, in: tx, at: now)
            }
        }
    }

    /// Dual authorization: the first principal authorizes deletion (valid 7 days).
    @discardableResult
    public func setKeyForDeletion(_ reference: String, context: RequestContext) async throws -> Key {
        try context.check()
        return try await logged("setKeyForDeletion", reference, context: context, keyID: { $0.id }) {
            try await policyCommand(reference, context: context, operation: KeyAction.setKeyForDeletion.operation) { rules, key, now, _ in
                try rules.setForDeletion(key, at: now, by: context.principal)
            }
        }
    }

    /// Dual authorization: cancel a pending authorization.
    @discardableResult
    public func unsetKeyForDeletion(_ reference: String, context: RequestContext) async throws -> Key {
        try context.check()
        return try await logged("unsetKeyForDeletion", reference, context: context, keyID: { $0.id }) {
            try await policyCommand(reference, context: context, operation: KeyAction.unsetKeyForDeletion.operation) { rules, key, now, _ in
                try rules.unsetForDeletion(key, at: now, by: context.principal)
            }
        }
    }

    /// Sync: re-notifies every registered resource of the key's current state and version. Accepted only when
    /// strictly more than the cooldown (1 h) has passed since the later of the last lifecycle action and the last
    /// accepted sync; otherwise `REQ_TOO_EARLY_ERR` with the earliest accepted time in
    /// ``KeyRelayError/earliestAllowed`` (and in its message), and nothing changes.
    ///
    /// ```swift
    /// do { try await engine.sync(keyID, context: ctx) }
    /// catch let error as KeyRelayError where error.code == .requestTooEarly { retry(at: error.earliestAllowed) }
    /// ```
    @discardableResult
    public func sync(_ reference: String, context: RequestContext) async throws -> SyncReceipt {
        try context.check()
        let now = now()
        let rules = rules
        let ids = ids
        return try await logged(LifecycleEventKind.sync.rawValue, reference, context: context, keyID: { $0.event.keyID }) {
            try await refuseFromARead(reference, context: context, at: now)
            return try await countedWrite("sync") { tx in
                var key = try Self.resolve(reference, in: tx, context: context, operation: KeyAction.sync.operation)
                key = try Self.applyExpiry(key, rules: rules, ids: ids, in: tx, at: now)
                var next = try rules.sync(key, at: now, by: context.principal)
                let event = next.recordEvent(.sync, id: ids.next(), at: now, by: context.principal, correlationID: context.correlationID)
                try tx.updateKey(next)
                var stored = event
                stored.sequence = try tx.appendEvent(event)
                let count = try tx.fanOut(eventSequence: stored.sequence, keyID: key.id, dueAt: now)
                return SyncReceipt(event: stored, notifications: count)
            }
        }
    }

    /// A refused sync changes nothing, so it is answered from a read: a client retrying `sync` in a loop gets its
    /// 409s without taking the store's writer (on SQLite, without queueing behind, or holding up, every other
    /// command's commit; on PostgreSQL, without a row lock on the key). Only a key the refusal is certain for is
    /// answered here: one with no expiry due (expiring it is a write) that the same rule refuses. Anything else —
    /// an accepted sync, a key that must expire first — goes on to the write transaction, which resolves the key and
    /// applies the rule again, so what is accepted is decided there alone. A refusal read from a snapshot that a
    /// concurrent command then changes is the answer of a sync ordered before that command: a key's sync anchor only
    /// moves forward, so no later state could have accepted it.
    nonisolated func refuseFromARead(_ reference: String, context: RequestContext, at now: Date) async throws {
        do {
            let key = try await storage.read { tx in
                try Self.resolve(reference, in: tx, context: context, operation: KeyAction.sync.operation)
            }
            guard rules.expire(key, at: now) == nil else { return }
            _ = try rules.sync(key, at: now, by: context.principal)
        } catch {
            // Counted as the write would have counted it (`keyrelay_lifecycle_commands_total`).
            Self.countCommand("sync", refusedBy: error)
            throw error
        }
    }

    /// A change that is not a lifecycle action (policies, dual-auth authorization): no event, no cooldown.
    func policyCommand(_ reference: String, context: RequestContext, operation: String,
                       _ transform: @escaping @Sendable (LifecycleRules, Key, Date, any StorageReader) throws -> Key) async throws -> Key {
        let now = now()
        let rules = rules
        let ids = ids
        return try await storage.write { tx in
            var key = try Self.resolve(reference, in: tx, context: context, operation: operation)
            key = try Self.applyExpiry(key, rules: rules, ids: ids, in: tx, at: now)
            let next = try transform(rules, key, now, tx)
            try tx.updateKey(next)
            return next
        }
    }

    /// Deactivates every active key whose expiration date has passed (with an `expire` event each). The bus loop and
    /// the manual clock's advance call this; returns how many keys expired.
    @discardableResult
    public func expireDueKeys() async throws -> Int {
        let now = now()
        let rules = rules
        let ids = ids
        return try await storage.write { tx in
            var count = 0
            for key in try tx.keysDueForExpiry(at: now, limit: 10_000) {
                _ = try Self.applyExpiry(key, rules: rules, ids: ids, in: tx, at: now)
                count += 1
            }
            return count
        }
    }
}
