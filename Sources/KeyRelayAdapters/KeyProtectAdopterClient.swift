import AsyncHTTPClient
import Foundation
import KeyRelayBus
import KeyRelayCore
import NIOCore

/// A Key Protect call that failed without a Key Protect error envelope naming a known reason code: the service
/// could not be reached, timed out, or answered something that is not Key Protect's error body.
///
/// When the answer *is* Key Protect's error envelope with a known reason code, ``KeyProtectAdopterClient`` throws
/// a `KeyRelayError` instead (as ``AdopterClient`` promises), so the adapters treat local and remote refusals alike.
/// Never carries the bearer token or key material.
public struct KeyProtectClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was being done, e.g. "unwrap with key 1234…".
    public var operation: String
    /// The HTTP status, when an answer came.
    public var status: Int?
    /// The reason code of the error envelope (`reasons[0].code`), when there was one (unknown to KeyRelay).
    public var reasonCode: String?
    /// A human message: the envelope's reason message or `errorMsg`, or why no answer came.
    public var message: String

    public init(operation: String, status: Int?, reasonCode: String?, message: String) {
        self.operation = operation
        self.status = status
        self.reasonCode = reasonCode
        self.message = message
    }

    public var description: String {
        let code = reasonCode.map { "\($0) " } ?? ""
        let status = status.map { "(\($0)) " } ?? ""
        return "Key Protect \(operation) failed: \(code)\(status)\(message)"
    }
}

/// An ``AdopterClient`` that calls the Key Protect v2 API over HTTP (async-http-client), as a real associated
/// service does: `keyrelay simulate cos|databases` gives it to the same adapter code that runs in-process.
///
/// - register: `POST /api/v2/keys/{id}/registrations/{urlEncodedCRN}` (registration_input envelope);
/// - wrap / unwrap / rewrap: `POST /api/v2/keys/{id}/actions/wrap|unwrap|rewrap`;
/// - acknowledge: `POST /api/v2/event_ack` (event_acknowledge envelope);
/// - unregister: `DELETE /api/v2/keys/{id}/registrations/{urlEncodedCRN}`.
///
/// Every request carries `Authorization: Bearer <token>` and `Bluemix-Instance: <instance>`. An error answer in
/// Key Protect's envelope with a known reason code throws a `KeyRelayError` with that code and message; anything
/// else throws a ``KeyProtectClientError``. The token is never part of an error or a description.
///
/// The client owns no `HTTPClient` unless it created one: call ``shutdown()`` when done.
public final class KeyProtectAdopterClient: AdopterClient, CustomStringConvertible {
    /// The API's base URL, e.g. `http://127.0.0.1:8080` (without `/api/v2`).
    public let baseURL: URL
    /// The Key Protect instance (`Bluemix-Instance`).
    public let instanceID: String
    /// How long one call may take.
    public let timeout: Duration
    private let token: String
    private let client: HTTPClient
    private let ownsClient: Bool

    /// - Parameters:
    ///   - baseURL: the server, e.g. `http://127.0.0.1:8080`; a trailing `/api/v2` is accepted.
    ///   - token: the bearer token of a principal with the Service role (registrations, `event_ack`) and use.
    ///   - instanceID: the Key Protect instance the keys live in.
    ///   - timeout: how long one call may take (default 10 s).
    ///   - httpClient: a client to share, owned by the caller; nil to create (and own) one.
    public init(baseURL: URL, token: String, instanceID: String, timeout: Duration = .seconds(10),
                httpClient: HTTPClient? = nil) {
        var text = baseURL.absoluteString
        while text.hasSuffix("/") { text.removeLast() }
        if text.hasSuffix("/api/v2") { text.removeLast("/api/v2".count) }
        self.baseURL = URL(string: text) ?? baseURL
        self.token = token
        self.instanceID = instanceID
        self.timeout = timeout
        if let httpClient {
            client = httpClient
            ownsClient = false
        } else {
            var configuration = HTTPClient.Configuration()
            configuration.redirectConfiguration = .disallow
            configuration.connectionPool.retryConnectionEstablishment = false
            client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
            ownsClient = true
        }
    }

    /// Shuts the HTTP client down if this client created it.
    public func shutdown() async throws {
        if ownsClient { try await client.shutdown() }
    }

    /// The server and instance; never the token.
    public var description: String { "KeyProtectAdopterClient(\(baseURL.absoluteString), instance \(instanceID))" }

    // MARK: - AdopterClient

    public func registerResource(keyID: String, resourceCRN: String, preventKeyDeletion: Bool, description: String?) async throws {
        var resource: [String: Any] = ["preventKeyDeletion": preventKeyDeletion]
        if let description { resource["description"] = description }
        _ = try await call("registration of \(resourceCRN) with key \(keyID)", path: registrationPath(keyID, resourceCRN),
                           contentType: "application/vnd.ibm.kms.registration_input+json",
                           body: Self.envelope("application/vnd.ibm.kms.registration_input+json", resource))
    }

    public func generateDEK(keyID: String, aad: [String]) async throws -> GeneratedDEK {
        let op = "wrap with key \(keyID)"
        let answer = try await call(op, path: actionPath(keyID, "wrap"), contentType: "application/vnd.ibm.kms.key_action_wrap+json",
                                    body: aad.isEmpty ? [:] : ["aad": aad])
        guard let ciphertext = answer["ciphertext"] as? String, let plaintext = (answer["plaintext"] as? String).flatMap({ Data(base64Encoded: $0) }),
              let version = Self.version(answer["keyVersion"])
        else { throw malformed(op) }
        return GeneratedDEK(plaintext: plaintext, ciphertext: ciphertext, keyVersion: version)
    }

    public func unwrapDEK(keyID: String, ciphertext: String, aad: [String]) async throws -> UnwrappedDEK {
        let op = "unwrap with key \(keyID)"
        var body: [String: Any] = ["ciphertext": ciphertext]
        if !aad.isEmpty { body["aad"] = aad }
        let answer = try await call(op, path: actionPath(keyID, "unwrap"), contentType: "application/vnd.ibm.kms.key_action_unwrap+json", body: body)
        guard let plaintext = (answer["plaintext"] as? String).flatMap({ Data(base64Encoded: $0) }),
              let version = Self.version(answer["keyVersion"])
        else { throw malformed(op) }
        let rewrappedVersion = Self.version(answer["rewrappedKeyVersion"])
        return UnwrappedDEK(plaintext: plaintext, keyVersion: version,
                            rewrappedCiphertext: rewrappedVersion == nil ? nil : answer["ciphertext"] as? String,
                            rewrappedKeyVersion: rewrappedVersion)
    }

    public func rewrapDEK(keyID: String, ciphertext: String, aad: [String]) async throws -> RewrappedDEK {
        let op = "rewrap with key \(keyID)"
        var body: [String: Any] = ["ciphertext": ciphertext]
        if !aad.isEmpty { body["aad"] = aad }
        let answer = try await call(op, path: actionPath(keyID, "rewrap"), contentType: "application/vnd.ibm.kms.key_action_rewrap+json", body: body)
        guard let rewrapped = answer["ciphertext"] as? String,
              let version = Self.version(answer["rewrappedKeyVersion"]) ?? Self.version(answer["keyVersion"])
        else { throw malformed(op) }
        return RewrappedDEK(ciphertext: rewrapped, keyVersion: version)
    }

    public func acknowledge(_ ack: EventAcknowledgement) async throws {
        var resource: [String: Any] = [
            "eventId": ack.eventID, "adopterKeyState": ack.adopterKeyState.rawValue,
            "timestamp": Timestamp.format(ack.timestamp), "resourceCrn": ack.resourceCRN,
        ]
        if let version = ack.keyVersionID { resource["keyStateData"] = ["rewrappedKeyVersion": version] }
        if ack.deleteRegistration { resource["deleteRegistration"] = true }
        _ = try await call("event_ack of event \(ack.eventID)", path: "/api/v2/event_ack",
                           contentType: "application/vnd.ibm.kms.event_acknowledge+json",
                           body: Self.envelope("application/vnd.ibm.kms.event_acknowledge+json", resource))
    }

    public func unregisterResource(keyID: String, resourceCRN: String) async throws {
        _ = try await call("unregistration of \(resourceCRN) from key \(keyID)", method: "DELETE",
                           path: registrationPath(keyID, resourceCRN), contentType: nil, body: nil)
    }

    // MARK: - HTTP

    /// Characters left as they are in a path segment (RFC 3986 unreserved).
    static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    static func segment(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? text
    }

    func registrationPath(_ keyID: String, _ crn: String) -> String {
        "/api/v2/keys/\(Self.segment(keyID))/registrations/\(Self.segment(crn))"
    }

    func actionPath(_ keyID: String, _ action: String) -> String {
        "/api/v2/keys/\(Self.segment(keyID))/actions/\(action)"
    }

    static func envelope(_ type: String, _ resource: [String: Any]) -> [String: Any] {
        ["metadata": ["collectionType": type, "collectionTotal": 1], "resources": [resource]]
    }

    static func version(_ value: Any?) -> KeyVersion? {
        guard let object = value as? [String: Any], let id = object["id"] as? String else { return nil }
        let date = (object["creationDate"] as? String).flatMap(Timestamp.parse) ?? Date(timeIntervalSince1970: 0)
        return KeyVersion(id: id, creationDate: date)
    }

    func malformed(_ operation: String) -> KeyProtectClientError {
        KeyProtectClientError(operation: operation, status: 200, reasonCode: nil,
                              message: "the answer is not the JSON Key Protect sends (a field is missing)")
    }

    /// Sends one request; returns the JSON object answered (empty for 204), throws on any non-2xx answer.
    func call(_ operation: String, method: String = "POST", path: String, contentType: String?,
              body: [String: Any]?) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: baseURL.absoluteString + path)
        request.method = .init(rawValue: method)
        request.headers.add(name: "authorization", value: "Bearer \(token)")
        request.headers.add(name: "bluemix-instance", value: instanceID)
        request.headers.add(name: "accept", value: "application/json")
        request.headers.add(name: "user-agent", value: "KeyRelay-Adopter/1")
        if let body {
            let data = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes])
            request.headers.add(name: "content-type", value: contentType ?? "application/json")
            request.body = .bytes(ByteBuffer(bytes: data))
        }
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await client.execute(request, timeout: Self.timeAmount(timeout))
            bytes = try await response.body.collect(upTo: 4 * 1024 * 1024)
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
            throw KeyProtectClientError(operation: operation, status: nil, reasonCode: nil, message: "no answer from \(baseURL.absoluteString) within the timeout")
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw KeyProtectClientError(operation: operation, status: nil, reasonCode: nil,
                                        message: "\(baseURL.absoluteString) could not be reached: \(String(describing: error).prefix(300))")
        }
        let status = Int(response.status.code)
        let data = Data(bytes.readableBytesView)
        let object = data.isEmpty ? [:] : ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any])
        guard (200..<300).contains(status) else { throw Self.failure(operation, status: status, body: object) }
        guard let object else {
            throw KeyProtectClientError(operation: operation, status: status, reasonCode: nil, message: "the answer is not a JSON object")
        }
        return object
    }

    /// The error of a non-2xx answer: a `KeyRelayError` when the envelope names a known reason code, else a
    /// ``KeyProtectClientError``.
    static func failure(_ operation: String, status: Int, body: [String: Any]?) -> any Error {
        let resource = (body?["resources"] as? [[String: Any]])?.first
        let reason = (resource?["reasons"] as? [[String: Any]])?.first
        let errorMsg = resource?["errorMsg"] as? String ?? body?["errorMsg"] as? String
        let message = reason?["message"] as? String ?? errorMsg ?? "HTTP \(status)"
        let codeText = reason?["code"] as? String ?? (status == 401 ? ReasonCode.unauthorized.rawValue : nil)
        if let codeText, let code = ReasonCode(rawValue: codeText) {
            var target: ErrorTarget?
            if let t = reason?["target"] as? [String: Any], let type = (t["type"] as? String).flatMap(ErrorTarget.Kind.init(rawValue:)),
               let name = t["name"] as? String {
                target = ErrorTarget(type, name)
            }
            return KeyRelayError(code, message, operation: "Key Protect \(operation) failed", target: target)
        }
        return KeyProtectClientError(operation: operation, status: status, reasonCode: codeText, message: message)
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(min(max(seconds, 0), 86_400) * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
