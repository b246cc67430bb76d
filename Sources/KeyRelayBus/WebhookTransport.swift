import AsyncHTTPClient
import Foundation
import KeyRelayCore
import NIOCore
import Synchronization

/// One notification as a signed webhook, ready to POST: the CloudEvents body and the Standard Webhooks headers.
public struct WebhookMessage: Sendable, Equatable {
    /// Where it goes.
    public var url: URL
    /// `webhook-id`: unique per notification, the same across its retries.
    public var webhookID: String
    /// `webhook-timestamp`: when it was signed, in seconds since 1970 (from the transport's clock).
    public var timestamp: Int64
    /// `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`.
    public var signature: String
    /// The CloudEvents 1.0 JSON body (structured mode), exactly the bytes signed.
    public var body: Data

    /// Every header the POST carries, names in lower case.
    public var headers: [String: String] {
        [
            "content-type": WebhookEvent.contentType,
            WebhookHeader.id: webhookID,
            WebhookHeader.timestamp: String(timestamp),
            WebhookHeader.signature: signature,
            "user-agent": WebhookTransport.userAgent,
        ]
    }
}

/// Why one webhook delivery failed. The dispatcher records its ``description`` as the attempt's error and retries
/// with backoff. URLs appear without their query; no secret, token or key material ever appears.
public struct WebhookDeliveryError: Error, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        /// No URL is subscribed for the notification's service.
        case noSubscription
        /// The receiver answered a status that is neither 2xx nor a redirect; `detail` is the start of its body.
        case status(Int, detail: String)
        /// The receiver answered a redirect, which is not followed.
        case redirect(Int, location: String?)
        /// No complete answer within the timeout.
        case timedOut(Duration)
        /// The receiver could not be reached (connection refused, host unknown, TLS failure, connection closed…).
        case unreachable(String)
    }

    /// The notification's service.
    public var service: String
    /// The URL posted to, without its query ("" when none is subscribed).
    public var url: String
    public var reason: Reason

    public init(service: String, url: String, reason: Reason) {
        self.service = service
        self.url = url
        self.reason = reason
    }

    public var description: String {
        switch reason {
        case .noSubscription:
            return "no webhook subscribed for service '\(service)'"
        case .status(let code, let detail):
            return "webhook to \(url) answered \(code)" + (detail.isEmpty ? "" : ": \(detail)")
        case .redirect(let code, let location):
            return "webhook to \(url) answered redirect \(code)\(location.map { " to \($0)" } ?? ""), which is not followed"
        case .timedOut(let timeout):
            let (seconds, attoseconds) = timeout.components
            let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
            let shown = milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(milliseconds) ms"
            return "webhook to \(url) did not answer within \(shown) (timeout)"
        case .unreachable(let why):
            return "webhook to \(url) could not be delivered: \(why)"
        }
    }
}

/// Delivers notifications as signed CloudEvents webhooks: one HTTP POST per notification to the URL subscribed for
/// its resource's service.
///
/// It is a ``ServiceSubscriber``, so the ``Dispatcher``'s retries, backoff with jitter, dead letters and per-resource
/// order apply unchanged: subscribe it to each service's topic (``subscribe(on:)``).
///
/// - The body is a ``WebhookEvent`` (CloudEvents 1.0, structured mode, `application/cloudevents+json`).
/// - The headers are Standard Webhooks': `webhook-id` (``webhookID(for:)``: unique per notification, stable across
///   retries), `webhook-timestamp` (seconds, from the injected clock), `webhook-signature`
///   (`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with the secret's bytes).
/// - A 2xx answer means sent (the service acknowledges later with `event_ack`). Any other status, a redirect (never
///   followed), no answer within ``timeout``, or a refused connection throws a ``WebhookDeliveryError``: the
///   dispatcher records a failed attempt and retries.
///
/// ## The HTTP client and who shuts it down
/// All deliveries share one `HTTPClient` (its connection pool keeps connections to each receiver open).
/// - Created by the transport (`httpClient: nil`, the usual case): the transport owns it, and whoever created the
///   transport must call ``shutdown()`` once deliveries have stopped (after `Dispatcher.stop()`), before the
///   transport is released.
/// - Passed in: the caller owns it and shuts it down; ``shutdown()`` leaves it alone. Configure it as
///   ``makeHTTPClient(timeout:connectionsPerHost:)`` does (redirects disallowed, no connection retry inside the client,
///   a connection per hand-over in flight).
public final class WebhookTransport: ServiceSubscriber {
    /// The default time a receiver has to answer: 10 s.
    public static let defaultTimeout: Duration = .seconds(10)
    /// The `user-agent` header.
    public static let userAgent = "KeyRelay-Webhooks/1"

    public let subscriptions: WebhookSubscriptions
    /// The longest one delivery may take, connection included.
    public let timeout: Duration
    public let source: WebhookEventSource
    private let secret: WebhookSecret
    private let clock: any KeyRelayClock
    private let client: HTTPClient
    private let ownsClient: Bool
    private let isShutDown = Mutex(false)

    /// - Parameters:
    ///   - subscriptions: the URL of each service.
    ///   - secret: signs every webhook.
    ///   - clock: gives `webhook-timestamp`.
    ///   - timeout: how long a receiver has to answer (default 10 s; at least 1 ms).
    ///   - source: the CloudEvents `source` (default `/keyrelay/<instance>`).
    ///   - connectionsPerReceiver: how many connections the transport's own client may keep open to one receiver:
    ///     pass the dispatcher's ``DeliveryPolicy/concurrency`` (the default is its default), so that every hand-over
    ///     in flight has a connection of its own and no delivery spends its `timeout` queued behind others.
    ///   - httpClient: a client to share, owned by the caller; nil to have the transport create and own one.
    public init(subscriptions: WebhookSubscriptions, secret: WebhookSecret, clock: any KeyRelayClock,
                timeout: Duration = WebhookTransport.defaultTimeout, source: WebhookEventSource = .keyRelay,
                connectionsPerReceiver: Int = DeliveryPolicy.defaultConcurrency, httpClient: HTTPClient? = nil) {
        self.subscriptions = subscriptions
        self.secret = secret
        self.clock = clock
        let bounded = max(timeout, .milliseconds(1))
        self.timeout = bounded
        self.source = source
        if let httpClient {
            client = httpClient
            ownsClient = false
        } else {
            client = Self.makeHTTPClient(timeout: bounded, connectionsPerHost: connectionsPerReceiver)
            ownsClient = true
        }
    }

    /// An `HTTPClient` configured for webhooks: redirects are not followed (a 3xx is a failed attempt), a failed
    /// connection fails the attempt at once (the bus retries with its own backoff), and connecting takes at most
    /// `timeout`. The caller shuts it down.
    ///
    /// `connectionsPerHost` (at least 1) bounds the connections to one receiver. async-http-client's own default is 8,
    /// and a request beyond them waits in the client's queue *within* its deadline: with more hand-overs in flight
    /// than connections, a slow receiver would make the queued deliveries time out having never been sent. Pass the
    /// dispatcher's concurrency.
    public static func makeHTTPClient(timeout: Duration = defaultTimeout,
                                      connectionsPerHost: Int = DeliveryPolicy.defaultConcurrency) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = max(1, connectionsPerHost)
        configuration.redirectConfiguration = .disallow
        configuration.timeout = HTTPClient.Configuration.Timeout(connect: timeAmount(timeout), read: timeAmount(timeout))
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    /// Subscribes this transport to every subscribed service's topic on `bus`. A service has one subscriber on
    /// the bus, so this replaces an in-process subscriber (a simulated service) of the same name.
    public func subscribe(on bus: ServiceBus) {
        for service in subscriptions.services { bus.subscribe(self, to: service) }
    }

    /// Shuts the HTTP client down if the transport created it (see the type's discussion); later deliveries fail.
    /// Calling it again does nothing.
    public func shutdown() async throws {
        let already = isShutDown.withLock { done in
            defer { done = true }
            return done
        }
        guard !already, ownsClient else { return }
        try await client.shutdown()
    }

    /// The `webhook-id` of a notification: `msg_<event id>_<notification id>`. The notification id makes it unique
    /// per resource; the event id (a UUID) keeps it unique across databases; neither changes between retries.
    public static func webhookID(for notification: ResourceNotification) -> String {
        "msg_\(notification.event.id)_\(notification.id)"
    }

    /// The signed webhook for `notification`, timestamped now.
    public func message(for notification: ResourceNotification) throws -> WebhookMessage {
        guard let url = subscriptions[notification.serviceName] else {
            throw WebhookDeliveryError(service: notification.serviceName, url: "", reason: .noSubscription)
        }
        let body = try WebhookEvent(notification, source: source).encoded()
        let id = Self.webhookID(for: notification)
        let timestamp = Int64(clock.now().timeIntervalSince1970.rounded(.down))
        return WebhookMessage(url: url, webhookID: id, timestamp: timestamp,
                              signature: secret.signature(webhookID: id, timestamp: timestamp, body: body), body: body)
    }

    /// POSTs one notification; returns when the receiver answered 2xx, throws a ``WebhookDeliveryError`` otherwise.
    public func deliver(_ notification: ResourceNotification) async throws {
        let message = try message(for: notification)
        let shownURL = WebhookSubscriptions.redacted(message.url)
        func failure(_ reason: WebhookDeliveryError.Reason) -> WebhookDeliveryError {
            WebhookDeliveryError(service: notification.serviceName, url: shownURL, reason: reason)
        }
        var request = HTTPClientRequest(url: message.url.absoluteString)
        request.method = .POST
        for (name, value) in message.headers.sorted(by: { $0.key < $1.key }) { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: message.body))

        let response: HTTPClientResponse
        var detail = ""
        do {
            response = try await client.execute(request, timeout: Self.timeAmount(timeout))
            let status = Int(response.status.code)
            if (200..<300).contains(status) || (300..<400).contains(status) {
                // Read (and drop) a small body so the connection can be reused.
                _ = try? await response.body.collect(upTo: 64 * 1024)
            } else {
                detail = (try? await response.body.collect(upTo: 64 * 1024)).map(Self.excerpt) ?? ""
            }
        } catch let error as HTTPClientError
            where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
            throw failure(.timedOut(timeout))
        } catch let error as HTTPClientError where error == .cancelled {
            throw CancellationError()
        } catch let error as CancellationError {
            throw error
        } catch let error as WebhookDeliveryError {
            throw error
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw failure(.unreachable(Self.describe(error)))
        }
        let status = Int(response.status.code)
        switch status {
        case 200..<300:
            return
        case 300..<400:
            let location = response.headers.first(name: "location").map { WebhookSubscriptions.redacted($0) }
            throw failure(.redirect(status, location: location))
        default:
            throw failure(.status(status, detail: detail))
        }
    }

    // MARK: - Helpers

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        let bounded = min(max(seconds, 0), 86_400 * 365)
        return .nanoseconds(bounded * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// The start of a receiver's error body, printable characters only, for the attempt's error.
    static func excerpt(_ buffer: ByteBuffer) -> String {
        let text = String(decoding: buffer.readableBytesView.prefix(200), as: UTF8.self)
        let printable = text.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : String($0) }.joined()
        return printable.trimmingCharacters(in: .whitespaces)
    }

    static func describe(_ error: any Error) -> String {
        let text = String(describing: error)
        return text.count > 300 ? String(text.prefix(300)) + "…" : text
    }
}
