import ArgumentParser
import Foundation
import KeyRelay

/// `keyrelay events`: lifecycle events as CloudEvents 1.0 JSON lines.
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events", abstract: "Print lifecycle events as CloudEvents 1.0 JSON lines.",
        discussion: "Each line has id, source, specversion \"1.0\", type (com.ibm.kms.key.<kind>), subject (the key id), time, sequence and data.")
    @OptionGroup var options: DatabaseOptions
    @Option(help: "Only events after this sequence number.") var after: Int64 = 0
    @Option(help: "Only this key's events (id or alias; the id of a purged key too).") var key: String?
    @Flag(help: "Keep printing new events as they are written.") var follow = false
    @Option(help: "With --follow, seconds between looks for events another process wrote (0.1 to 3600).") var interval: Double = 1
    @Flag(help: "With --key: the key's events newest first, each with its deliveries (data.deliveries).")
    var deliveries = false

    func validate() throws {
        guard (0.1...3600).contains(interval) else { throw ValidationError("--interval must be from 0.1 to 3600 seconds") }
        guard after >= 0 else { throw ValidationError("--after must be a sequence number of 0 or more") }
        if deliveries {
            guard key != nil else { throw ValidationError("--deliveries needs --key") }
            guard !follow, after == 0 else { throw ValidationError("--deliveries lists a key's events newest first: not with --follow or --after") }
        }
    }

    func run() async throws {
        try await reportingErrors(json: options.json) {
            let engine = try await options.engine()
            if deliveries, let key {
                // Pages of events with their deliveries: two statements per page, none per event.
                var offset = 0
                while true {
                    let page = try await engine.eventsWithDeliveries(keyID: key, limit: 1000, offset: offset, context: options.context).events
                    for item in page.items {
                        var event = CloudEvent(item.event, configuration: engine.configuration)
                        event.data.deliveries = item.deliveries.map(CloudEvent.Delivery.init)
                        print(CLIJSON.encode(event))
                    }
                    offset += page.items.count
                    guard page.items.count == 1000 else { return }
                }
            }
            if follow {
                // The engine's event stream: every stored event, then each new one; another process (serve)
                // writing the database is seen every --interval. Runs until interrupted.
                for try await event in engine.eventStream(after: after, keyID: key, context: options.context,
                                                          pollInterval: .milliseconds(Int64((interval * 1000).rounded()))) {
                    print(CLIJSON.encode(CloudEvent(event, configuration: engine.configuration)))
                    fflush(nil)
                }
                return
            }
            var cursor = after
            while true {
                let events = try await engine.events(after: cursor, keyID: key, limit: 1000, context: options.context)
                for event in events {
                    print(CLIJSON.encode(CloudEvent(event, configuration: engine.configuration)))
                    cursor = max(cursor, event.sequence)
                }
                guard events.count == 1000 else { return }
            }
        }
    }
}

/// A lifecycle event in CloudEvents 1.0 structured JSON form.
struct CloudEvent: Codable {
    struct Payload: Codable {
        var keyState: String
        var keyStateCode: Int
        var keyVersion: String
        var keySequence: Int
        var principal: String
        var correlationID: String?
        /// With `--deliveries`: one per resource registered when the event happened.
        var deliveries: [Delivery]?
    }
    struct Delivery: Codable {
        var resourceCrn: String
        var status: String
        var attempts: Int
        var acknowledgedDate: Date?
        var lastError: String?
        init(_ notification: ResourceNotification) {
            resourceCrn = notification.resourceCRN
            status = notification.status.rawValue
            attempts = notification.attempts
            acknowledgedDate = notification.acknowledgedDate
            lastError = notification.lastError
        }
    }
    var specversion = "1.0"
    var id: String
    var source: String
    var type: String
    var subject: String
    var time: String
    var sequence: String
    var datacontenttype = "application/json"
    var data: Payload

    init(_ event: LifecycleEvent, configuration: KeyRelayConfiguration) {
        id = event.id
        source = CloudEventNames.kmsInstanceCRN(region: configuration.region, account: configuration.account, instanceID: event.instanceID)
        type = event.kind.cloudEventType
        subject = event.keyID
        time = Timestamp.format(event.date)
        sequence = String(event.sequence)
        data = Payload(keyState: event.keyState.description, keyStateCode: event.keyState.rawValue, keyVersion: event.keyVersion.id,
                       keySequence: event.keySequence, principal: event.principal, correlationID: event.correlationID)
    }
}
