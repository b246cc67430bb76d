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

    struct Summary: Codable {
        var instance: String
        var keys: [KeyStatus]
        var drifted: Int
        var pending: Int
        var sent: Int
        var acknowledged: Int
        var dead: Int
    }

    func run() async throws {
        try await reportingErrors(json: options.json) {
            let engine = try await options.engine()
            let context = options.context
            var query = KeyQuery()
            query.states = [.active, .suspended, .deactivated, .destroyed]
            query.limit = 5000
            let keys = try await engine.listKeys(query, context: context).items
            var rows: [KeyStatus] = []
            for key in keys {
                let counts = try await engine.deliveryCounts(instanceID: context.instanceID, keyID: key.id)
                let registrations = try await engine.registrations(keyID: key.id, limit: 1, context: context).total
                let drift = try await engine.drift(keyID: key.id, context: context).count
                rows.append(KeyStatus(id: key.id, name: key.name, state: key.state.description, versions: key.versionCount,
                                      registrations: registrations, drifted: drift, pending: counts.pending, sent: counts.sent,
                                      acknowledged: counts.acknowledged, dead: counts.dead))
            }
            let totals = try await engine.deliveryCounts(instanceID: context.instanceID)
            let summary = Summary(instance: context.instanceID, keys: rows, drifted: rows.reduce(0) { $0 + $1.drifted },
                                  pending: totals.pending, sent: totals.sent, acknowledged: totals.acknowledged, dead: totals.dead)
            if options.json {
                print(CLIJSON.encode(summary))
                return
            }
            print("instance \(summary.instance): \(rows.count) key(s), \(summary.drifted) drifted registration(s)")
            print("notifications: \(summary.pending) pending, \(summary.sent) sent, \(summary.acknowledged) acknowledged, \(summary.dead) dead")
            if !rows.isEmpty {
                print("")
                printTable(["ID", "NAME", "STATE", "VERSIONS", "RESOURCES", "DRIFTED", "PENDING", "DEAD"],
                           rows.map { [$0.id, $0.name, $0.state, String($0.versions), String($0.registrations), String($0.drifted),
                                       String($0.pending), String($0.dead)] })
            }
            if summary.drifted > 0 {
                print("")
                print("drifted registrations have not honoured their key's state: `keyrelay key sync <key>` re-notifies them")
            }
        }
    }
}
