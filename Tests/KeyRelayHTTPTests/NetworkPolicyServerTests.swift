import AsyncHTTPClient
import Foundation
import KeyRelay
import KeyRelayHTTP
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

/// `allowedIP` and `allowedNetwork` enforced by the real server (`KeyRelayServer.run`, a public and a private
/// listener on free ports), against the client's address as the socket reports it (issue #13 item 7).
@Suite struct NetworkPolicyServerTests {
    static let token = "network-policy-dev-token-0123456789"

    static func call(_ client: HTTPClient, _ method: HTTPMethod, _ url: String, instance: String, body: String? = nil) async throws -> (Int, String) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "authorization", value: "Bearer \(token)")
        request.headers.add(name: "bluemix-instance", value: instance)
        if let body {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await client.execute(request, timeout: .seconds(10))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        return (Int(response.status.code), text)
    }

    static func policy(_ type: String, _ attributes: String) -> String {
        #"{"metadata":{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":1},"resources":[{"policy_type":"\#(type)","policy_data":{"enabled":true,"attributes":\#(attributes)}}]}"#
    }

    @Test func theInstancePoliciesAdmitByClientAddressAndListener() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keyrelay-network-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var options = ServeOptions(databasePath: directory.appendingPathComponent("k.sqlite").path)
        options.port = 0
        options.privatePort = 0
        options.dev = true
        options.devToken = Self.token
        options.importTokenKeySize = 2048
        let printed = PrintedLines()
        let serving = options
        let server = Task { try await KeyRelayServer.run(serving, print: { line in printed.append(line) }) }
        defer { server.cancel() }
        let publicURL = "http://127.0.0.1:\(try await printed.port(after: "KeyRelay listening on "))"
        let privateURL = "http://127.0.0.1:\(try await printed.port(after: "private endpoint: "))"
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        do {
            // allowed_ip_port reports the private listener.
            let (status, text) = try await Self.call(client, .GET, "\(publicURL)/api/v2/instance/allowed_ip_port", instance: "guarded")
            #expect(status == 200 && text.contains("\"private_endpoint_port\":\(privateURL.split(separator: ":").last!)"), "\(text)")

            // A bad block is refused and changes nothing.
            let bad = try await Self.call(client, .PUT, "\(publicURL)/api/v2/instance/policies?policy=allowedIP", instance: "guarded",
                                          body: Self.policy("allowedIP", #"{"allowed_ip":["10.0.0.0/33"]}"#))
            #expect(bad.0 == 400 && bad.1.contains("INVALID_FIELD_ERR"), "\(bad.1)")
            #expect(try await Self.call(client, .GET, "\(publicURL)/api/v2/keys", instance: "guarded").0 == 200)

            // Only 10.0.0.0/8: this client (127.0.0.1) is refused, as an unauthorized caller is; other instances are not.
            let set = try await Self.call(client, .PUT, "\(publicURL)/api/v2/instance/policies?policy=allowedIP", instance: "guarded",
                                          body: Self.policy("allowedIP", #"{"allowed_ip":["10.0.0.0/8","2001:db8::/32"]}"#))
            #expect(set.0 == 204, "\(set.1)")
            let refused = try await Self.call(client, .GET, "\(publicURL)/api/v2/keys", instance: "guarded")
            #expect(refused.0 == 401 && refused.1 == #"{"errorMsg":"Unauthorized: The user does not have access to the specified resource"}"#, "\(refused.1)")
            #expect(try await Self.call(client, .GET, "\(privateURL)/api/v2/keys", instance: "guarded").0 == 401)
            #expect(try await Self.call(client, .GET, "\(publicURL)/api/v2/keys", instance: "open").0 == 200)

            // private-only on another instance: the public listener is refused, the private one admitted.
            let privateOnly = try await Self.call(client, .PUT, "\(publicURL)/api/v2/instance/policies?policy=allowedNetwork", instance: "inside",
                                                  body: Self.policy("allowedNetwork", #"{"allowed_network":"private-only"}"#))
            #expect(privateOnly.0 == 204, "\(privateOnly.1)")
            #expect(try await Self.call(client, .GET, "\(publicURL)/api/v2/keys", instance: "inside").0 == 401)
            #expect(try await Self.call(client, .GET, "\(privateURL)/api/v2/keys", instance: "inside").0 == 200)
            let wrongValue = try await Self.call(client, .PUT, "\(privateURL)/api/v2/instance/policies?policy=allowedNetwork", instance: "inside",
                                                 body: Self.policy("allowedNetwork", #"{"allowed_network":"everywhere"}"#))
            #expect(wrongValue.0 == 400 && wrongValue.1.contains("allowed_network"), "\(wrongValue.1)")
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
        server.cancel()
        _ = await server.result
    }
}

/// What a server prints, collected for the test.
final class PrintedLines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }

    /// The port at the end of the first line starting with `prefix`, waited for (bounded: 10 s).
    func port(after prefix: String) async throws -> Int {
        for _ in 0..<400 {
            if let line = lines.withLock({ $0.first { $0.hasPrefix(prefix) } }), let port = line.split(separator: ":").last.flatMap({ Int($0) }) {
                return port
            }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw CancellationError()
    }
}
