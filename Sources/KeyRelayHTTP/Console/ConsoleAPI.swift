import Foundation
import HTTPTypes
import Hummingbird
import KeyRelay
import KeyRelayBus

/// KeyRelay-extension JSON endpoints the web console reads (under `/api/v2/_keyrelay/`): what Key Protect's API
/// does not give — registration counts, acknowledgements, drift and deliveries. They use the same bearer-token
/// authentication, `Bluemix-Instance` scoping and permissions as the rest of the API (``AccessPermission/read``), and
/// the same error bodies. Documented in `docs/console.md`.
extension KeyProtectAPI {
    /// Adds the `/api/v2/_keyrelay/…` read endpoints.
    func addConsoleAPIRoutes<Context: Hummingbird.RequestContext>(to router: Router<Context>) {
        let api = self
        router.get("/api/v2/_keyrelay/keys/overview") { request, _ in try await api.consoleOverview(request) }
        router.get("/api/v2/_keyrelay/keys/{id}/associations") { request, context in
            try await api.consoleAssociations(request, id: try context.parameters.require("id"))
        }
        router.get("/api/v2/_keyrelay/keys/{id}/events") { request, context in
            try await api.consoleEvents(request, id: try context.parameters.require("id"))
        }
        // Bus fault injection (KeyRelay dev extension): only on a dev clock, with the bus dispatcher.
        if devClock != nil, let bus = (background as? DispatcherBackground)?.dispatcher.bus {
            router.get("/api/v2/_dev/bus") { request, _ in try api.readBusFaults(request, bus: bus) }
            router.post("/api/v2/_dev/bus") { request, context in try await api.changeBusFaults(request, context: context, bus: bus) }
        }
    }

    static let consoleMediaType = "application/vnd.keyrelay.console+json"

    /// Registration count, drift and delivery counts of each key named in `ids` (comma separated, at most 200).
    func consoleOverview(_ request: Request) async throws -> Response {
        let op = "Key overview could not be retrieved"
        let caller = try authorize(request, .read)
        let query = Query(request: request, operation: op)
        let ids = (query.string("ids") ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard ids.count <= 200 else {
            throw KeyRelayError(.invalidQueryParam, "The query_param 'ids' must be: at most 200 comma-separated key ids",
                                operation: op, target: ErrorTarget(.queryParam, "ids"))
        }
        var resources: [[String: Any]] = []
        for id in ids {
            let key = try await engine.key(id, context: caller.context)
            let registrations = try await engine.registrations(keyID: key.id, limit: 1, offset: 0, context: caller.context)
            let drift = try await engine.drift(keyID: key.id, limit: 10_000, context: caller.context)
            let counts = try await engine.deliveryCounts(instanceID: caller.context.instanceID, keyID: key.id)
            var object: [String: Any] = [
                "keyId": key.id,
                "registrations": registrations.total,
                "drifted": drift.count,
                "deliveries": Self.consoleCounts(counts),
            ]
            if let since = drift.map(\.since).min() { object["driftSince"] = Timestamp.format(since) }
            resources.append(object)
        }
        return Wire.response(.ok, json: Wire.envelope(Self.consoleMediaType, resources))
    }

    /// A key's registrations with their last acknowledgement and drift, the server's clock and when sync is allowed.
    func consoleAssociations(_ request: Request, id: String) async throws -> Response {
        let op = "Associated resources could not be retrieved"
        let caller = try authorize(request, .read)
        let query = Query(request: request, operation: op)
        let key = try await engine.key(id, context: caller.context)
        let page = try await engine.registrations(keyID: key.id, limit: try query.int("limit", default: 50),
                                                  offset: try query.int("offset", default: 0), context: caller.context)
        let drift = try await engine.drift(keyID: key.id, limit: 100_000, context: caller.context)
        var driftByCRN: [String: Drift] = [:]
        for item in drift { driftByCRN[item.registration.resourceCRN] = item }
        let counts = try await engine.deliveryCounts(instanceID: caller.context.instanceID, keyID: key.id)
        let now = self.now
        let rows: [[String: Any]] = page.items.map { registration in
            var row: [String: Any] = [
                "resourceCrn": registration.resourceCRN,
                "service": registration.serviceName,
                "preventKeyDeletion": registration.preventKeyDeletion,
                "keyVersion": wire.version(registration.keyVersion),
                "creationDate": Timestamp.format(registration.creationDate),
                "drifted": driftByCRN[registration.resourceCRN] != nil,
            ]
            if let ack = registration.acknowledgement {
                var object: [String: Any] = ["eventId": ack.eventID, "adopterKeyState": ack.adopterKeyState.rawValue,
                                             "processedAt": Timestamp.format(ack.processedAt),
                                             "receivedAt": Timestamp.format(ack.receivedAt)]
                if let version = ack.keyVersionID { object["keyVersionId"] = version }
                row["acknowledgement"] = object
            }
            if let item = driftByCRN[registration.resourceCRN] {
                row["driftSince"] = Timestamp.format(item.since)
                row["expectedAdopterKeyState"] = item.expected.rawValue
            }
            return row
        }
        var keyObject: [String: Any] = [
            "id": key.id, "name": key.name, "state": key.state.rawValue, "stateName": key.state.description,
            "extractable": key.extractable, "keyVersion": wire.version(key.currentVersion),
            "expectedAdopterKeyState": AdopterKeyState.expected(for: key.state).rawValue,
        ]
        if let last = key.lastLifecycleActionDate { keyObject["lastLifecycleActionDate"] = Timestamp.format(last) }
        if let last = key.lastSyncDate { keyObject["lastSyncDate"] = Timestamp.format(last) }
        if let earliest = engine.lifecycleRules.earliestSync(key), earliest > now {
            keyObject["syncAllowedFrom"] = Timestamp.format(earliest)
        }
        let body: [String: Any] = [
            "metadata": ["collectionType": Self.consoleMediaType, "collectionTotal": rows.count, "totalCount": page.total,
                         "drifted": drift.count, "now": Timestamp.format(now)],
            "key": keyObject,
            "deliveries": Self.consoleCounts(counts),
            "resources": rows,
        ]
        return Wire.response(.ok, json: body)
    }

    /// A key's lifecycle events, newest first, each with its deliveries (one per associated resource).
    func consoleEvents(_ request: Request, id: String) async throws -> Response {
        let op = "Key events could not be retrieved"
        let caller = try authorize(request, .read)
        let query = Query(request: request, operation: op)
        let limit = try query.int("limit", default: 50)
        let offset = try query.int("offset", default: 0)
        guard (1...1000).contains(limit) else {
            throw KeyRelayError(.invalidQueryParam, "The query_param 'limit' must be: an integer from 1 to 1000",
                                operation: op, target: ErrorTarget(.queryParam, "limit"))
        }
        guard offset >= 0 else {
            throw KeyRelayError(.invalidQueryParam, "The query_param 'offset' must be: an integer of 0 or more",
                                operation: op, target: ErrorTarget(.queryParam, "offset"))
        }
        let key = try await engine.key(id, context: caller.context)
        // Events are read oldest first, in bounded pages; the console shows them newest first.
        var events: [LifecycleEvent] = []
        var after: Int64 = 0
        while true {
            let batch = try await engine.events(after: after, keyID: key.id, limit: 1000, context: caller.context)
            events += batch
            guard batch.count == 1000, let last = batch.last else { break }
            after = last.sequence
        }
        events.reverse()
        let total = events.count
        let shown = Array(events.dropFirst(offset).prefix(limit))
        let wanted = Set(shown.map(\.id))
        var deliveries: [String: [ResourceNotification]] = [:]
        var page = 0
        while true {
            let batch = try await engine.notifications(keyID: key.id, limit: 1000, offset: page * 1000)
            for notification in batch where wanted.contains(notification.event.id) {
                deliveries[notification.event.id, default: []].append(notification)
            }
            guard batch.count == 1000 else { break }
            page += 1
        }
        let resources: [[String: Any]] = shown.map { event in
            let list = (deliveries[event.id] ?? []).sorted { $0.resourceCRN < $1.resourceCRN }
            var counts = DeliveryCounts()
            for notification in list { counts[notification.status] += 1 }
            var object: [String: Any] = [
                "id": event.id, "sequence": event.sequence, "kind": event.kind.rawValue, "date": Timestamp.format(event.date),
                "keyState": event.keyState.rawValue, "keyStateName": event.keyState.description,
                "keyVersion": wire.version(event.keyVersion), "principal": event.principal,
                "counts": Self.consoleCounts(counts),
                "deliveries": list.map { notification -> [String: Any] in
                    var item: [String: Any] = ["resourceCrn": notification.resourceCRN, "service": notification.serviceName,
                                               "status": notification.status.rawValue, "attempts": notification.attempts]
                    if let error = notification.lastError { item["lastError"] = error }
                    if let date = notification.sentDate { item["sentDate"] = Timestamp.format(date) }
                    if let date = notification.acknowledgedDate { item["acknowledgedDate"] = Timestamp.format(date) }
                    if let date = notification.nextAttemptDate { item["nextAttemptDate"] = Timestamp.format(date) }
                    return item
                },
            ]
            if let correlation = event.correlationID { object["correlationId"] = correlation }
            return object
        }
        let body: [String: Any] = [
            "metadata": ["collectionType": Self.consoleMediaType, "collectionTotal": resources.count, "totalCount": total,
                         "now": Timestamp.format(now)],
            "key": ["id": key.id, "name": key.name, "state": key.state.rawValue, "stateName": key.state.description],
            "resources": resources,
        ]
        return Wire.response(.ok, json: body)
    }

    // MARK: - Dev bus faults

    func readBusFaults(_ request: Request, bus: ServiceBus) throws -> Response {
        let op = "Bus faults could not be read"
        _ = try authorize(request, .read, instance: false)
        guard let service = Query(request: request, operation: op).string("service"), !service.isEmpty else {
            throw KeyRelayError(.invalidQueryParam, "The query_param 'service' must be: a service name such as cloud-object-storage",
                                operation: op, target: ErrorTarget(.queryParam, "service"))
        }
        return Wire.response(.ok, json: Self.faultsObject(service, bus.faults(for: service)))
    }

    /// `{"service": "cloud-object-storage", "dropNext": 1}`; also `failNext`, `duplicateNext`, `delay` ("30s"),
    /// `partition` (true/false) and `clear` (true: remove every fault first).
    func changeBusFaults<Context: Hummingbird.RequestContext>(_ request: Request, context: Context, bus: ServiceBus) async throws -> Response {
        let op = "Bus faults could not be changed"
        _ = try authorize(request, .manage, instance: false)
        guard let body = try await Body.read(request, context: context, operation: op) else {
            throw KeyRelayError(.noBody, "Missing body in request", operation: op)
        }
        let fields = Fields(object: body.object, operation: op)
        guard let service = try fields.string("service", required: true), !service.isEmpty else {
            throw KeyRelayError(.invalidField, "The field 'service' must be: a service name such as cloud-object-storage",
                                operation: op, target: ErrorTarget(.field, "service"))
        }
        func count(_ name: String) throws -> Int {
            let value = try fields.int(name) ?? 0
            guard value >= 0 else {
                throw KeyRelayError(.invalidField, "The field '\(name)' must be: an integer count of 0 or more", operation: op,
                                    target: ErrorTarget(.field, name))
            }
            return value
        }
        let drop = try count("dropNext"), fail = try count("failNext"), duplicate = try count("duplicateNext")
        var delay: TimeInterval?
        if let text = try fields.string("delay") {
            guard let parsed = DurationText.parse(text) else {
                throw KeyRelayError(.invalidField, "The field 'delay' must be: a duration such as \"30s\" or \"1m\"", operation: op,
                                    target: ErrorTarget(.field, "delay"))
            }
            delay = parsed
        }
        let partition = try fields.bool("partition")
        if try fields.bool("clear") == true { bus.clearFaults(for: service) }
        bus.updateFaults(for: service) { faults in
            faults.dropNext += drop
            faults.failNext += fail
            faults.duplicateNext += duplicate
            if let delay { faults.delay = delay > 0 ? delay : nil }
            if let partition {
                faults.partitioned = partition
                faults.partitionedUntil = nil
            }
        }
        return Wire.response(.ok, json: Self.faultsObject(service, bus.faults(for: service)))
    }

    static func faultsObject(_ service: String, _ faults: FaultInjector) -> [String: Any] {
        var object: [String: Any] = ["service": service, "dropNext": faults.dropNext, "failNext": faults.failNext,
                                     "duplicateNext": faults.duplicateNext, "partitioned": faults.partitioned]
        if let delay = faults.delay { object["delay"] = DurationText.goStyle(delay) }
        return object
    }

    static func consoleCounts(_ counts: DeliveryCounts) -> [String: Int] {
        ["pending": counts.pending, "sent": counts.sent, "acknowledged": counts.acknowledged, "dead": counts.dead]
    }
}
