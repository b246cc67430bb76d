import Foundation
import HTTPTypes
import Hummingbird
import KeyRelay
import Logging

/// The Key Protect v2–compatible HTTP API over a ``KeyRelayEngine``.
///
/// ```swift
/// let api = KeyProtectAPI(engine: engine, access: .development(token: "root"))
/// let app = Application(router: api.makeRouter())
/// ```
public struct KeyProtectAPI: Sendable {
    public let engine: KeyRelayEngine
    public let access: AccessControl
    /// The manual clock the dev clock endpoint moves; `nil` disables `/api/v2/_dev/clock`.
    public let devClock: ManualClock?
    public let background: any BackgroundWork
    /// The simulated COS and Cloud Databases services on the server's bus, with their `/api/v2/_sim` routes.
    public let simulation: SimulatedCloud?
    /// The port reported by `GET /api/v2/instance/allowed_ip_port`.
    public let privateEndpointPort: Int
    let importTokens: ImportTokenStore
    let wire: Representations
    let logger: Logger

    /// - Parameters:
    ///   - devClock: enables `GET/POST /api/v2/_dev/clock` (use with `--dev --manual-clock` only).
    ///   - background: what the dev clock drains; defaults to engine housekeeping (expiry only).
    ///   - simulation: simulated services on the background's bus; enables `/api/v2/_sim/…`.
    ///   - importTokenKeySize: RSA modulus size of import tokens (4096 like Key Protect; 2048 is faster in tests).
    public init(engine: KeyRelayEngine, access: AccessControl, devClock: ManualClock? = nil,
                background: (any BackgroundWork)? = nil, simulation: SimulatedCloud? = nil, privateEndpointPort: Int = 8888,
                importTokenKeySize: Int = 4096, logger: Logger = Logger(label: "keyrelay.http")) {
        self.engine = engine
        self.access = access
        self.devClock = devClock
        self.background = background ?? EngineHousekeeping(engine: engine)
        self.simulation = simulation
        self.privateEndpointPort = privateEndpointPort
        self.importTokens = ImportTokenStore(keySize: importTokenKeySize)
        self.wire = Representations(region: engine.configuration.region, account: engine.configuration.account,
                                    rules: engine.lifecycleRules)
        self.logger = logger
    }

    var now: Date { engine.clock.now() }

    /// A router with every endpoint, behind the error-rendering middleware.
    public func makeRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.addMiddleware { ErrorRenderingMiddleware<BasicRequestContext>(logger: logger) }
        router.addMiddleware { PokeMiddleware<BasicRequestContext>(background: background) }
        addRoutes(to: router)
        if let simulation { addSimulationRoutes(to: router, simulation: simulation) }
        ConsoleRoutes.add(to: router, api: self)
        return router
    }

    // MARK: - Caller

    /// Who is calling and for which instance.
    struct Caller {
        var grant: AccessGrant
        var context: KeyRelay.RequestContext
        /// `X-Kms-Key-Ring`.
        var keyRing: String?
    }

    /// Authenticates the bearer token, requires `Bluemix-Instance` (unless `instance` is false) and `permission`.
    func authorize(_ request: Request, _ permission: AccessPermission, instance: Bool = true) throws -> Caller {
        guard let header = request.headers[.authorization] else { throw Unauthorized() }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer",
              let grant = access.grant(forToken: parts[1].trimmingCharacters(in: .whitespaces)) else { throw Unauthorized() }
        var instanceID = "-"
        if instance {
            guard let value = request.headers[HTTPField.Name("Bluemix-Instance")!]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else {
                throw KeyRelayError(.invalidHeader, "The header 'Bluemix-Instance' must be: the instance ID (GUID) of your KeyRelay/Key Protect instance",
                                    operation: "Request could not be processed", target: ErrorTarget(.header, "Bluemix-Instance"))
            }
            guard grant.covers(instance: value) else { throw Unauthorized() }
            instanceID = value
        }
        guard grant.allows(permission) else {
            if permission == .service {
                throw KeyRelayError(.serviceOnly, "This action can only be done by a service (service to service)",
                                    operation: "Request could not be processed")
            }
            throw Unauthorized()
        }
        let correlation = request.headers[HTTPField.Name("Correlation-Id")!]
        let ring = request.headers[HTTPField.Name("X-Kms-Key-Ring")!].flatMap { $0.isEmpty ? nil : $0 }
        return Caller(grant: grant, context: KeyRelay.RequestContext(instanceID: instanceID, principal: grant.principal,
                                                                      correlationID: correlation),
                      keyRing: ring)
    }

    /// `X-Kms-Key-Ring`, when given on a key operation, must name the key's ring.
    func checkRing(_ caller: Caller, key reference: String, operation: String) async throws {
        guard let ring = caller.keyRing else { return }
        let key = try await engine.key(reference, context: caller.context)
        guard key.keyRingID == ring else {
            throw KeyRelayError(.keyRingMismatch, "The X-Kms-Key-Ring header names '\(ring)', but the key is in ring '\(key.keyRingID)'",
                                operation: operation, target: ErrorTarget(.header, "X-Kms-Key-Ring"))
        }
    }

    /// `Prefer: return=minimal` → true.
    func prefersMinimal(_ request: Request) -> Bool {
        guard let prefer = request.headers[HTTPField.Name("Prefer")!] else { return false }
        return prefer.replacingOccurrences(of: " ", with: "").lowercased().contains("return=minimal")
    }

    // MARK: - Routes

    func addRoutes(to router: Router<BasicRequestContext>) {
        let api = self
        // Keys (collection). `/keys/registrations` is registered before `/keys/{id}`.
        router.head("/api/v2/keys") { request, _ in try await api.headKeys(request) }
        router.get("/api/v2/keys") { request, _ in try await api.listKeys(request) }
        router.post("/api/v2/keys") { request, context in try await api.createKey(request, context, overrides: false) }
        router.post("/api/v2/keys_with_policy_overrides") { request, context in try await api.createKey(request, context, overrides: true) }
        router.get("/api/v2/keys/registrations") { request, _ in try await api.listRegistrations(request, keyID: nil) }
        // One key.
        router.get("/api/v2/keys/{id}") { request, context in try await api.getKey(request, id: try context.parameters.require("id")) }
        router.post("/api/v2/keys/{id}") { request, context in
            let id = try context.parameters.require("id")
            guard let action = request.uri.queryParameters.get("action") else {
                throw KeyRelayError(.invalidQueryParam, "The query_param 'action' must be: one of \(Self.deprecatedActions.joined(separator: ", "))",
                                    operation: "Action could not be performed on key", target: ErrorTarget(.queryParam, "action"))
            }
            guard Self.deprecatedActions.contains(action) else {
                throw KeyRelayError(.invalidQueryParam, "The query_param 'action' must be: one of \(Self.deprecatedActions.joined(separator: ", "))",
                                    operation: "Action could not be performed on key", target: ErrorTarget(.queryParam, "action"))
            }
            if action == "restore" { return try await api.restore(request, id: id) }
            return try await api.action(action, id: id, request, context)
        }
        router.patch("/api/v2/keys/{id}") { request, context in try await api.patchKey(request, context, id: try context.parameters.require("id")) }
        router.delete("/api/v2/keys/{id}") { request, context in try await api.deleteKey(request, id: try context.parameters.require("id")) }
        router.get("/api/v2/keys/{id}/metadata") { request, context in try await api.getMetadata(request, id: try context.parameters.require("id")) }
        router.get("/api/v2/keys/{id}/versions") { request, context in try await api.versions(request, id: try context.parameters.require("id")) }
        router.delete("/api/v2/keys/{id}/purge") { request, context in try await api.purge(request, id: try context.parameters.require("id")) }
        router.post("/api/v2/keys/{id}/restore") { request, context in try await api.restore(request, id: try context.parameters.require("id")) }
        router.post("/api/v2/keys/{id}/actions/{action}") { request, context in
            try await api.action(try context.parameters.require("action"), id: try context.parameters.require("id"), request, context)
        }
        // Key policies.
        router.get("/api/v2/keys/{id}/policies") { request, context in try await api.getPolicies(request, id: try context.parameters.require("id")) }
        router.put("/api/v2/keys/{id}/policies") { request, context in try await api.putPolicies(request, context, id: try context.parameters.require("id")) }
        // Registrations.
        router.get("/api/v2/keys/{id}/registrations") { request, context in
            try await api.listRegistrations(request, keyID: try context.parameters.require("id"))
        }
        for method in [HTTPRequest.Method.post, .put, .patch, .delete] {
            router.on("/api/v2/keys/{id}/registrations/**", method: method) { request, context in
                try await api.saveRegistration(method, request, context, id: try context.parameters.require("id"))
            }
        }
        router.post("/api/v2/event_ack") { request, context in try await api.eventAck(request, context) }
        // Aliases.
        router.post("/api/v2/keys/{id}/aliases/{alias}") { request, context in
            try await api.createAlias(request, id: try context.parameters.require("id"), alias: try context.parameters.require("alias"))
        }
        router.delete("/api/v2/keys/{id}/aliases/{alias}") { request, context in
            try await api.deleteAlias(request, id: try context.parameters.require("id"), alias: try context.parameters.require("alias"))
        }
        // Key rings.
        router.get("/api/v2/key_rings") { request, _ in try await api.listKeyRings(request) }
        router.post("/api/v2/key_rings/{ring}") { request, context in try await api.createKeyRing(request, ring: try context.parameters.require("ring")) }
        router.delete("/api/v2/key_rings/{ring}") { request, context in try await api.deleteKeyRing(request, ring: try context.parameters.require("ring")) }
        // Instance.
        router.get("/api/v2/instance/policies") { request, _ in try await api.getInstancePolicies(request) }
        router.put("/api/v2/instance/policies") { request, context in try await api.putInstancePolicies(request, context) }
        router.get("/api/v2/instance/allowed_ip_port") { request, _ in try await api.allowedIPPort(request) }
        // Import token.
        router.post("/api/v2/import_token") { request, context in try await api.createImportToken(request, context) }
        router.get("/api/v2/import_token") { request, _ in try await api.getImportToken(request) }
        // KMIP: not supported, answered with a clear error body.
        for method in [HTTPRequest.Method.get, .post, .put, .patch, .delete] {
            for path in ["/api/v2/kmip_adapters", "/api/v2/kmip_adapters/{adapter}", "/api/v2/kmip_adapters/{adapter}/{kind}",
                         "/api/v2/kmip_adapters/{adapter}/{kind}/{object}"] {
                router.on(RouterPath(path), method: method) { request, _ in try api.kmip(request) }
            }
        }
        // Development clock (KeyRelay extension), only with a manual clock.
        if devClock != nil {
            router.get("/api/v2/_dev/clock") { request, _ in try await api.readClock(request) }
            router.post("/api/v2/_dev/clock") { request, context in try await api.moveClock(request, context) }
        }
    }

    static let deprecatedActions = ["disable", "enable", "restore", "rewrap", "rotate", "setKeyForDeletion",
                                    "unsetKeyForDeletion", "unwrap", "wrap"]

    func kmip(_ request: Request) throws -> Response {
        _ = try authorize(request, .read)
        throw HTTPFailure(error: KeyRelayError(.featureRestricted,
                                               "This action is not permitted on this resource: KMIP is not supported by KeyRelay (KMIP adapters, KMIP objects and client certificates are not implemented)",
                                               operation: "KMIP request could not be processed"),
                          status: 501)
    }
}

/// Wakes the background work after every write request (new notifications may be due).
struct PokeMiddleware<Context: Hummingbird.RequestContext>: RouterMiddleware {
    let background: any BackgroundWork

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let response = try await next(request, context)
        if request.method != .get, request.method != .head { background.poke() }
        return response
    }
}

/// Renders every error as Key Protect's error body.
struct ErrorRenderingMiddleware<Context: Hummingbird.RequestContext>: RouterMiddleware {
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as KeyRelayError {
            return Wire.errorResponse(error)
        } catch let failure as HTTPFailure {
            return Wire.errorResponse(failure.error, status: failure.status, headers: failure.headers)
        } catch is Unauthorized {
            return Wire.unauthorizedResponse()
        } catch let error as HTTPError {
            let path = request.uri.path
            switch error.status.code {
            case 404:
                return Wire.errorResponse(KeyRelayError(.notFound, "No KeyRelay endpoint matches \(request.method) \(path): see docs/api-coverage.md for the supported endpoints",
                                                        operation: "Request could not be processed"))
            case 405:
                return Wire.errorResponse(KeyRelayError(.notFound, "The method \(request.method) is not allowed on \(path)",
                                                        operation: "Request could not be processed"), status: 405)
            case 413:
                return Wire.errorResponse(KeyRelayError(.badBody, "Invalid body data was passed: the body is too large",
                                                        operation: "Request could not be processed"), status: 413)
            default:
                return Wire.errorResponse(KeyRelayError(.badBody, error.body ?? "The request could not be processed (\(error.status.code))",
                                                        operation: "Request could not be processed"), status: error.status.code)
            }
        } catch {
            logger.error("Unhandled error for \(request.method) \(request.uri.path): \(String(describing: type(of: error)))")
            return Wire.errorResponse(KeyRelayError(.internalError, "An internal error occurred: see the server log",
                                                    operation: "Request could not be processed"))
        }
    }
}
