import Foundation
import KeyRelayCore

/// The Standard Webhooks header names.
public enum WebhookHeader {
    /// Unique per notification, the same across its retries: a receiver deduplicates by it.
    public static let id = "webhook-id"
    /// When the message was signed, in integer seconds since 1970.
    public static let timestamp = "webhook-timestamp"
    /// Space-separated `v1,<base64>` signatures.
    public static let signature = "webhook-signature"
}

/// Why a webhook was refused. A receiver answers 401 to any of them.
public enum WebhookVerificationError: Error, Equatable, CustomStringConvertible {
    /// A Standard Webhooks header is absent.
    case missingHeader(String)
    /// `webhook-timestamp` is not an integer number of seconds.
    case malformedTimestamp
    /// The timestamp is further than the tolerance from now (a replay, or a clock far off).
    case timestampOutOfTolerance(secondsFromNow: Int64)
    /// No `v1` signature in `webhook-signature` matches the body with this secret.
    case noMatchingSignature

    public var description: String {
        switch self {
        case .missingHeader(let name): "the webhook has no '\(name)' header"
        case .malformedTimestamp: "the webhook's '\(WebhookHeader.timestamp)' is not an integer number of seconds"
        case .timestampOutOfTolerance(let seconds):
            "the webhook's timestamp is \(abs(seconds)) s in the \(seconds < 0 ? "past" : "future"), beyond the tolerance"
        case .noMatchingSignature: "no webhook signature matches the body (wrong secret, or the body was altered)"
        }
    }
}

/// Checks a received webhook as Standard Webhooks specify: the signature over `"{id}.{timestamp}.{body}"`
/// (compared in constant time), and a timestamp within ``tolerance`` of the receiver's clock (default 5 minutes),
/// which stops replays of old messages.
///
/// The simulated services use it to answer 401 to a bad or stale webhook; any receiver written in Swift can.
public struct WebhookVerifier: Sendable {
    public let secret: WebhookSecret
    public let clock: any KeyRelayClock
    /// The most a timestamp may differ from now, in seconds. Default 300.
    public let tolerance: Int64

    public init(secret: WebhookSecret, clock: any KeyRelayClock, tolerance: Int64 = 300) {
        self.secret = secret
        self.clock = clock
        self.tolerance = max(0, tolerance)
    }

    /// Verifies one webhook from its three headers' values (nil when absent) and its body bytes as received.
    public func verify(webhookID: String?, timestamp: String?, signature: String?, body: some DataProtocol)
        throws(WebhookVerificationError)
    {
        guard let webhookID else { throw .missingHeader(WebhookHeader.id) }
        guard let timestamp else { throw .missingHeader(WebhookHeader.timestamp) }
        guard let signature else { throw .missingHeader(WebhookHeader.signature) }
        guard timestamp.utf8.count <= 20, let seconds = Int64(timestamp.trimmingCharacters(in: .whitespaces)) else {
            throw .malformedTimestamp
        }
        let now = Int64(clock.now().timeIntervalSince1970.rounded(.down))
        let (difference, overflow) = seconds.subtractingReportingOverflow(now)
        guard !overflow, abs(difference) <= tolerance else {
            throw .timestampOutOfTolerance(secondsFromNow: overflow ? (seconds < now ? .min + 1 : .max) : difference)
        }
        // Check every v1 entry (a sender rotating its secret sends several), each in constant time.
        var matched = false
        for entry in signature.split(separator: " ").prefix(16) {
            guard entry.hasPrefix("v1,"), let mac = Data(base64Encoded: String(entry.dropFirst(3))) else { continue }
            if secret.isValid(mac, id: webhookID, timestamp: seconds, body: body) { matched = true }
        }
        guard matched else { throw .noMatchingSignature }
    }

    /// Verifies one webhook given its headers (names matched case-insensitively) and body.
    public func verify(headers: [String: String], body: some DataProtocol) throws(WebhookVerificationError) {
        var lower: [String: String] = [:]
        for (name, value) in headers { lower[name.lowercased()] = value }
        try verify(webhookID: lower[WebhookHeader.id], timestamp: lower[WebhookHeader.timestamp],
                   signature: lower[WebhookHeader.signature], body: body)
    }

    /// Verifies one webhook, then decodes its CloudEvent.
    public func verifiedEvent(headers: [String: String], body: some DataProtocol) throws -> WebhookEvent {
        try verify(headers: headers, body: body)
        return try WebhookEvent.decode(body)
    }
}
