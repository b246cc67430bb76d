import Crypto
import Foundation

/// A webhook setting that could not be used: a bad `SERVICE=URL` entry or a bad secret. The message says what is
/// wrong and never repeats a secret.
public struct WebhookConfigurationError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// What is wrong, in a sentence a user can act on.
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
    public var errorDescription: String? { message }
}

// MARK: - Subscriptions

/// Which URL receives the webhooks of which service: a map from a service name (the service segment of the
/// resources' CRNs, e.g. `cloud-object-storage`, `databases-for-postgresql`) to an `http` or `https` URL.
///
/// Written as `SERVICE=URL` entries: `keyrelay serve --webhook SERVICE=URL` (repeatable) and `KEYRELAY_WEBHOOKS`
/// (entries separated by commas or whitespace) both parse with ``init(parsing:)``.
///
/// A URL may not carry a user name or password (it appears in delivery errors and logs; the request is
/// authenticated by its signature instead), nor a fragment. Error messages and ``description`` show a URL without
/// its query, in case a receiver put a token there.
public struct WebhookSubscriptions: Sendable, Equatable, CustomStringConvertible {
    /// The URL of each subscribed service.
    public private(set) var urls: [String: URL] = [:]

    /// No subscriptions.
    public init() {}

    /// Parses `SERVICE=URL` entries. A service named twice is an error.
    public init(parsing entries: [String]) throws(WebhookConfigurationError) {
        for entry in entries { try add(parsing: entry) }
    }

    /// Parses the value of `KEYRELAY_WEBHOOKS`: `SERVICE=URL` entries separated by commas or whitespace (an empty
    /// value means no subscriptions).
    public init(environmentValue value: String) throws(WebhookConfigurationError) {
        let entries = value.split(whereSeparator: { $0 == "," || $0.isWhitespace }).map(String.init)
        try self.init(parsing: entries)
    }

    /// Adds one `SERVICE=URL` entry.
    public mutating func add(parsing entry: String) throws(WebhookConfigurationError) {
        let text = entry.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let equals = text.firstIndex(of: "=") else {
            throw WebhookConfigurationError(
                "The webhook subscription '\(Self.redacted(text))' is not valid: write it as SERVICE=URL, e.g. cloud-object-storage=http://127.0.0.1:8081/webhooks")
        }
        let service = String(text[..<equals])
        let urlText = String(text[text.index(after: equals)...])
        try set(try Self.parseURL(urlText, service: service), for: service)
    }

    /// Subscribes `service` to `url` (both checked as ``add(parsing:)`` checks them). A service already
    /// subscribed is an error.
    public mutating func set(_ url: URL, for service: String) throws(WebhookConfigurationError) {
        try Self.checkService(service)
        let url = try Self.parseURL(url.absoluteString, service: service)
        guard urls[service] == nil else {
            throw WebhookConfigurationError("The webhook subscription for service '\(service)' is given twice: give one URL per service.")
        }
        urls[service] = url
    }

    /// The URL subscribed for `service`, if any.
    public subscript(service: String) -> URL? { urls[service] }

    /// The subscribed services, sorted.
    public var services: [String] { urls.keys.sorted() }

    /// Whether nothing is subscribed.
    public var isEmpty: Bool { urls.isEmpty }

    /// `SERVICE=URL` entries, sorted by service, each URL without its query.
    public var description: String {
        services.map { "\($0)=\(Self.redacted(urls[$0]!))" }.joined(separator: ", ")
    }

    // MARK: Checks

    static func checkService(_ service: String) throws(WebhookConfigurationError) {
        guard !service.isEmpty else {
            throw WebhookConfigurationError("A webhook subscription names no service: write it as SERVICE=URL, e.g. cloud-object-storage=http://127.0.0.1:8081/webhooks")
        }
        guard service.count <= 128,
              service.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") })
        else {
            throw WebhookConfigurationError(
                "The webhook service '\(service.prefix(128))' is not a CRN service name: use lowercase letters, digits, '-', '_' or '.' (e.g. cloud-object-storage, databases-for-postgresql).")
        }
    }

    static func parseURL(_ text: String, service: String) throws(WebhookConfigurationError) -> URL {
        try checkService(service)
        func bad(_ why: String) -> WebhookConfigurationError {
            WebhookConfigurationError("The webhook URL for service '\(service)' is not valid: \(why)")
        }
        guard !text.isEmpty else { throw bad("it is empty (write SERVICE=URL)") }
        guard text.utf8.count <= 2048 else { throw bad("it is longer than 2048 bytes") }
        guard let components = URLComponents(string: text), let url = components.url else {
            throw bad("'\(redacted(text))' is not a URL")
        }
        guard let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
            throw bad("'\(redacted(text))' must start with http:// or https://")
        }
        guard let host = components.host, !host.isEmpty else { throw bad("'\(redacted(text))' names no host") }
        guard components.user == nil, components.password == nil else {
            throw bad("it carries a user name or password; webhooks are authenticated by their signature, so leave credentials out of the URL")
        }
        guard components.fragment == nil else { throw bad("'\(redacted(text))' has a fragment (#…), which is never sent") }
        return url
    }

    /// A URL for messages: scheme, host, port and path, without user information or query.
    static func redacted(_ url: URL) -> String { redacted(url.absoluteString) }

    static func redacted(_ text: String) -> String {
        guard var components = URLComponents(string: text), components.scheme != nil else {
            // Not a URL: show at most the part before any '?' or '@'.
            let cut = text.firstIndex(where: { $0 == "?" || $0 == "@" }) ?? text.endIndex
            return String(text[..<cut].prefix(200)) + (cut < text.endIndex ? "…" : "")
        }
        let hadQuery = components.query != nil
        components.user = nil
        components.password = nil
        components.query = nil
        components.fragment = nil
        return String((components.string ?? "").prefix(200)) + (hadQuery ? "?…" : "")
    }
}

// MARK: - Secret

/// The secret webhooks are signed with, in Standard Webhooks form: `whsec_` followed by the base64 of 24 to 64
/// random bytes (the form `keyrelay serve --webhook-secret-file` and `KEYRELAY_WEBHOOK_SECRET` take, and the one
/// the `standardwebhooks` libraries accept).
///
/// It is never printed: ``description`` is redacted, so interpolating it into a log or an error shows
/// `whsec_<redacted>`. Two secrets compare in constant time.
public struct WebhookSecret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The prefix of the written form.
    public static let prefix = "whsec_"
    /// The fewest and most bytes a secret may have (Standard Webhooks recommends 24 to 64).
    public static let byteCount: ClosedRange<Int> = 24...64

    let key: SymmetricKey

    /// Parses the written form (`whsec_` + base64). Surrounding whitespace (a file's trailing newline) is ignored.
    public init(parsing text: String) throws(WebhookConfigurationError) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.hasPrefix(Self.prefix) else {
            throw WebhookConfigurationError(
                "The webhook secret is not in Standard Webhooks form: it must start with 'whsec_' followed by base64 (e.g. the output of: printf 'whsec_%s\\n' \"$(head -c 32 /dev/urandom | base64)\").")
        }
        let encoded = trimmed.dropFirst(Self.prefix.count)
        guard let bytes = Data(base64Encoded: String(encoded)) else {
            throw WebhookConfigurationError("The webhook secret is not valid: the part after 'whsec_' is not base64.")
        }
        try self.init(bytes: bytes)
    }

    /// A secret from its raw bytes (24 to 64 of them).
    public init(bytes: some DataProtocol) throws(WebhookConfigurationError) {
        guard Self.byteCount.contains(bytes.count) else {
            throw WebhookConfigurationError(
                "The webhook secret has \(bytes.count) bytes; it must have \(Self.byteCount.lowerBound) to \(Self.byteCount.upperBound) (32 random bytes is usual).")
        }
        key = SymmetricKey(data: Data(bytes))
    }

    /// A fresh random secret of `byteCount` bytes (default 32), from the system's secure random source.
    public static func generate(byteCount: Int = 32) -> WebhookSecret {
        let count = min(max(byteCount, Self.byteCount.lowerBound), Self.byteCount.upperBound)
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return try! WebhookSecret(bytes: bytes)   // the count is within bounds
    }

    /// The written form, `whsec_` + base64, for handing the secret to a receiver (write it to a file readable by
    /// it only). Never log it.
    public var standardWebhooksText: String {
        Self.prefix + key.withUnsafeBytes { Data($0).base64EncodedString() }
    }

    /// Redacted: `whsec_<redacted>`.
    public var description: String { "whsec_<redacted>" }
    public var debugDescription: String { description }

    /// Constant-time comparison of the secrets' bytes.
    public static func == (lhs: WebhookSecret, rhs: WebhookSecret) -> Bool {
        lhs.key.withUnsafeBytes { a in
            rhs.key.withUnsafeBytes { b in
                guard a.count == b.count else { return false }
                var difference: UInt8 = 0
                for i in 0..<a.count { difference |= a[i] ^ b[i] }
                return difference == 0
            }
        }
    }

    /// The HMAC-SHA256 of `"{id}.{timestamp}.{body}"` (Standard Webhooks' signed content).
    func authenticationCode(id: String, timestamp: Int64, body: some DataProtocol) -> HashedAuthenticationCode<SHA256> {
        var hmac = HMAC<SHA256>(key: key)
        hmac.update(data: Data("\(id).\(timestamp).".utf8))
        hmac.update(data: body)
        return hmac.finalize()
    }

    /// The `webhook-signature` header value for one message: `v1,<base64 HMAC-SHA256>`.
    public func signature(webhookID: String, timestamp: Int64, body: some DataProtocol) -> String {
        "v1," + Data(authenticationCode(id: webhookID, timestamp: timestamp, body: body)).base64EncodedString()
    }

    /// Whether `mac` is the HMAC-SHA256 of the signed content, compared in constant time.
    func isValid(_ mac: Data, id: String, timestamp: Int64, body: some DataProtocol) -> Bool {
        var content = Data("\(id).\(timestamp).".utf8)
        content.append(contentsOf: body)
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: content, using: key)
    }
}
