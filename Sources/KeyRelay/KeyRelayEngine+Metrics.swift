import Foundation
import KeyRelayCore
internal import KeyRelayStore
import Metrics

/// What an operator's dashboard reads of the engine: lifecycle commands counted as they happen (swift-metrics, in
/// whatever backend the process bootstrapped; a no-op by default), and gauges read from the store on demand.
extension KeyRelayEngine {
    /// One command's transaction, counted in `keyrelay_lifecycle_commands_total{action, outcome}`: outcome
    /// `accepted`, or the reason code that refused it (`REQ_TOO_EARLY_ERR`, `KEY_ACTION_INVALID_ERR`, …), or `error`
    /// for a failure that is not a rule's (the store's). Errors thrown before the transaction (a malformed body)
    /// are the edge's and are counted by the HTTP metrics, not here.
    nonisolated func countedWrite<T: Sendable>(_ action: String,
                                               _ command: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T {
        do {
            let result = try await storage.write(command)
            Self.countCommand(action, outcome: "accepted")
            return result
        } catch {
            Self.countCommand(action, refusedBy: error)
            throw error
        }
    }

    static func countCommand(_ action: String, outcome: String) {
        Counter(label: "keyrelay_lifecycle_commands_total", dimensions: [("action", action), ("outcome", outcome)]).increment()
    }

    /// Counts a command that `error` ended: its reason code, or `error` for a failure that is not a rule's.
    static func countCommand(_ action: String, refusedBy error: any Error) {
        countCommand(action, outcome: (error as? KeyRelayError)?.code.rawValue ?? "error")
    }

    /// Notifications by status and drifted registrations by instance, read from the store now (a scrape of
    /// `/metrics` calls this). Drift is what `keyrelay status` shows: registrations whose last acknowledged state
    /// differs from their key's current state; at most `driftLimit` are counted per instance.
    public func operationalSnapshot(driftLimit: Int = 100_000) async throws -> OperationalSnapshot {
        let notifications = try await deliveryCounts()
        let instances = try await storage.read { tx in try tx.instanceIDs() }
        var drifted: [String: Int] = [:]
        for instance in instances {
            drifted[instance] = try await drift(limit: driftLimit, context: RequestContext(instanceID: instance, principal: "metrics")).count
        }
        return OperationalSnapshot(notifications: notifications, driftedRegistrations: drifted)
    }
}

/// The engine's gauges at one moment (``KeyRelayEngine/operationalSnapshot(driftLimit:)``).
public struct OperationalSnapshot: Sendable, Equatable {
    /// Notifications of every instance by status.
    public var notifications: DeliveryCounts
    /// Drifted registrations by instance id.
    public var driftedRegistrations: [String: Int]
}

extension KeyRelayEngine {
    /// Whether the store answers a trivial read now (`GET /ready`).
    public nonisolated func isStoreReachable() async -> Bool {
        do {
            _ = try await storage.read { tx in try tx.latestEventSequence() }
            return true
        } catch {
            return false
        }
    }
}
