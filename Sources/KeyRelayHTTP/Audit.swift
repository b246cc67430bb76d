import Foundation
import HTTPTypes
import Hummingbird
import KeyRelay
import Logging
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - The event

/// One audit record in Activity Tracker's shape (CADF, as Key Protect's events are): what was asked (`action`), by
/// whom (`initiator`), on what (`target`), and how it ended (`outcome`, `reason`). Never key material, a token, a
/// payload or a wrapped key: only names, ids, codes and the request's URI path.
///
/// ```json
/// {"action":"kms.secrets.sync","correlationId":"…","eventTime":"2026-01-01T00:00:00.000Z",
///  "initiator":{"credential":{"type":"token"},"host":{"address":"127.0.0.1"},"id":"manager","typeURI":"service/security/account/user"},
///  "outcome":"failure","reason":{"reasonCode":409,"reasonForFailure":"Conflict: …(REQ_TOO_EARLY_ERR)","reasonType":"Conflict"},
///  "requestData":{"instanceID":"…","requestURI":"/api/v2/keys/…/actions/sync"},"responseData":{"errorCode":"REQ_TOO_EARLY_ERR","status":409},
///  "severity":"warning","target":{"id":"crn:v1:bluemix:public:kms:us-south:a/…:…:key:…","typeURI":"kms/secrets"}}
/// ```
public struct AuditEvent: Codable, Sendable, Equatable {
    public struct Reason: Codable, Sendable, Equatable {
        /// The HTTP status, except that a 403 is reported as 401, as Key Protect reports unauthorized and forbidden
        /// requests alike (the answered status is in ``ResponseData/status``).
        public var reasonCode: Int
        /// The status's reason phrase.
        public var reasonType: String
        /// On failure, Key Protect's `errorMsg` line (it ends with the reason code, e.g. `(REQ_TOO_EARLY_ERR)`).
        public var reasonForFailure: String?
    }
    public struct Initiator: Codable, Sendable, Equatable {
        public struct Credential: Codable, Sendable, Equatable { public var type: String }
        public struct Host: Codable, Sendable, Equatable { public var address: String? }
        /// The principal of the bearer token, or `unknown` when the token is missing or not valid.
        public var id: String
        public var typeURI: String
        /// `token` when a bearer token was presented (never the token itself).
        public var credential: Credential?
        public var host: Host
    }
    public struct Target: Codable, Sendable, Equatable {
        /// The key's CRN (with the id or alias the request named, or the new key's id for a create); for requests
        /// on no key, the instance's CRN.
        public var id: String
        public var typeURI: String
    }
    /// Key Protect's common fields outside the CADF model.
    public struct RequestData: Codable, Sendable, Equatable {
        public var requestURI: String
        public var instanceID: String?
        public var keyRingId: String?
    }
    public struct ResponseData: Codable, Sendable, Equatable {
        /// The HTTP status answered.
        public var status: Int
        /// Key Protect's reason code, on failure (`REQ_TOO_EARLY_ERR`).
        public var errorCode: String?
    }

    /// RFC 3339 with milliseconds, on the engine's clock.
    public var eventTime: String
    /// Key Protect's action name, e.g. `kms.secrets.create` (``AuditActions``).
    public var action: String
    /// `success` or `failure`.
    public var outcome: String
    /// `normal`, `warning` or `critical`, by Key Protect's table: the status first (401/403/503 critical,
    /// 400/409 warning), then the action (delete critical, rotate/enable/… warning).
    public var severity: String
    public var reason: Reason
    public var initiator: Initiator
    public var target: Target
    public var correlationId: String
    public var requestData: RequestData
    public var responseData: ResponseData

    /// The event time as a date.
    public var date: Date? { Timestamp.parse(eventTime) }

    /// One line of the trail (sorted keys, no trailing newline).
    public var jsonLine: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    /// The readable one-line form `keyrelay audit` prints.
    public var summary: String {
        var parts = [eventTime, action, outcome, String(responseData.status)]
        if let code = responseData.errorCode { parts.append(code) }
        parts.append("by \(initiator.id)")
        parts.append("on \(target.id)")
        parts.append("correlation \(correlationId)")
        return parts.joined(separator: " ")
    }
}

// MARK: - Route → action, in one table

/// Key Protect's Activity Tracker action for each audited route (method + route template). Routes outside the
/// table (the console's pages and views, `_dev`, `_sim`) are not audited.
public enum AuditActions {
    /// `(method, route template) → action`.
    public static let table: [String: String] = [
        "HEAD /api/v2/keys": "kms.secrets.head",
        "GET /api/v2/keys": "kms.secrets.list",
        "POST /api/v2/keys": "kms.secrets.create",
        "POST /api/v2/keys_with_policy_overrides": "kms.secrets.create",
        "GET /api/v2/keys/registrations": "kms.registrations.list",
        "GET /api/v2/keys/{id}": "kms.secrets.read",
        "PATCH /api/v2/keys/{id}": "kms.secrets.patch",
        "DELETE /api/v2/keys/{id}": "kms.secrets.delete",
        "GET /api/v2/keys/{id}/metadata": "kms.secrets-metadata.read",
        "GET /api/v2/keys/{id}/versions": "kms.secrets-key-versions.list",
        "DELETE /api/v2/keys/{id}/purge": "kms.secrets.purge",
        "POST /api/v2/keys/{id}/restore": "kms.secrets.restore",
        "POST /api/v2/keys/{id}/actions/wrap": "kms.secrets.wrap",
        "POST /api/v2/keys/{id}/actions/unwrap": "kms.secrets.unwrap",
        "POST /api/v2/keys/{id}/actions/rewrap": "kms.secrets.rewrap",
        "POST /api/v2/keys/{id}/actions/rotate": "kms.secrets.rotate",
        "POST /api/v2/keys/{id}/actions/enable": "kms.secrets.enable",
        "POST /api/v2/keys/{id}/actions/disable": "kms.secrets.disable",
        "POST /api/v2/keys/{id}/actions/setKeyForDeletion": "kms.secrets.setkeyfordeletion",
        "POST /api/v2/keys/{id}/actions/setKeyDeletion": "kms.secrets.setkeyfordeletion",
        "POST /api/v2/keys/{id}/actions/unsetKeyForDeletion": "kms.secrets.unsetkeyfordeletion",
        "POST /api/v2/keys/{id}/actions/unsetKeyDeletion": "kms.secrets.unsetkeyfordeletion",
        "POST /api/v2/keys/{id}/actions/sync": "kms.secrets.sync",
        "POST /api/v2/keys/{id}/actions/{action}": "kms.secrets.default",
        "GET /api/v2/keys/{id}/policies": "kms.policies.read",
        "PUT /api/v2/keys/{id}/policies": "kms.policies.write",
        "GET /api/v2/keys/{id}/registrations": "kms.registrations.list",
        "POST /api/v2/keys/{id}/registrations/**": "kms.registrations.create",
        "PUT /api/v2/keys/{id}/registrations/**": "kms.registrations.write",
        "PATCH /api/v2/keys/{id}/registrations/**": "kms.registrations.merge",
        "DELETE /api/v2/keys/{id}/registrations/**": "kms.registrations.delete",
        "POST /api/v2/event_ack": "kms.secrets-event.ack",
        "POST /api/v2/keys/{id}/aliases/{alias}": "kms.secrets-alias.create",
        "DELETE /api/v2/keys/{id}/aliases/{alias}": "kms.secrets-alias.delete",
        "GET /api/v2/key_rings": "kms.key-rings.list",
        "POST /api/v2/key_rings/{ring}": "kms.key-rings.create",
        "DELETE /api/v2/key_rings/{ring}": "kms.key-rings.delete",
        "GET /api/v2/instance/policies": "kms.instance-policies.read",
        "PUT /api/v2/instance/policies": "kms.instance-policies.write",
        "GET /api/v2/instance/allowed_ip_port": "kms.instance-allowed-ip-port.read",
        "POST /api/v2/import_token": "kms.import-token.create",
        "GET /api/v2/import_token": "kms.import-token.read",
        "GET /api/v2/kmip_adapters": "kms.kmip-management.list",
        "POST /api/v2/kmip_adapters": "kms.kmip-management.create",
        "GET /api/v2/kmip_adapters/{adapter}": "kms.kmip-management.read",
        "DELETE /api/v2/kmip_adapters/{adapter}": "kms.kmip-management.delete",
        "GET /api/v2/kmip_adapters/{adapter}/kmip_objects": "kms.kmip-management.list",
        "GET /api/v2/kmip_adapters/{adapter}/kmip_objects/{id}": "kms.kmip-management.read",
        "DELETE /api/v2/kmip_adapters/{adapter}/kmip_objects/{id}": "kms.kmip-management.delete",
        "GET /api/v2/kmip_adapters/{adapter}/certificates": "kms.kmip-management.list",
        "POST /api/v2/kmip_adapters/{adapter}/certificates": "kms.kmip-management.create",
        "GET /api/v2/kmip_adapters/{adapter}/certificates/{id}": "kms.kmip-management.read",
        "DELETE /api/v2/kmip_adapters/{adapter}/certificates/{id}": "kms.kmip-management.delete",
    ]

    /// The deprecated `POST /api/v2/keys/{id}?action=…`: the action named by the query.
    static let deprecatedRoute = "POST /api/v2/keys/{id}"

    /// The action of a request, or `nil` when the route is not audited.
    public static func action(method: HTTPRequest.Method, route: String?, query action: String? = nil) -> String? {
        guard let route else { return nil }
        let key = "\(method.rawValue) \(route)"
        if key == deprecatedRoute {
            guard let action, KeyProtectAPI.deprecatedActions.contains(action) else { return "kms.secrets.default" }
            return "kms.secrets.\(action.lowercased())"
        }
        return table[key]
    }

    /// Key Protect's severity of an action, before the status is considered.
    static func severity(action: String) -> String {
        switch action {
        case "kms.secrets.delete", "kms.registrations.delete": "critical"
        case "kms.secrets.rotate", "kms.secrets.restore", "kms.secrets.enable", "kms.secrets.disable",
             "kms.secrets.setkeyfordeletion", "kms.secrets.unsetkeyfordeletion", "kms.policies.write",
             "kms.instance-policies.write": "warning"
        default: "normal"
        }
    }

    /// The severity of an answered action: the status takes precedence.
    static func severity(action: String, status: Int) -> String {
        switch status {
        case 401, 403, 503, 507: "critical"
        case 400, 409, 424, 502, 504, 505: severity(action: action) == "critical" ? "critical" : "warning"
        default: severity(action: action)
        }
    }
}

// MARK: - Where events go

/// Receives audit events. ``record(_:)`` is called on the request path: it must not block.
public protocol AuditSink: Sendable {
    func record(_ event: AuditEvent)
}

/// The audit trail of `keyrelay serve --audit FILE|-`: one JSON object per line, appended to a file (created with
/// mode 0600) or written to standard output.
///
/// Requests hand events to a bounded queue and go on; one writer task writes them in order. When the queue is
/// full (the disk is stuck) an event is dropped and that is logged at error, rather than holding requests; a
/// failed write is logged at error too. ``finish()`` writes what is queued and closes the file.
public final class AuditTrail: AuditSink {
    private let continuation: AsyncStream<AuditEvent>.Continuation
    private let writer: Task<Void, Never>
    private let logger: Logger
    /// How many events may wait for the writer.
    public let capacity: Int

    /// Opens `path` for appending (creating it with mode 0600), or standard output for `-`.
    /// - Throws: `KeyRelayError` naming `--audit` when the file cannot be opened.
    public static func open(_ path: String, capacity: Int = 10_000, logger: Logger) throws(KeyRelayError) -> AuditTrail {
        if path == "-" { return AuditTrail(handle: .standardOutput, capacity: capacity, logger: logger) }
        let descriptor = openForAppending(path)
        guard descriptor >= 0 else {
            let reason = String(cString: strerror(errno))
            throw KeyRelayError(.badBody, "--audit \(path): the audit file cannot be opened for appending (\(reason))",
                                operation: "Server could not be started")
        }
        return AuditTrail(handle: FileHandle(fileDescriptor: descriptor, closeOnDealloc: true), capacity: capacity, logger: logger)
    }

    init(handle: FileHandle, capacity: Int, logger: Logger) {
        let (stream, continuation) = AsyncStream.makeStream(of: AuditEvent.self, bufferingPolicy: .bufferingOldest(max(1, capacity)))
        self.continuation = continuation
        self.logger = logger
        self.capacity = capacity
        writer = Task {
            for await event in stream {
                do {
                    try handle.write(contentsOf: Data((event.jsonLine + "\n").utf8))
                } catch {
                    logger.error("Audit event not written: \(error)",
                                 metadata: ["action": .string(event.action), "correlation_id": .string(event.correlationId)])
                }
            }
        }
    }

    public func record(_ event: AuditEvent) {
        if case .dropped = continuation.yield(event) {
            logger.error("Audit event dropped: \(capacity) events are waiting for the audit writer",
                         metadata: ["action": .string(event.action), "correlation_id": .string(event.correlationId)])
        }
    }

    /// Writes every queued event, then stops the writer.
    public func finish() async {
        continuation.finish()
        await writer.value
    }
}

/// `open(2)` for appending, creating the file with mode 0600 (the umask can only narrow it).
private func openForAppending(_ path: String) -> Int32 {
    open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
}

/// What a handler learns that the audit needs and the route does not say: the id of a key it created.
final class AuditNote: Sendable {
    private let state = Mutex<String?>(nil)
    var keyID: String? {
        get { state.withLock { $0 } }
        set { state.withLock { $0 = newValue } }
    }
}

// MARK: - The middleware

/// Writes one ``AuditEvent`` per audited request: accepted, refused by the engine, or refused by the access
/// check (a missing or unknown token, a grant that does not cover the instance or the permission).
///
/// It sits inside ``ErrorRenderingMiddleware``, so a refusal reaches it as the thrown ``KeyRelayError`` with its
/// reason code; and after ``AccessLogMiddleware``, so the correlation id is the one the answer carries.
struct AuditMiddleware: RouterMiddleware {
    static let silent = Logger(label: "keyrelay.audit", factory: { _ in SwiftLogNoOpLogHandler() })
    let sink: any AuditSink
    let clock: any KeyRelayClock
    let region: String
    let account: String

    func handle(_ request: Request, context: KeyRelayRequestContext,
                next: (Request, KeyRelayRequestContext) async throws -> Response) async throws -> Response {
        guard let action = AuditActions.action(method: request.method, route: context.endpointPath,
                                               query: request.uri.queryParameters.get("action")) else {
            return try await next(request, context)
        }
        var context = context
        let note = AuditNote()
        context.auditNote = note
        do {
            let response = try await next(request, context)
            sink.record(event(action, request, context, note: note, status: response.status.code, error: nil))
            return response
        } catch {
            // The status and reason the error is answered with, as the error renderer makes them (a body over the
            // limit is 413, a broken one 400); the renderer, not the audit, logs an unexpected error.
            let answered = ErrorRenderingMiddleware<KeyRelayRequestContext>.keyRelayError(error, request: request, context: context,
                                                                                          logger: Self.silent)
            sink.record(event(action, request, context, note: note, status: answered.statusCode, error: answered))
            throw error
        }
    }


    func event(_ action: String, _ request: Request, _ context: KeyRelayRequestContext, note: AuditNote, status: Int,
               error: KeyRelayError?) -> AuditEvent {
        let credentials = context.credentials
        let failed = status >= 400
        let instance = credentials.instance
        var target = CloudEventNames.kmsInstanceCRN(region: region, account: account, instanceID: instance ?? "-")
        if let keyID = note.keyID ?? (context.endpointPath?.hasPrefix("/api/v2/keys/{id}") == true ? context.parameters.get("id") : nil) {
            target = CloudEventNames.kmsKeyCRN(region: region, account: account, instanceID: instance ?? "-", keyID: keyID)
        }
        let reasonCode = status == 403 ? 401 : status
        let grant = credentials.grant
        return AuditEvent(
            eventTime: Timestamp.formatMilliseconds(clock.now()),
            action: action,
            outcome: failed ? "failure" : "success",
            severity: AuditActions.severity(action: action, status: status),
            reason: .init(reasonCode: reasonCode, reasonType: HTTPStatusPhrase.phrase(for: reasonCode),
                          reasonForFailure: failed ? (error?.errorMsg ?? HTTPStatusPhrase.phrase(for: status)) : nil),
            initiator: .init(id: grant?.principal ?? "unknown",
                             typeURI: grant?.roles.contains(.service) == true
                                 ? "service/security/account/serviceid" : "service/security/account/user",
                             credential: request.headers[.authorization] == nil ? nil : .init(type: "token"),
                             host: .init(address: context.remoteAddress)),
            target: .init(id: target, typeURI: "kms/secrets"),
            correlationId: credentials.correlationID ?? "-",
            requestData: .init(requestURI: request.uri.path, instanceID: instance, keyRingId: credentials.keyRing),
            responseData: .init(status: status, errorCode: failed ? error?.code.rawValue : nil))
    }
}

// MARK: - Reading the trail back

/// The filter of `keyrelay audit`: every given condition must hold.
public struct AuditFilter: Sendable {
    public var action: String?
    public var outcome: String?
    /// A key id: matches events whose target is that key.
    public var keyID: String?
    public var since: Date?

    public init(action: String? = nil, outcome: String? = nil, keyID: String? = nil, since: Date? = nil) {
        self.action = action
        self.outcome = outcome
        self.keyID = keyID
        self.since = since
    }

    public func matches(_ event: AuditEvent) -> Bool {
        if let action, event.action != action { return false }
        if let outcome, event.outcome != outcome { return false }
        if let keyID, !event.target.id.hasSuffix(":key:\(keyID)") { return false }
        if let since {
            guard let date = event.date, date >= since else { return false }
        }
        return true
    }
}
