import ArgumentParser
import Foundation
import KeyRelay

/// `keyrelay status`: keys, drift, pending and dead notifications.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Keys, drifted registrations, and notifications by status.")
    @OptionGroup var options: DatabaseOptions

    struct KeyStatus: Codable {
        var id: String
        var name: String
        var state: String
        var versions: Int
        var registrations: Int
        var drifted: Int
        var pending: Int
        var sent: Int
        var acknowledged: Int
        var dead: Int
    }

    /// A lifecycle action that did not complete at a resource (408 / 409).
    struct Incomplete: Codable {
        var reason: Int
        var keyId: String
        var event: String
        var resourceCrn: String
        var error: String?
    }

    struct Summary: Codable {
        var instance: String
        var keys: [KeyStatus]
        var drifted: Int
        var pending: Int
        var sent: Int
        var acknowledged: Int
        var dead: Int
        /// Notifications whose action did not complete, and the most recent of them.
        var didNotComplete: Int
        var recentlyIncomplete: [Incomplete]
    }

    func run() async throws {
        try await reportingErrors(json: options.json) {
            let engine = try await options.engine()
            let context = options.context
            // A page of keys with their counts and drift at a time: a few statements per page, none per key.
            var query = KeyQuery()
            query.states = [.active, .suspended, .deactivated, .destroyed]
            query.limit = 1000
            var rows: [KeyStatus] = []
            while true {
                let page = try await engine.keyOverviews(query, context: context)
                rows += page.items.map { overview in
                    KeyStatus(id: overview.key.id, name: overview.key.name, state: overview.key.state.description,
                              versions: overview.key.versionCount, registrations: overview.registrations.total,
                              drifted: overview.drifted, pending: overview.deliveries.pending, sent: overview.deliveries.sent,
                              acknowledged: overview.deliveries.acknowledged, dead: overview.deliveries.dead)
                }
                guard page.items.count == query.limit else { break }
                query.offset += query.limit
            }
            let totals = try await engine.deliveryCounts(instanceID: context.instanceID)
            let incomplete = try await engine.incompleteActions(limit: 5, context: context)
            let summary = Summary(instance: context.instanceID, keys: rows, drifted: rows.reduce(0) { $0 + $1.drifted },
                                  pending: totals.pending, sent: totals.sent, acknowledged: totals.acknowledged, dead: totals.dead,
                                  didNotComplete: incomplete.total,
                                  recentlyIncomplete: incomplete.recent.map {
                                      Incomplete(reason: $0.incomplete?.rawValue ?? 0, keyId: $0.event.keyID,
                                                 event: "\($0.event.kind.rawValue) (\($0.event.id))", resourceCrn: $0.resourceCRN, error: $0.lastError)
                                  })
            if options.json {
                print(CLIJSON.encode(summary))
                return
            }
            print("instance \(summary.instance): \(rows.count) key(s), \(summary.drifted) drifted registration(s)")
            print("notifications: \(summary.pending) pending, \(summary.sent) sent, \(summary.acknowledged) acknowledged, \(summary.dead) dead")
            if summary.didNotComplete > 0 {
                let by = IncompleteReason.allCases.compactMap { reason in incomplete.counts[reason].map { "\($0) × \(reason.rawValue)" } }
                print("\(IncompleteReason.summary): \(summary.didNotComplete) (\(by.joined(separator: ", "))); the latest:")
                for item in summary.recentlyIncomplete {
                    print("  \(item.reason) key \(item.keyId) \(item.event) at \(item.resourceCrn)")
                }
            }
            if !rows.isEmpty {
                print("")
                printTable(["ID", "NAME", "STATE", "VERSIONS", "RESOURCES", "DRIFTED", "PENDING", "DEAD"],
                           rows.map { [$0.id, $0.name, $0.state, String($0.versions), String($0.registrations), String($0.drifted),
                                       String($0.pending), String($0.dead)] })
            }
            if summary.pending > 0 {
                print("")
                print("pending notifications reach the simulated services with `keyrelay deliver`")
            }
            if summary.drifted > 0 {
                print("")
                print("drifted registrations have not honoured their key's state: `keyrelay key sync <key>` re-notifies them "
                      + "(accepted more than an hour after the key's last action or sync), then `keyrelay deliver`")
            }
        }
    }
}
