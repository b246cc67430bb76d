import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeyRelay
@testable import KeyRelayHTTP

/// Tokens of the test access table.
enum Tokens {
    static let manager = "manager-token-0123456789"
    static let writer = "writer-token-0123456789"
    static let reader = "reader-token-0123456789"
    static let purger = "purger-token-0123456789"
    static let service = "service-token-0123456789"
    static let otherInstance = "other-instance-token-0123"
    /// A second Manager of instance A (dual authorization needs two principals).
    static let otherManager = "other-manager-token-0123456789"
}

let instanceA = "instance-a"
let instanceB = "instance-b"

/// A parsed answer.
struct Reply {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var text: String
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:] }
    var resources: [[String: Any]] { json["resources"] as? [[String: Any]] ?? [] }
    var first: [String: Any] { resources.first ?? [:] }
    var metadata: [String: Any] { json["metadata"] as? [String: Any] ?? [:] }
    var contentType: String? { headers[.contentType] }
    /// The first reason of an error body.
    var reason: [String: Any] { (first["reasons"] as? [[String: Any]])?.first ?? [:] }
    var code: String? { reason["code"] as? String }
    func header(_ name: String) -> String? { headers[HTTPField.Name(name)!] }
}

/// An API over an in-memory engine on a manual clock, and a client for it.
struct Harness {
    let clock: ManualClock
    let engine: KeyRelayEngine
    let api: KeyProtectAPI
    let client: any TestClientProtocol

    static func access() -> AccessControl {
        AccessControl(grants: [
            Tokens.manager: AccessGrant(principal: "manager", roles: [.manager], instances: [instanceA]),
            Tokens.writer: AccessGrant(principal: "writer", roles: [.writer], instances: [instanceA]),
            Tokens.reader: AccessGrant(principal: "reader", roles: [.reader], instances: [instanceA]),
            Tokens.purger: AccessGrant(principal: "purger", roles: [.keyPurge], instances: [instanceA]),
            Tokens.service: AccessGrant(principal: "cos", roles: [.service], instances: nil),
            Tokens.otherManager: AccessGrant(principal: "carol", roles: [.manager], instances: [instanceA]),
            Tokens.otherInstance: AccessGrant(principal: "bob", roles: [.manager, .keyPurge, .service], instances: [instanceB]),
        ])
    }

    /// Runs `body` against a fresh API. `devClock` enables `/api/v2/_dev/clock`.
    /// `simulation` runs the simulated COS and Cloud Databases services on the dispatcher's bus, as `serve` does.
    /// `configure` changes the engine's settings.
    static func run(devClock: Bool = true, simulation: Bool = false, metrics: ServerMetrics? = nil,
                    configure: (inout KeyRelayConfiguration) -> Void = { _ in },
                    _ body: @Sendable @escaping (Harness) async throws -> Void) async throws {
        let clock = ManualClock()
        var configuration = KeyRelayConfiguration()
        configuration.importTokenKeySize = 2048
        configure(&configuration)
        // In memory, or a fresh PostgreSQL database with KEYRELAY_TEST_BACKEND=postgres (scripts/test's second pass).
        let engine = try await KeyRelayEngine.open(try await .testDatabase(), masterKey: .generate(), clock: clock,
                                                   configuration: configuration)
        let background = DispatcherBackground(engine: engine)
        let simulated = simulation ? SimulatedCloud(engine: engine, bus: background.dispatcher.bus) : nil
        let api = KeyProtectAPI(engine: engine, access: access(), devClock: devClock ? clock : nil,
                                background: background, simulation: simulated, metrics: metrics)
        // The application `serve` runs; `.router` drives its responder without a socket (MalformedRequestTests use one).
        let app = try KeyRelayServer.makeApplication(api: api, host: "127.0.0.1", port: 0)
        try await app.test(.router) { client in
            try await body(Harness(clock: clock, engine: engine, api: api, client: client))
        }
    }

    @discardableResult
    func call(_ method: HTTPRequest.Method, _ path: String, json: Any? = nil, raw: String? = nil, token: String? = Tokens.manager,
              instance: String? = instanceA, headers extra: [String: String] = [:]) async throws -> Reply {
        var headers = HTTPFields()
        if let token { headers[.authorization] = "Bearer \(token)" }
        if let instance { headers[HTTPField.Name("Bluemix-Instance")!] = instance }
        for (name, value) in extra { headers[HTTPField.Name(name)!] = value }
        var buffer: ByteBuffer?
        if let json {
            buffer = ByteBuffer(data: try JSONSerialization.data(withJSONObject: json))
            headers[.contentType] = "application/json"
        } else if let raw {
            buffer = ByteBuffer(string: raw)
        }
        let response = try await client.execute(uri: path, method: method, headers: headers, body: buffer)
        return Reply(status: response.status, headers: response.headers, text: String(buffer: response.body))
    }

    static func envelope(_ type: String, _ resources: [[String: Any]], total: Int? = nil) -> [String: Any] {
        ["metadata": ["collectionType": type, "collectionTotal": total ?? resources.count], "resources": resources]
    }

    static func keyBody(_ name: String, extractable: Bool = false, extra: [String: Any] = [:]) -> [String: Any] {
        var resource: [String: Any] = ["type": MediaTypes.key, "name": name, "extractable": extractable]
        for (k, v) in extra { resource[k] = v }
        return envelope(MediaTypes.key, [resource])
    }

    /// Creates a key and returns its representation.
    func createKey(_ name: String, extractable: Bool = false, extra: [String: Any] = [:], token: String = Tokens.manager,
                   instance: String = instanceA, headers: [String: String] = [:]) async throws -> [String: Any] {
        let reply = try await call(.post, "/api/v2/keys", json: Self.keyBody(name, extractable: extractable, extra: extra),
                                   token: token, instance: instance, headers: headers)
        guard reply.status == .created else { throw TestFailure("create failed: \(reply.status) \(reply.text)") }
        return reply.first
    }

    static func bucketCRN(_ bucket: String) -> String {
        "crn:v1:bluemix:public:cloud-object-storage:global:a/acct:cos-instance:bucket:\(bucket)"
    }

    static func encode(_ crn: String) -> String {
        crn.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~")))!
    }

    /// Registers a bucket with a key through the service-to-service endpoint.
    @discardableResult
    func register(_ keyID: String, bucket: String, prevent: Bool = false, token: String = Tokens.service) async throws -> Reply {
        try await call(.post, "/api/v2/keys/\(keyID)/registrations/\(Self.encode(Self.bucketCRN(bucket)))",
                       json: Self.envelope(MediaTypes.registrationInput, [["description": "bucket \(bucket)", "preventKeyDeletion": prevent]]),
                       token: token)
    }

    func advance(_ text: String) async throws -> Reply {
        try await call(.post, "/api/v2/_dev/clock", json: ["advance": text], instance: nil)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
