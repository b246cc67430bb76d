import ArgumentParser
import Foundation
import KeyRelay

/// `keyrelay deliver`: hands due notifications to the simulated services of the resources the command line
/// created, which apply them (a deleted key's bucket shreds its data key) and acknowledge them.
struct DeliverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deliver", abstract: "Deliver due notifications to the simulated services, once or with --follow.",
        discussion: """
            Each round delivers every notification due now through the bus, with its retries, backoff and dead \
            letters, to the simulated COS buckets and Cloud Databases deployments created by `keyrelay resource`, \
            which acknowledge them. A resource no simulated service hosts (registered over the API) gets a failed \
            attempt naming why, retried later: webhooks are delivered by `keyrelay serve --webhook SERVICE=URL`, not by \
            this command.
            """)
    @OptionGroup var options: DatabaseOptions
    @Flag(help: "Keep delivering, a round every --interval seconds, until interrupted.") var follow = false
    @Option(help: "With --follow, seconds between rounds (0.1 to 3600).") var interval: Double = 1

    func validate() throws {
        guard (0.1...3600).contains(interval) else { throw ValidationError("--interval must be from 0.1 to 3600 seconds") }
    }

    struct Summary: Codable {
        var steps: Int
        var pending: Int
        var sent: Int
        var acknowledged: Int
        var dead: Int
    }

    func run() async throws {
        try await reportingErrors(json: options.json) {
            let engine = try await options.engine()
            let masterKey = try options.masterKey()
            while true {
                // One round under the services' lock: load their memory, deliver, save it.
                let log = try await CommandLineServices.with(engine: engine, databasePath: options.db, masterKey: masterKey) { services in
                    let dispatcher = engine.makeDispatcher(bus: services.bus())
                    try await dispatcher.drain()
                    return await dispatcher.log
                }
                let counts = try await engine.deliveryCounts(instanceID: options.instance)
                if options.json {
                    print(CLIJSON.encode(Summary(steps: log.count, pending: counts.pending, sent: counts.sent,
                                                 acknowledged: counts.acknowledged, dead: counts.dead)))
                } else if !follow || !log.isEmpty {
                    for record in log { print(record.description) }
                    print("\(log.count) delivery step(s); notifications: \(counts.pending) pending, \(counts.sent) sent, "
                          + "\(counts.acknowledged) acknowledged, \(counts.dead) dead")
                }
                fflush(nil)
                guard follow else { return }
                try await Task.sleep(for: .seconds(interval))
            }
        }
    }
}
