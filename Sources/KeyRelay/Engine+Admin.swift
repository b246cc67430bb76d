import Foundation
import KeyRelayCore
internal import KeyRelayStore

extension KeyRelayEngine {
    // MARK: Key policies (not lifecycle actions: no event, no sync cooldown)

    /// Sets a key's policies. Passing `nil` leaves a policy unchanged. Dual authorization, once enabled, cannot be
    /// disabled; rotation policies need a root key.
    @discardableResult
    public func setPolicies(_ reference: String, rotation: RotationPolicy? = nil, dualAuthDelete: Bool? = nil,
                            context: RequestContext) async throws -> Key {
        try context.check()
        let op = "Key policies could not be set"
        if let rotation, !(1...12).contains(rotation.intervalMonth) {
            throw KeyRelayError(.invalidField, "The field 'interval_month' must be: an integer from 1 to 12", operation: op,
                                target: ErrorTarget(.field, "interval_month"))
        }
        return try await policyCommand(reference, context: context, operation: op) { _, key, now, _ in
            var next = key
            if let rotation {
                guard key.isRoot else {
                    throw KeyRelayError(.keyRootRequired, "Requested action can only be completed with a root key: Rotation policy cannot be set on a standard key",
                                        operation: op)
                }
                next.rotation = rotation
                next.rotationStamp = Self.stamp(key.rotationStamp, by: context.principal, at: now)
            }
            if let dualAuthDelete {
                if key.dualAuthDelete.enabled, !dualAuthDelete {
                    throw KeyRelayError(.featureRestricted,
                                        "This action is not permitted on this resource: Please contact IBM Key Protect or open a service ticket to enable this feature",
                                        operation: op, hint: "a dual authorization policy cannot be disabled once it is enabled")
                }
                next.dualAuthDelete.enabled = dualAuthDelete
                next.dualAuthStamp = Self.stamp(key.dualAuthStamp, by: context.principal, at: now)
            }
            next.lastUpdateDate = now
            next.updatedBy = context.principal
            return next
        }
    }

    static func stamp(_ existing: PolicyStamp?, by principal: String, at now: Date) -> PolicyStamp {
        PolicyStamp(createdBy: existing?.createdBy ?? principal, creationDate: existing?.creationDate ?? now,
                    updatedBy: principal, lastUpdateDate: now)
    }

    /// Sets an instance policy (affects keys created afterwards).
    public func setInstancePolicy(type: String, enabled: Bool, attributesJSON: String?, context: RequestContext) async throws {
        try context.check()
        let known = ["allowedNetwork", "dualAuthDelete", "allowedIP", "keyCreateImportAccess", "metrics", "rotation"]
        guard known.contains(type) else {
            throw KeyRelayError(.invalidQueryParam, "The query_param 'policy' must be: one of \(known.joined(separator: ", "))",
                                operation: "Instance policy could not be created", target: ErrorTarget(.queryParam, "policy"))
        }
        try Self.validateNetworkPolicy(type: type, enabled: enabled, attributesJSON: attributesJSON, operation: "Instance policy could not be created")
        let now = now()
        try await storage.write { tx in
            try tx.ensureInstance(context.instanceID, at: now)
            let existing = try tx.instancePolicies(instanceID: context.instanceID).first { $0.policyType == type }
            try tx.putInstancePolicy(InstancePolicy(policyType: type, enabled: enabled, attributesJSON: attributesJSON,
                                                    stamp: Self.stamp(existing?.stamp, by: context.principal, at: now)),
                                     instanceID: context.instanceID)
        }
    }

    /// The instance's policies.
    public func instancePolicies(context: RequestContext) async throws -> [InstancePolicy] {
        try context.check()
        return try await storage.read { tx in try tx.instancePolicies(instanceID: context.instanceID) }
    }

    // MARK: Aliases

    /// Adds an alias to a key (at most 5 per key, unique per instance).
    @discardableResult
    public func createAlias(_ alias: String, for reference: String, context: RequestContext) async throws -> AliasRecord {
        try context.check()
        try Alias.validate(alias)
        let now = now()
        let maxAliases = configuration.lifecycle.maxAliasesPerKey
        return try await storage.write { tx in
            let key = try Self.resolve(reference, in: tx, context: context, operation: "Key alias could not be created")
            if let owner = try tx.keyID(alias: alias, instanceID: context.instanceID) {
                if owner == key.id, let record = try tx.aliases(keyID: key.id).first(where: { $0.alias == alias }) { return record }
                throw KeyRelayError(.aliasNotUnique, "The alias '\(alias)' is already used by another key in this instance: aliases are unique per instance",
                                    operation: "Key alias could not be created")
            }
            guard key.aliases.count < maxAliases else {
                throw KeyRelayError(.aliasQuotaExceeded, "A key can have at most \(maxAliases) aliases: delete one first",
                                    operation: "Key alias could not be created")
            }
            let record = AliasRecord(alias: alias, keyID: key.id, creationDate: now, createdBy: context.principal)
            try tx.insertAlias(record, instanceID: context.instanceID)
            return record
        }
    }

    /// Removes an alias from a key.
    public func deleteAlias(_ alias: String, from reference: String, context: RequestContext) async throws {
        try context.check()
        try await storage.write { tx in
            let key = try Self.resolve(reference, in: tx, context: context, operation: "Key alias could not be deleted")
            guard key.aliases.contains(alias), try tx.deleteAlias(alias, instanceID: context.instanceID) else {
                throw KeyRelayError(.aliasNotFound, "The key has no alias '\(alias)'", operation: "Key alias could not be deleted")
            }
        }
    }

    // MARK: Key rings

    /// The instance's key rings, `default` first.
    public func keyRings(context: RequestContext) async throws -> [KeyRingRecord] {
        try context.check()
        return try await storage.read { tx in try tx.keyRings(instanceID: context.instanceID) }
    }

    /// A page of the instance's key rings, `default` first (Key Protect's paging bounds, ``validatePaging(limit:offset:operation:)``).
    public func keyRings(limit: Int, offset: Int, context: RequestContext) async throws -> Page<KeyRingRecord> {
        try context.check()
        try Self.validatePaging(limit: limit, offset: offset, operation: "Key rings could not be retrieved")
        let all = try await keyRings(context: context)
        return Page(items: Array(all.dropFirst(offset).prefix(limit)), total: all.count)
    }

    /// Creates a key ring (at most 50 per instance, `default` included).
    public func createKeyRing(_ id: String, context: RequestContext) async throws {
        try context.check()
        let op = "Key ring could not be created"
        guard id != KeyRing.defaultID else {
            throw KeyRelayError(.keyRingExists, "The key ring 'default' always exists and cannot be created", operation: op)
        }
        try KeyRing.validate(id)
        let now = now()
        let maxRings = configuration.lifecycle.maxKeyRingsPerInstance
        try await storage.write { tx in
            try tx.ensureInstance(context.instanceID, at: now)
            let rings = try tx.keyRings(instanceID: context.instanceID)
            guard !rings.contains(where: { $0.id == id }) else {
                throw KeyRelayError(.keyRingExists, "The key ring '\(id)' already exists in this instance", operation: op)
            }
            guard rings.count < maxRings else {
                throw KeyRelayError(.keyRingQuotaExceeded, "An instance can have at most \(maxRings) key rings", operation: op)
            }
            try tx.insertKeyRing(instanceID: context.instanceID, id: id, at: now, by: context.principal)
        }
    }

    /// Deletes a key ring. Refused while it holds a key that is not destroyed; with `force`, destroyed keys move to
    /// `default`.
    public func deleteKeyRing(_ id: String, force: Bool = false, context: RequestContext) async throws {
        try context.check()
        let op = "Key ring could not be deleted"
        guard id != KeyRing.defaultID else {
            throw KeyRelayError(.invalidField, "The key ring 'default' cannot be deleted", operation: op)
        }
        try await storage.write { tx in
            guard try tx.keyRings(instanceID: context.instanceID).contains(where: { $0.id == id }) else {
                throw KeyRelayError(.keyRingNotFound, "The key ring '\(id)' does not exist in this instance", operation: op)
            }
            let live = try tx.countKeys(instanceID: context.instanceID, keyRingID: id, excludingDestroyed: true)
            guard live == 0 else {
                throw KeyRelayError(.keyRingNotEmpty, "The key ring '\(id)' holds \(live) key(s) that are not destroyed: move or delete them first",
                                    operation: op)
            }
            let all = try tx.countKeys(instanceID: context.instanceID, keyRingID: id, excludingDestroyed: false)
            if all > 0, !force {
                throw KeyRelayError(.keyRingNotEmpty, "The key ring '\(id)' holds \(all) destroyed key(s): delete it with force=true to move them to 'default'",
                                    operation: op, target: ErrorTarget(.queryParam, "force"))
            }
            try tx.moveKeys(instanceID: context.instanceID, fromRing: id, toRing: KeyRing.defaultID)
            try tx.deleteKeyRing(instanceID: context.instanceID, id: id)
        }
    }

    /// Moves a key to another ring. A context scoped to a ring (``RequestContext/keyRingID``, the `X-Kms-Key-Ring`
    /// of Key Protect's PATCH) must name the key's *current* ring.
    @discardableResult
    public func moveKey(_ reference: String, toRing target: String, context: RequestContext) async throws -> Key {
        try context.check()
        let op = "Key could not be patched"
        return try await policyCommand(reference, context: context, operation: op) { _, key, now, tx in
            guard try tx.keyRings(instanceID: context.instanceID).contains(where: { $0.id == target }) else {
                throw KeyRelayError(.keyRingNotFound, "The key ring '\(target)' does not exist in this instance: create it first",
                                    operation: op, target: ErrorTarget(.field, "keyRingID"))
            }
            var next = key
            next.keyRingID = target
            next.lastUpdateDate = now
            next.updatedBy = context.principal
            return next
        }
    }
}
