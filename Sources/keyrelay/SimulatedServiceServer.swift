import Foundation
import Hummingbird
import KeyRelay
import KeyRelayAdapters
import KeyRelayBus

/// The small HTTP surface of `keyrelay simulate cos|databases` (documented in docs/webhooks.md, "Simulated services
/// as processes"): webhooks in, resources and their data out. Every rule is the adapter's
/// (``ProtectedResourceService``), the same code that runs inside `serve`; this type only translates HTTP.
struct SimulatedServiceServer: Sendable {
    /// `buckets` or `deployments`.
    let collection: String
    /// `objects` or `records`.
    let items: String
    /// The CRN service name whose webhooks this service accepts.
    let serviceName: String
    let core: ProtectedResourceService
    /// Creates a resource (registers it with its key through the API, wraps a DEK).
    let create: @Sendable (_ name: String, _ keyID: String, _ retention: Bool) async throws -> ResourceStatus
    let verifier: WebhookVerifier
    /// The most a request body may hold.
    let maximumBody = 4 * 1024 * 1024

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        let server = self
        router.get("/health") { _, _ in Self.json(.ok, ["status": "ok", "service": server.serviceName]) }
        router.post("/webhooks") { request, _ in await server.receiveWebhook(request) }
        router.get(RouterPath("/\(collection)")) { _, _ in
            let statuses = await server.core.statuses()
            return Self.json(.ok, ["resources": statuses.map(Self.statusObject)])
        }
        router.put(RouterPath("/\(collection)/{name}")) { request, context in
            await server.createResource(request, name: try context.parameters.require("name"))
        }
        router.get(RouterPath("/\(collection)/{name}")) { _, context in
            let name = try context.parameters.require("name")
            return await Self.answering { Self.json(.ok, Self.statusObject(try await server.core.status(name))) }
        }
        router.delete(RouterPath("/\(collection)/{name}")) { _, context in
            let name = try context.parameters.require("name")
            return await Self.answering {
                try await server.core.remove(name)
                return Response(status: .noContent)
            }
        }
        router.put(RouterPath("/\(collection)/{name}/\(items)/{item}")) { request, context in
            let name = try context.parameters.require("name")
            let item = try context.parameters.require("item")
            var request = request
            let body = try await request.collectBody(upTo: server.maximumBody)
            let data = Data(body.readableBytesView)
            return await Self.answering {
                try await server.core.put(name, item: item, data: data)
                return Response(status: .noContent)
            }
        }
        router.get(RouterPath("/\(collection)/{name}/\(items)/{item}")) { _, context in
            let name = try context.parameters.require("name")
            let item = try context.parameters.require("item")
            return await Self.answering {
                let data = try await server.core.get(name, item: item)
                return Response(status: .ok, headers: [.contentType: "application/octet-stream"],
                                body: .init(byteBuffer: ByteBuffer(bytes: data)))
            }
        }
        return router
    }

    // MARK: - Webhooks

    /// `POST /webhooks`: 401 for a bad or stale signature, 400 for a body that is not a lifecycle CloudEvent of this
    /// service, 404 for a resource this service does not hold, 503 when the event could not be applied or
    /// acknowledged (the key service refused or was unreachable: the sender retries), 204 once applied and
    /// acknowledged with `event_ack`.
    func receiveWebhook(_ request: Request) async -> Response {
        var request = request
        guard let buffer = try? await request.collectBody(upTo: maximumBody) else {
            return Self.error(.contentTooLarge, "BodyTooLarge", "the webhook body is larger than \(maximumBody) bytes")
        }
        let body = Data(buffer.readableBytesView)
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        do throws(WebhookVerificationError) {
            try verifier.verify(headers: headers, body: body)
        } catch {
            return Self.error(.unauthorized, "InvalidSignature", "The webhook was refused: \(error.description)")
        }
        let event: WebhookEvent
        let lifecycleEvent: LifecycleEvent
        do {
            event = try WebhookEvent.decode(body)
            lifecycleEvent = try event.lifecycleEvent()
        } catch let error as WebhookEventError {
            return Self.error(.badRequest, "MalformedEvent", error.message)
        } catch {
            return Self.error(.badRequest, "MalformedEvent", "The webhook body is not a CloudEvents 1.0 JSON lifecycle event")
        }
        guard let crn = try? CRN(parsing: event.resourcecrn), crn.serviceName == serviceName else {
            return Self.error(.badRequest, "MalformedEvent",
                              "The event's resourcecrn '\(event.resourcecrn.prefix(200))' is not a CRN of service \(serviceName)")
        }
        guard await core.hosts(event.resourcecrn) else {
            return Self.error(.notFound, "NoSuchResource", "This service holds no resource \(event.resourcecrn.prefix(200))")
        }
        let notification = ResourceNotification(id: 0, event: lifecycleEvent, resourceCRN: event.resourcecrn,
                                                serviceName: serviceName, status: .sent, attempts: 0, nextAttemptDate: nil,
                                                lastError: nil, sentDate: nil, acknowledgedDate: nil)
        do {
            try await core.deliver(notification)
        } catch let error as ServiceAccessError {
            return Self.error(.notFound, "NoSuchResource", error.description)
        } catch {
            return Self.error(.serviceUnavailable, "NotApplied", "The event could not be applied and acknowledged: \(error)")
        }
        return Response(status: .noContent)
    }

    // MARK: - Resources

    /// `PUT /{collection}/{name}?key=KEYID[&retention=true]`: registers the resource on the key through the API.
    func createResource(_ request: Request, name: String) async -> Response {
        guard let keyID = request.uri.queryParameters.get("key"), !keyID.isEmpty else {
            return Self.error(.badRequest, "MissingKey", "Name the root key: PUT /\(collection)/\(name)?key=KEYID")
        }
        let retention = request.uri.queryParameters.get("retention") == "true"
        return await Self.answering { Self.json(.created, Self.statusObject(try await create(name, keyID, retention))) }
    }

    // MARK: - Answers

    /// Runs `body`; the data plane's and the key service's errors become small JSON error answers.
    static func answering(_ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let error as ServiceAccessError {
            switch error {
            case .accessDenied: return Self.error(.forbidden, "AccessDenied", error.description)
            case .noSuchResource: return Self.error(.notFound, "NoSuchResource", error.description)
            case .noSuchItem: return Self.error(.notFound, "NoSuchItem", error.description)
            case .resourceExists: return Self.error(.conflict, "ResourceExists", error.description)
            }
        } catch let error as KeyRelayError {
            // The key service refused (its reason code kept), with its status.
            return Self.error(HTTPResponse.Status(code: error.status), error.code.rawValue, error.message)
        } catch let error as KeyProtectClientError {
            return Self.error(.badGateway, error.reasonCode ?? "KeyServiceUnavailable", error.description)
        } catch {
            return Self.error(.internalServerError, "InternalError", String(describing: error))
        }
    }

    static func statusObject(_ status: ResourceStatus) -> [String: Any] {
        var object: [String: Any] = [
            "name": status.name, "resourceCrn": status.resourceCRN, "keyId": status.keyID, "keyVersion": status.keyVersionID,
            "adopterKeyState": status.adopterKeyState.rawValue, "access": status.access.isAllowed ? "allowed" : "denied",
            "items": status.itemCount,
        ]
        if case .denied(let reason) = status.access { object["accessDeniedReason"] = reason.rawValue }
        if let event = status.lastAppliedEventID { object["lastAppliedEventId"] = event }
        return object
    }

    /// `{"error": CODE, "message": …}`.
    static func error(_ status: HTTPResponse.Status, _ code: String, _ message: String) -> Response {
        json(status, ["error": code, "message": message])
    }

    static func json(_ status: HTTPResponse.Status, _ object: [String: Any]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
