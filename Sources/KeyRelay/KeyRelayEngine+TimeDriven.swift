import Foundation
import KeyRelayBus
import KeyRelayCore
internal import KeyRelayStore

/// What the clock does on its own, as Key Protect's service does (issue #13): rotation policies rotate keys, and
/// deleted keys are purged 90 days after deletion. Both are dispatcher work (``policyRotationWork``,
/// ``automaticPurgeWork``): `serve` performs them on the real clock, scenarios and `--manual-clock` at the exact
/// instants the clock passes, like key expiry.
extension KeyRelayEngine {
    /// The principal recorded on what the clock does: the event's principal, and `updatedBy` of a key a policy
    /// rotated or an expiry deactivated (``LifecycleRules/systemPrincipal``). `deletedBy` stays the user's.
    public static let systemPrincipal = LifecycleRules.systemPrincipal

    /// The next instant a rotation policy rotates a key, if any. A key whose policy rotation was refused at its due
    /// instant (``rotateKeysByPolicy()``) is passed over until its row changes its due instant, so one stuck key
    /// cannot hold the dispatcher at a past instant.
    public func nextPolicyRotationDate() async throws -> Date? {
        let month = configuration.lifecycle.rotationPolicyMonth
        let rules = rules
        let refused = refusedPolicyRotations
        return try await storage.read { tx in
            try tx.keysDueForPolicyRotation(at: .distantFuture, month: month, limit: refused.count + 1)
                .lazy.compactMap { key in rules.policyRotationDate(key).flatMap { refused[key.id] == $0 ? nil : $0 } }.first
        }
    }

    /// Rotates every key whose rotation policy is due now, each as its own `rotate` command (new material, a
    /// rotate event by ``systemPrincipal``, the notifications of its registrations). Returns how many rotated.
    @discardableResult
    public func rotateKeysByPolicy() async throws -> Int {
        let now = now()
        let month = configuration.lifecycle.rotationPolicyMonth
        let rules = rules
        var rotated = 0
        while true {
            let refused = refusedPolicyRotations
            let due = try await storage.read { tx in
                try tx.keysDueForPolicyRotation(at: now, month: month, limit: refused.count + 100)
            }.filter { key in rules.policyRotationDate(key).map { refused[key.id] != $0 } ?? false }
            guard !due.isEmpty else { return rotated }
            for key in due {
                do {
                    _ = try await rotate(key.id, context: RequestContext(instanceID: key.instanceID, principal: Self.systemPrincipal))
                    rotated += 1
                    logger.info("rotation policy rotated a key", metadata: ["key": "\(key.id)", "instance": "\(key.instanceID)"])
                } catch let error as KeyRelayError {
                    // Refused (the key changed since the read, or a rule refuses it): pass it over at this due
                    // instant, so the other due keys still rotate and the dispatcher does not come back for it at
                    // once. A rotation by hand or a state change moves or removes its due instant.
                    refusedPolicyRotations[key.id] = rules.policyRotationDate(key)
                    logger.warning("rotation policy could not rotate a key", metadata: [
                        "key": "\(key.id)", "instance": "\(key.instanceID)", "reason": "\(error.code.rawValue)",
                    ])
                }
            }
        }
    }

    /// The next instant a destroyed key is purged automatically, if any.
    public func nextAutomaticPurgeDate() async throws -> Date? {
        let rules = rules
        return try await storage.read { tx in
            try tx.destroyedKeys(deletedAtOrBefore: .distantFuture, limit: 1).first.flatMap(rules.automaticPurgeDate)
        }
    }

    /// Purges the keys destroyed ``LifecycleConfiguration/autoPurgeAfter`` (90 days) ago or more, with a purge event
    /// by ``systemPrincipal`` each: at most 10,000 in one transaction per call (the dispatcher calls again while some
    /// are due). Returns how many were purged.
    @discardableResult
    public func purgeKeysPastRetention() async throws -> Int {
        let now = now()
        let rules = rules
        let ids = ids
        let count = try await storage.write { tx in
            var count = 0
            for key in try tx.destroyedKeys(deletedAtOrBefore: rules.automaticPurgeCutoff(at: now), limit: 10_000) {
                _ = try Self.erase(key, by: Self.systemPrincipal, correlationID: nil, ids: ids, in: tx, at: now)
                count += 1
            }
            return count
        }
        if count > 0 { logger.info("deleted keys purged 90 days after deletion", metadata: ["count": "\(count)"]) }
        return count
    }

    /// Policy rotations as dispatcher work.
    public nonisolated var policyRotationWork: ScheduledWork {
        ScheduledWork(name: "rotation policies",
                      nextDate: { [self] in try await self.nextPolicyRotationDate() },
                      perform: { [self] _ in _ = try await self.rotateKeysByPolicy() })
    }

    /// Automatic purges as dispatcher work.
    public nonisolated var automaticPurgeWork: ScheduledWork {
        ScheduledWork(name: "automatic purge",
                      nextDate: { [self] in try await self.nextAutomaticPurgeDate() },
                      perform: { [self] _ in _ = try await self.purgeKeysPastRetention() })
    }
}
