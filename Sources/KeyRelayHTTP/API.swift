import Foundation
import HTTPTypes
import Hummingbird
import KeyRelay
import Logging
import Synchronization

/// The Key Protect v2–compatible HTTP API over a ``KeyRelayEngine``: a thin edge that decodes a typed request,
/// calls the engine and encodes a typed answer. Every rule (key-ring scope, secure import, acknowledgement
/// resolution, sync's earliest time, paging bounds) is the engine's.
///
/// ```swift
/// let api = KeyProtectAPI(engine: engine, access: .development(token: "root"))
/// let app = Application(router: api.makeRouter())   // or, as `serve` runs it: KeyRelayServer.makeApplication(api:host:port:)
/// ```
public struct KeyProtectAPI: Sendable {
    public let engine: KeyRelayEngine
    /// The access table in force (``liveAccess`` holds it; `SIGHUP` may swap it while serving).
    public var access: AccessControl { liveAccess.current }
    /// The swappable access table every request reads.
    public let liveAccess: LiveAccess
    /// The metrics `/metrics` answers with; `nil` serves no `/metrics` and records no request metrics.
    public let metrics: ServerMetrics?
    /// The manual clock the dev clock endpoint moves; `nil` disables `/api/v2/_dev/clock`.
    public let devClock: ManualClock?
    public let background: any BackgroundWork
    /// The simulated COS and Cloud Databases services on the server's bus, with their `/api/v2/_sim` routes.
    public let simulation: SimulatedCloud?
    /// The port reported by `GET /api/v2/instance/allowed_ip_port`: the private listener's, once it is bound.
    public var privateEndpointPort: Int { reportedPrivatePort.value }
    let reportedPrivatePort: ListeningPort
    /// Where audit events go (`keyrelay serve --audit`); `nil` writes none.
    public let audit: (any AuditSink)?
    let wire: Representations
    let logger: Logger

    /// - Parameters:
    ///   - devClock: enables `GET/POST /api/v2/_dev/clock` (use with `--dev --manual-clock` only).
    ///   - background: what the dev clock drains; defaults to engine housekeeping (expiry only).
    ///   - simulation: simulated services on the background's bus; enables `/api/v2/_sim/…`.
    ///   - audit: receives one ``AuditEvent`` per Key Protect API request (``AuditActions``).
    ///   - logger: the access lines (one per request) and unexpected errors; by default, nothing is logged.
    ///
    /// Import tokens are the engine's (their RSA size is ``KeyRelayConfiguration/importTokenKeySize``).
    public init(engine: KeyRelayEngine, access: AccessControl, devClock: ManualClock? = nil,
                background: (any BackgroundWork)? = nil, simulation: SimulatedCloud? = nil, privateEndpointPort: Int = 8888,
                audit: (any AuditSink)? = nil, logger: Logger = KeyRelayEngine.loggingDisabled, liveAccess: LiveAccess? = nil,
                metrics: ServerMetrics? = nil) {
        self.engine = engine
        self.liveAccess = liveAccess ?? LiveAccess(access)
        self.metrics = metrics
        self.devClock = devClock
        self.background = background ?? EngineHousekeeping(engine: engine)
        self.simulation = simulation
        self.reportedPrivatePort = ListeningPort(privateEndpointPort)
        self.audit = audit
        self.wire = Representations(region: engine.configuration.region, account: engine.configuration.account,
                                    rules: engine.lifecycleRules)
        self.logger = logger
    }

    var now: Date { engine.clock.now() }

    /// A router with every endpoint: errors rendered as Key Protect's envelope, authentication once per request,
    /// one route group per permission. `network` is the listener it serves: the private endpoint's router
    /// (`serve --private-port`) marks its requests private, which an `allowedNetwork: private-only` instance needs.
    public func makeRouter(network: RequestNetwork = .public) -> Router<KeyRelayRequestContext> {
        let router = Router(context: KeyRelayRequestContext.self)
        if network != .public { router.add(middleware: ListenerMiddleware(network: network)) }
        // Request metrics first: they see every answer as rendered, errors included.
        if let metrics { metrics.addRequestMetrics(to: router) }
        // Unauthenticated operations endpoints (`/health`, `/ready`, `/metrics`), before authentication.
        HealthRoutes.add(to: router, engine: engine)
        if let metrics { metrics.addRoute(to: router, engine: engine) }
        // Middleware applies to the routes added after it: these come first. Authentication only reads the
        // credentials (it refuses nothing), so the access line after it can name the principal; the access line
        // sits outside the error renderer to log the status answered, the audit inside it to see the reason code.
        router.add(middleware: AuthenticationMiddleware(access: liveAccess))
        router.add(middleware: AccessLogMiddleware(logger: logger))
        router.add(middleware: ErrorRenderingMiddleware<KeyRelayRequestContext>(logger: logger, clock: engine.clock))
        if let audit {
            router.add(middleware: AuditMiddleware(sink: audit, clock: engine.clock, region: engine.configuration.region,
                                                   account: engine.configuration.account))
        }
        router.add(middleware: PokeMiddleware<KeyRelayRequestContext>(background: background))
        addRoutes(to: router)
        if let simulation { addSimulationRoutes(to: router, simulation: simulation) }
        ConsoleRoutes.add(to: router, api: self)
        return router
    }

    /// The routes of one permission: Key Protect's API headers get the API's security headers (no content, no
    /// framing, no sniffing) from Hummingbird's middleware.
    func group(_ router: Router<KeyRelayRequestContext>, _ permission: AccessPermission,
               instance: Bool = true, admittingServices: Bool = false) -> RouterGroup<KeyRelayRequestContext> {
        let group = router.group()
            .add(middleware: ContentSecurityMiddleware(contentSecurityPolicy: [.defaultSrc(.none), .frameAncestors(.none)]))
            .add(middleware: PermissionMiddleware(permission: permission, requiresInstance: instance, admittingServices: admittingServices))
        // Every request to an instance passes its network policies (allowedIP, allowedNetwork) first.
        return instance ? group.add(middleware: NetworkPolicyMiddleware(engine: engine)) : group
    }

    /// The 401 answer (its body carries only `errorMsg`).
    static let unauthorized = KeyRelayError(.unauthorized, UnauthorizedBody.message, operation: "Request could not be processed")

    /// The 413 answer for a body over the size limit.
    static func tooLarge(maxSize: Int, operation: String) -> KeyRelayError {
        KeyRelayError(.badBody, KeyRelayEngine.badBodyMessage, operation: operation, status: 413,
                      hint: "the body is too large (the limit is \(maxSize) bytes)")
    }

    /// Key Protect's `FEATURE_RESTRICTED_ERR` message.
    static let featureRestrictedMessage = "This action is not permitted on this resource: Please contact IBM Key Protect or open a service ticket to enable this feature"

    /// The answer for what Key Protect serves and KeyRelay does not: 501 with `FEATURE_RESTRICTED_ERR`. Never another
    /// 5xx: IBM's Go client retries those (up to 4 times), and retrying cannot help.
    static func notImplemented(_ operation: String, hint: String) -> KeyRelayError {
        KeyRelayError(.featureRestricted, featureRestrictedMessage, operation: operation, status: 501, hint: hint)
    }

    /// `Prefer: return=minimal` → true.
    static func prefersMinimal(_ request: Request) -> Bool {
        guard let prefer = request.headers[.prefer] else { return false }
        return prefer.replacingOccurrences(of: " ", with: "").lowercased().contains("return=minimal")
    }

    // MARK: - Routes

    func addRoutes(to router: Router<KeyRelayRequestContext>) {
        let api = self
        let read = group(router, .read)
        let create = group(router, .create)
        let use = group(router, .use)
        let rotate = group(router, .rotate)
        let manage = group(router, .manage)
        let purge = group(router, .purge)
        let service = group(router, .service)
        // Deleting a key: a service's credentials reach the engine, which refuses them (403 RESOURCE_OWNER_ERR).
        let deleteKeys = group(router, .manage, admittingServices: true)

        // Keys (collection). `/keys/registrations` is registered before `/keys/{id}`.
        read.head("/api/v2/keys") { request, context in try await api.headKeys(request, context) }
        read.get("/api/v2/keys") { request, context in try await api.listKeys(request, context) }
        create.post("/api/v2/keys") { request, context in try await api.createKey(request, context, overrides: false) }
        create.post("/api/v2/keys_with_policy_overrides") { request, context in try await api.createKey(request, context, overrides: true) }
        read.get("/api/v2/keys/registrations") { request, context in try await api.listRegistrations(request, context, keyID: nil) }
        // One key.
        read.get("/api/v2/keys/{id}") { request, context in try await api.getKey(request, context) }
        // The deprecated `POST /keys/{id}?action=…`: its permission is the action's, checked in the handler.
        router.group().add(middleware: ContentSecurityMiddleware(contentSecurityPolicy: [.defaultSrc(.none), .frameAncestors(.none)]))
            .post("/api/v2/keys/{id}") { request, context in try await api.deprecatedAction(request, context) }
        manage.patch("/api/v2/keys/{id}") { request, context in try await api.patchKey(request, context) }
        deleteKeys.delete("/api/v2/keys/{id}") { request, context in try await api.deleteKey(request, context) }
        read.get("/api/v2/keys/{id}/metadata") { request, context in try await api.getMetadata(request, context) }
        read.get("/api/v2/keys/{id}/versions") { request, context in try await api.versions(request, context) }
        purge.delete("/api/v2/keys/{id}/purge") { request, context in try await api.purge(request, context) }
        manage.post("/api/v2/keys/{id}/restore") { request, context in try await api.restore(request, context) }
        // Actions, each in its permission's group.
        use.post("/api/v2/keys/{id}/actions/wrap") { request, context in try await api.wrap(request, context) }
        use.post("/api/v2/keys/{id}/actions/unwrap") { request, context in try await api.unwrap(request, context) }
        use.post("/api/v2/keys/{id}/actions/rewrap") { request, context in try await api.rewrap(request, context) }
        rotate.post("/api/v2/keys/{id}/actions/rotate") { request, context in try await api.rotate(request, context) }
        for action in Self.manageActions {
            manage.post(RouterPath("/api/v2/keys/{id}/actions/\(action)")) { request, context in
                try await api.manageAction(action, request, context)
            }
        }
        read.post("/api/v2/keys/{id}/actions/{action}") { _, context -> Response in
            throw KeyRelayError(.notFound, "Unknown key action '\(context.parameters.get("action") ?? "")': use wrap, unwrap, rewrap, rotate, enable, disable, setKeyForDeletion, unsetKeyForDeletion or sync",
                                operation: "Action could not be performed on key")
        }
        // Key policies.
        read.get("/api/v2/keys/{id}/policies") { request, context in try await api.getPolicies(request, context) }
        manage.put("/api/v2/keys/{id}/policies") { request, context in try await api.putPolicies(request, context) }
        // Registrations.
        read.get("/api/v2/keys/{id}/registrations") { request, context in
            try await api.listRegistrations(request, context, keyID: try context.parameters.require("id"))
        }
        for method in [HTTPRequest.Method.post, .put, .patch, .delete] {
            service.on("/api/v2/keys/{id}/registrations/**", method: method) { request, context in
                try await api.saveRegistration(method, request, context)
            }
        }
        // The deprecated `POST …/registrations?action=deactivate` of an older registration model: not supported (501).
        read.post("/api/v2/keys/{id}/registrations") { _, _ -> Response in
            throw KeyProtectAPI.notImplemented("Registration could not be processed",
                                               hint: "the deprecated registrations?action=deactivate is not supported by KeyRelay")
        }
        service.post("/api/v2/event_ack") { request, context in try await api.eventAck(request, context) }
        // Aliases.
        manage.post("/api/v2/keys/{id}/aliases/{alias}") { request, context in try await api.createAlias(request, context) }
        manage.delete("/api/v2/keys/{id}/aliases/{alias}") { request, context in try await api.deleteAlias(request, context) }
        // Key rings.
        read.get("/api/v2/key_rings") { request, context in try await api.listKeyRings(request, context) }
        manage.post("/api/v2/key_rings/{ring}") { request, context in try await api.createKeyRing(request, context) }
        manage.delete("/api/v2/key_rings/{ring}") { request, context in try await api.deleteKeyRing(request, context) }
        // Instance.
        read.get("/api/v2/instance/policies") { request, context in try await api.getInstancePolicies(request, context) }
        manage.put("/api/v2/instance/policies") { request, context in try await api.putInstancePolicies(request, context) }
        read.get("/api/v2/instance/allowed_ip_port") { _, _ in
            WireResponse(.ok, WireCollection(MediaTypes.allowedIP, [AllowedIPPortRepresentation(privateEndpointPort: api.privateEndpointPort)]))
        }
        // Import token.
        create.post("/api/v2/import_token") { request, context in try await api.createImportToken(request, context) }
        create.get("/api/v2/import_token") { request, context in try await api.getImportToken(request, context) }
        // KMIP adapter management (Routes+KMIP.swift).
        addKMIPRoutes(read: read, manage: manage)
        // Development clock (KeyRelay extension), only with a manual clock.
        if devClock != nil {
            group(router, .read, instance: false).get("/api/v2/_dev/clock") { _, _ in
                WireResponse(.ok, ClockRepresentation(now: Timestamp.format(api.now)))
            }
            group(router, .manage, instance: false).post("/api/v2/_dev/clock") { request, context in try await api.moveClock(request, context) }
        }
    }

    static let manageActions = ["enable", "disable", "setKeyForDeletion", "unsetKeyForDeletion", "setKeyDeletion", "unsetKeyDeletion", "sync"]
    static let deprecatedActions = ["disable", "enable", "restore", "rewrap", "rotate", "setKeyForDeletion",
                                    "unsetKeyForDeletion", "unwrap", "wrap"]
}

/// A port known once its listener is bound (port 0 asks the system for one).
final class ListeningPort: Sendable {
    private let port: Atomic<Int>
    init(_ port: Int) { self.port = Atomic(port) }
    var value: Int { port.load(ordering: .relaxed) }
    func store(_ value: Int) { port.store(value, ordering: .relaxed) }
}

extension KeyProtectAPI {
    /// Records the port the private endpoint's listener was bound to (what `allowed_ip_port` reports).
    public func privateEndpointBound(to port: Int) { reportedPrivatePort.store(port) }
}
