import Foundation
import HTTPTypes
import Hummingbird
import KeyRelay
import KeyRelayBus

/// KeyRelay-extension JSON endpoints the web console reads (under `/api/v2/_keyrelay/`): what Key Protect's API
/// does not give — registration counts, acknowledgements, drift, deliveries, and what each key accepts now (so the
/// console keeps no copy of any rule). They sit in the API's permission groups (``AccessPermission/read``), so
/// the same middleware authenticates them and fills ``KeyRelayRequestContext/caller`` — `Bluemix-Instance` and the
/// `X-Kms-Key-Ring` scope included, which the engine enforces — and every refusal is the same `KeyRelayError`
/// body. Each handler is one engine query; the shapes are ``ConsoleJSON``. Documented in `docs/console.md`.
extension KeyProtectAPI {
    /// Adds the `/api/v2/_keyrelay/…` read endpoints, and the dev bus-fault endpoints on a dev clock.
    func addConsoleAPIRoutes(to router: Router<KeyRelayRequestContext>) {
        let api = self
        let read = group(router, .read)
        read.get("/api/v2/_keyrelay/keys/overview") { request, context in try await api.consoleOverview(request, context) }
        read.get("/api/v2/_keyrelay/keys/{id}/associations") { request, context in
            try await api.consoleAssociations(request, context, id: try context.parameters.require("id"))
        }
        read.get("/api/v2/_keyrelay/keys/{id}/events") { request, context in
            try await api.consoleEvents(request, context, id: try context.parameters.require("id"))
        }
        // Bus fault injection (KeyRelay dev extension): only on a dev clock, with the bus dispatcher.
        if devClock != nil, let bus = (background as? DispatcherBackground)?.dispatcher.bus {
            group(router, .read, instance: false).get("/api/v2/_dev/bus") { request, _ in try api.readBusFaults(request, bus: bus) }
            group(router, .manage, instance: false).post("/api/v2/_dev/bus") { request, context in
                try await api.changeBusFaults(request, context: context, bus: bus)
            }
        }
    }

    /// A page of keys with their registrations, drift, deliveries and allowed actions.
    ///
    /// Query: `state` (Key Protect's list, default 1,2,3), `destroyedWithDrift=true` (also destroyed keys whose
    /// resources have not acknowledged the delete), `limit` (1–1000, default 25), `offset`.
    func consoleOverview(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let op = "Key overview could not be retrieved"
        let query = Query(request: request, operation: op)
        var keys = KeyQuery()
        if let states = try query.states() { keys.states = states }
        keys.limit = try query.int("limit", default: 25)
        keys.offset = try query.int("offset", default: 0)
        let page = try await engine.keyOverviews(keys, includingDestroyedWithDrift: try query.bool("destroyedWithDrift") ?? false,
                                                 context: try context.caller)
        let resources = page.items.map(ConsoleJSON.Overview.init)
        return try ConsoleJSON.response(ConsoleJSON.OverviewPage(
            metadata: .init(collectionTotal: resources.count, totalCount: page.total, now: now), resources: resources))
    }

    /// A key's registrations with their last acknowledgement and drift, the server's clock, and what the key
    /// accepts now (sync included, with the instant it is allowed from).
    func consoleAssociations(_ request: Request, _ context: KeyRelayRequestContext, id: String) async throws -> Response {
        let op = "Associated resources could not be retrieved"
        let query = Query(request: request, operation: op)
        let answer = try await engine.associations(keyID: id, limit: try query.int("limit", default: 50),
                                                   offset: try query.int("offset", default: 0), context: try context.caller)
        let overview = answer.overview
        let rows = answer.registrations.items.map(ConsoleJSON.Association.init)
        return try ConsoleJSON.response(ConsoleJSON.AssociationsPage(
            metadata: .init(collectionTotal: rows.count, totalCount: answer.registrations.total, now: now, drifted: overview.drifted),
            key: ConsoleJSON.KeySummary(overview), deliveries: ConsoleJSON.Counts(overview.deliveries), resources: rows))
    }

    /// A key's lifecycle events, newest first, each with its deliveries (one per associated resource).
    /// Query: `limit` (1–1000, default 50), `offset`.
    func consoleEvents(_ request: Request, _ context: KeyRelayRequestContext, id: String) async throws -> Response {
        let op = "Key events could not be retrieved"
        let query = Query(request: request, operation: op)
        let limit = try query.int("limit", default: 50)
        let offset = try query.int("offset", default: 0)
        let answer = try await engine.eventsWithDeliveries(keyID: id, limit: limit, offset: offset, context: try context.caller)
        let key = answer.key
        let events = answer.events.items.map(ConsoleJSON.Event.init)
        return try ConsoleJSON.response(ConsoleJSON.EventsPage(
            metadata: .init(collectionTotal: events.count, totalCount: answer.events.total, now: now),
            key: .init(id: key.id, name: key.name, state: key.state.rawValue, stateName: key.state.description),
            resources: events))
    }

    // MARK: - Dev bus faults

    func readBusFaults(_ request: Request, bus: ServiceBus) throws -> Response {
        let op = "Bus faults could not be read"
        guard let service = Query(request: request, operation: op).string("service"), !service.isEmpty else {
            throw KeyRelayError(.invalidQueryParam, "The query_param 'service' must be: a service name such as cloud-object-storage",
                                operation: op, target: ErrorTarget(.queryParam, "service"))
        }
        return try ConsoleJSON.response(ConsoleJSON.BusFaults(service: service, bus.faults(for: service)))
    }

    /// The most hand-overs one change may drop, fail or duplicate, and the longest delay: bounds that keep the
    /// bus's counters far from overflow whatever a caller sends.
    static let maximumFaultCount = 10_000
    static let maximumFaultDelay: TimeInterval = 86_400

    /// `{"service": "cloud-object-storage", "dropNext": 1}`; also `failNext`, `duplicateNext`, `delay` ("30s"),
    /// `partition` (true/false) and `clear` (true: remove every fault first).
    func changeBusFaults(_ request: Request, context: KeyRelayRequestContext, bus: ServiceBus) async throws -> Response {
        let op = "Bus faults could not be changed"
        var request = request
        let buffer = try await request.collectBody(upTo: context.maxUploadSize)
        guard buffer.readableBytes > 0 else { throw KeyRelayError(.noBody, "Missing body in request", operation: op) }
        let change: ConsoleJSON.BusFaultsChange
        do {
            change = try JSONDecoder().decode(ConsoleJSON.BusFaultsChange.self, from: Data(buffer: buffer))
        } catch {
            throw KeyRelayError(.badBody, KeyRelayEngine.badBodyMessage, operation: op,
                                hint: "a JSON object with 'service' and the faults to inject "
                                    + "(integer counts, 'delay' a duration, 'partition' and 'clear' booleans)")
        }
        guard let service = change.service, !service.isEmpty else {
            throw KeyRelayError(.invalidField, "The field 'service' must be: a service name such as cloud-object-storage",
                                operation: op, target: ErrorTarget(.field, "service"))
        }
        func count(_ value: Int?, _ name: String) throws -> Int {
            let value = value ?? 0
            guard (0...Self.maximumFaultCount).contains(value) else {
                throw KeyRelayError(.invalidField, "The field '\(name)' must be: an integer count from 0 to \(Self.maximumFaultCount)",
                                    operation: op, target: ErrorTarget(.field, name))
            }
            return value
        }
        let drop = try count(change.dropNext, "dropNext")
        let fail = try count(change.failNext, "failNext")
        let duplicate = try count(change.duplicateNext, "duplicateNext")
        var delay: TimeInterval?
        if let text = change.delay {
            guard let parsed = DurationText.parse(text), (0...Self.maximumFaultDelay).contains(parsed) else {
                throw KeyRelayError(.invalidField, "The field 'delay' must be: a duration from 0s to 24h, such as \"30s\" or \"1m\"",
                                    operation: op, target: ErrorTarget(.field, "delay"))
            }
            delay = parsed
        }
        if change.clear == true { bus.clearFaults(for: service) }
        let cap = Self.maximumFaultCount
        bus.updateFaults(for: service) { faults in
            // Counts add up across changes; each stays within the bound.
            faults.dropNext = min(cap, faults.dropNext + drop)
            faults.failNext = min(cap, faults.failNext + fail)
            faults.duplicateNext = min(cap, faults.duplicateNext + duplicate)
            if let delay { faults.delay = delay > 0 ? delay : nil }
            if let partition = change.partition {
                faults.partitioned = partition
                faults.partitionedUntil = nil
            }
        }
        return try ConsoleJSON.response(ConsoleJSON.BusFaults(service: service, bus.faults(for: service)))
    }
}
