import Foundation
import HTTPTypes
import Hummingbird
import KeyRelay
import Logging
import NIOCore
import NIOHTTP1

/// The request context of ``KeyProtectAPI``'s router: Hummingbird's core storage plus who is calling.
///
/// ``AuthenticationMiddleware`` reads the bearer token and Key Protect's headers once per request; the permission
/// middleware of each route group then checks the grant and fills ``caller``, which handlers read (with
/// ``principal`` for display). Request bodies decode through ``KeyProtectRequestDecoder``, so every refusal is Key
/// Protect's error body.
public struct KeyRelayRequestContext: Hummingbird.RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// What the request presents: bearer token grant, `Bluemix-Instance`, `X-Kms-Key-Ring`, `Correlation-Id`.
    public internal(set) var credentials = Credentials()
    /// The grant of the request's bearer token, when it is valid.
    public var grant: AccessGrant? { credentials.grant }
    /// Who acts, in which instance and key ring: set by the route group's permission check.
    public internal(set) var authorized: KeyRelay.RequestContext?
    /// Where an audited handler leaves what the route does not say (``AuditMiddleware``); `nil` when not audited.
    var auditNote: AuditNote?
    /// The connection the request came on: its peer is the audit's `initiator.host.address`.
    let channel: (any Channel)?
    /// The listener the request arrived on: public, or the private endpoint (`serve --private-port`).
    public internal(set) var network: RequestNetwork = .public

    /// A context for a new request, before authentication.
    public init(source: Source) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// The caller's IP address, when the connection has one.
    var remoteAddress: String? { channel?.remoteAddress?.ipAddress }

    /// The caller's address as the engine's network policies read it (nil when the connection has none).
    public var clientAddress: IPAddress? { remoteAddress.flatMap(IPAddress.init) }

    /// Request bodies decode into Key Protect's wire types, refusing with Key Protect's errors.
    public var requestDecoder: KeyProtectRequestDecoder { KeyProtectRequestDecoder() }

    /// The principal of the bearer token, when it is valid.
    public var principal: String? { grant?.principal }

    /// The engine context of an authorized request.
    /// - Throws: the 401 answer outside a permission group (a route registered without one).
    public var caller: KeyRelay.RequestContext {
        get throws {
            guard let authorized else { throw KeyProtectAPI.unauthorized }
            return authorized
        }
    }
}

/// Reads the bearer token and Key Protect's request headers into ``KeyRelayRequestContext``, once per request. It
/// refuses nothing: each route group's ``PermissionMiddleware`` decides.
struct AuthenticationMiddleware: RouterMiddleware {
    let access: LiveAccess

    func handle(_ request: Request, context: KeyRelayRequestContext,
                next: (Request, KeyRelayRequestContext) async throws -> Response) async throws -> Response {
        var context = context
        context.credentials = Credentials(request, access: access.current)
        return try await next(request, context)
    }
}

/// What a request presents, read once: the grant of its bearer token (when valid) and Key Protect's headers.
public struct Credentials: Sendable {
    /// The grant of the bearer token; `nil` when there is none or it is unknown.
    public var grant: AccessGrant?
    /// `Bluemix-Instance`, trimmed; `nil` when absent or empty.
    public var instance: String?
    /// `X-Kms-Key-Ring`; `nil` when absent or empty.
    public var keyRing: String?
    /// `Correlation-Id`.
    public var correlationID: String?

    init() {}

    init(_ request: Request, access: AccessControl) {
        let headers = Self.headers(request.headers)
        if let header = headers.authorization, let token = Self.bearerToken(header) {
            grant = access.grant(forToken: String(Self.trimmed(token)))
        }
        instance = headers.instance.map { String(Self.trimmed(Substring($0))) }?.nonEmpty
        keyRing = headers.keyRing?.nonEmpty
        correlationID = headers.correlationID
    }

    /// The four headers credentials are made of, in one pass over the request's fields, each exactly as
    /// `HTTPFields`' subscript reads it (a repeated field's values joined with ", "). Four subscript reads built the
    /// fields' name index and joined a lazy sequence into a new string for every header, on every request.
    static func headers(_ fields: HTTPFields) -> (authorization: String?, instance: String?, keyRing: String?, correlationID: String?) {
        var found: (authorization: String?, instance: String?, keyRing: String?, correlationID: String?) = (nil, nil, nil, nil)
        func add(_ value: String, to slot: inout String?) {
            slot = slot.map { $0 + ", " + value } ?? value
        }
        for field in fields {
            switch field.name {
            case .authorization: add(field.value, to: &found.authorization)
            case .bluemixInstance: add(field.value, to: &found.instance)
            case .keyRing: add(field.value, to: &found.keyRing)
            case .correlationID: add(field.value, to: &found.correlationID)
            default: continue
            }
        }
        return found
    }

    /// The token of `Bearer <token>` (the scheme in any case), read as `header.split(separator: " ", maxSplits: 1)`
    /// reads it: leading spaces skipped, the scheme up to the next space, the token everything after that one space
    /// (nil when empty) — without the array of substrings `split` makes on every request.
    static func bearerToken(_ header: String) -> Substring? {
        guard let start = header.firstIndex(where: { $0 != " " }) else { return nil }
        let rest = header[start...]
        guard let space = rest.firstIndex(of: " ") else { return nil }
        let token = rest[rest.index(after: space)...]
        guard !token.isEmpty, rest[..<space].lowercased() == "bearer" else { return nil }
        return token
    }

    /// Without surrounding spaces and tabs. (Foundation's `trimmingCharacters(in:)` bridges through `NSString` on
    /// Linux, a measurable cost on every request.)
    static func trimmed(_ text: Substring) -> Substring {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = text.firstIndex(where: { !blank($0) }), let last = text.lastIndex(where: { !blank($0) }) else { return "" }
        return text[first...last]
    }
}

/// A route group's access check: a valid token (401), `Bluemix-Instance` (400, unless the group is
/// instance-free), a grant covering that instance (401), and the group's permission (401, or 403
/// `SERVICE_ONLY_ERR` for service-to-service routes). Fills ``KeyRelayRequestContext/authorized``.
///
/// With `admittingServices`, a caller whose grant lacks the permission but is a service's (the Service role) is let
/// through as a service caller (``KeyRelay/RequestContext/isService``), so that the engine answers with Key
/// Protect's own refusal (a service deleting a key: 403 `RESOURCE_OWNER_ERR`) instead of a 401.
struct PermissionMiddleware: RouterMiddleware {
    let permission: AccessPermission
    let requiresInstance: Bool
    var admittingServices = false

    func handle(_ request: Request, context: KeyRelayRequestContext,
                next: (Request, KeyRelayRequestContext) async throws -> Response) async throws -> Response {
        var context = context
        context.authorized = try Self.authorize(context.credentials, permission, requiresInstance: requiresInstance,
                                                admittingServices: admittingServices)
        return try await next(request, context)
    }

    static func authorize(_ credentials: Credentials, _ permission: AccessPermission,
                          requiresInstance: Bool = true, admittingServices: Bool = false) throws(KeyRelayError) -> KeyRelay.RequestContext {
        guard let grant = credentials.grant else { throw KeyProtectAPI.unauthorized }
        var instanceID = "-"
        if requiresInstance {
            guard let value = credentials.instance else {
                throw KeyRelayError(.invalidHeader, "The header 'Bluemix-Instance' must be: the instance ID (GUID) of your KeyRelay/Key Protect instance",
                                    operation: "Request could not be processed", target: ErrorTarget(.header, "Bluemix-Instance"))
            }
            guard grant.covers(instance: value) else { throw KeyProtectAPI.unauthorized }
            instanceID = value
        }
        guard grant.allows(permission) else {
            if permission == .service {
                throw KeyRelayError(.serviceOnly, "This action can only be done by a service (service to service)",
                                    operation: "Request could not be processed")
            }
            if admittingServices, grant.allows(.service) {
                return KeyRelay.RequestContext(instanceID: instanceID, principal: grant.principal, correlationID: credentials.correlationID,
                                               keyRingID: credentials.keyRing, isService: true)
            }
            throw KeyProtectAPI.unauthorized
        }
        return KeyRelay.RequestContext(instanceID: instanceID, principal: grant.principal, correlationID: credentials.correlationID,
                                       keyRingID: credentials.keyRing)
    }
}

/// Marks every request of a router as arrived on `network` (the private listener's router).
struct ListenerMiddleware: RouterMiddleware {
    let network: RequestNetwork

    func handle(_ request: Request, context: KeyRelayRequestContext,
                next: (Request, KeyRelayRequestContext) async throws -> Response) async throws -> Response {
        var context = context
        context.network = network
        return try await next(request, context)
    }
}

/// Asks the engine whether the caller's instance admits the request's address and listener (its `allowedIP` and
/// `allowedNetwork` policies), after the permission check has named the instance.
struct NetworkPolicyMiddleware: RouterMiddleware {
    let engine: KeyRelayEngine

    func handle(_ request: Request, context: KeyRelayRequestContext,
                next: (Request, KeyRelayRequestContext) async throws -> Response) async throws -> Response {
        if let caller = context.authorized {
            // The usual instance has no policy: its (cached) policy admits any address, and the caller's address
            // is not worth formatting and parsing. Otherwise the engine checks the address and says why it refuses.
            let policy = try await engine.networkPolicy(instanceID: caller.instanceID)
            if !policy.admits(address: nil, network: context.network) {
                try await engine.checkNetworkAccess(instanceID: caller.instanceID, address: context.clientAddress, network: context.network)
            }
        }
        return try await next(request, context)
    }
}

/// Turns what is not yet a ``KeyRelayError`` into one (an unknown route, a body over the size limit, an unexpected
/// failure), and renders every ``KeyRelayError`` with `Retry-After` counted on the engine's clock.
struct ErrorRenderingMiddleware<Context: Hummingbird.RequestContext>: RouterMiddleware {
    let logger: Logger
    let clock: any KeyRelayClock

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            return Self.keyRelayError(error, request: request, context: context, logger: logger).response(now: clock.now())
        }
    }

    static func keyRelayError(_ error: any Error, request: Request, context: Context, logger: Logger) -> KeyRelayError {
        let op = "Request could not be processed"
        switch error {
        case let error as KeyRelayError:
            return error
        case is NIOTooManyBytesError:
            return KeyProtectAPI.tooLarge(maxSize: context.maxUploadSize, operation: op)
        case is HTTPParserError:
            // The body broke under the parser (cut short, a bad chunk): MalformedRequestHandler closes after this.
            return .malformedRequest(error)
        case let error as HTTPError where error.status == .notFound:
            return .noEndpoint(matching: "\(request.method) \(request.uri.path)", operation: op)
        case let error as HTTPError:
            return KeyRelayError(.badBody, KeyRelayEngine.badBodyMessage, operation: op, status: error.status.code,
                                 hint: error.body ?? "the request could not be processed (\(error.status.code))")
        default:
            logger.error("Unhandled error for \(request.method) \(request.uri.path): \(String(describing: type(of: error)))")
            return KeyRelayError(.internalError, "An internal error occurred: see the server log", operation: op)
        }
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

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}

extension KeyRelayError {
    /// The `404` of a request no route serves (an unknown path, or `CONNECT`): `what` is the method and path.
    static func noEndpoint(matching what: String, operation: String? = nil) -> KeyRelayError {
        let message = "No KeyRelay endpoint matches \(what): see docs/api-coverage.md for the supported endpoints"
        return operation.map { KeyRelayError(.notFound, message, operation: $0) } ?? KeyRelayError(.notFound, message)
    }
}
