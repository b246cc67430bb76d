import Foundation
import KeyRelayBus
import KeyRelayCore
internal import KeyRelayStore

/// What the clock does on its own, as Key Protect's service does (issue #13): rotation policies rotate keys, and
/// deleted keys are purged 90 days after deletion. Both are dispatcher work (``policyRotationWork``,
/// ``automaticPurgeWork``): `serve` performs them on the real clock, scenarios and `--manual-clock` at the exact
/// instants the clock passes, like key expiry.
extension KeyRelayEngine {
    /// The principal recorded on what the clock does (events, `updatedBy`, `deletedBy` stay the user's).
    public static let systemPrincipal = "system"

    /// The next instant a rotation policy rotates a key, if any.
    public func nextPolicyRotationDate() async throws -> Date? {
        let month = configuration.lifecycle.rotationPolicyMonth
        let rules = rules
        return try await storage.read { tx in
            try tx.keysDueForPolicyRotation(at: .distantFuture, month: month, limit: 1).first.flatMap(rules.policyRotationDate)
        }
    }

    /// Rotates every key whose rotation policy is due now, each as its own `rotate` command (new material, a
    /// rotate event by ``systemPrincipal``, the notifications of its registrations). Returns how many rotated.
    @discardableResult
    public func rotateKeysByPolicy() async throws -> Int {
        let now = now()
        let month = configuration.lifecycle.rotationPolicyMonth
        var rotated = 0
        while true {
            let due = try await storage.read { tx in try tx.keysDueForPolicyRotation(at: now, month: month, limit: 100) }
            guard !due.isEmpty else { return rotated }
            for key in due {
                do {
                    _ = try await rotate(key.id, context: RequestContext(instanceID: key.instanceID, principal: Self.systemPrincipal))
                    rotated += 1
                    logger.info("rotation policy rotated a key", metadata: ["key": "\(key.id)", "instance": "\(key.instanceID)"])
                } catch let error as KeyRelayError {
                    // The key changed between the read and its command (disabled, rotated by hand): a rotation by
                    // hand moves its next policy rotation, a state change removes it from the due set.
                    logger.warning("rotation policy could not rotate a key", metadata: [
                        "key": "\(key.id)", "instance": "\(key.instanceID)", "reason": "\(error.code.rawValue)",
                    ])
                    return rotated
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

    /// Purges every key destroyed ``LifecycleConfiguration/autoPurgeAfter`` (90 days) ago or more, with a purge
    /// event by ``systemPrincipal`` each, in one transaction. Returns how many were purged.
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
