import Foundation
import Hummingbird
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Operating the built `keyrelay serve` (issue #14 item 5): SIGHUP re-reads the access file, SIGTERM stops it
/// gracefully with a delivery in flight, and the environment configures it. Every wait is bounded.
@Suite(.serialized) struct OperationsCommandTests {
    static func temporaryDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keyrelay-ops-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    static func masterKey() -> String {
        var generator = SystemRandomNumberGenerator()
        return Data((0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }).base64EncodedString()
    }

    static func accessFile(token: String) -> String {
        #"{"tokens": {"\#(token)": {"principal": "alice", "role": "Manager", "instances": "*"}}}"#
    }

    static func listKeys(_ url: String, token: String) async throws -> Int {
        try await send("GET", url + "/api/v2/keys", headers: ["authorization": "Bearer \(token)", "bluemix-instance": "ops-instance"]).status
    }

    @Test func sighupReloadsTheAccessFileAndABadFileKeepsTheOldOne() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let tokenA = "token-a-0123456789abcdef", tokenB = "token-b-0123456789abcdef"
        let access = directory.appendingPathComponent("access.json")
        try Self.accessFile(token: tokenA).write(to: access, atomically: true, encoding: .utf8)
        // Configured through the environment only (KEYRELAY_DB, KEYRELAY_PORT, KEYRELAY_ACCESS).
        let serve = try KeyrelayChild("serve", ["serve"], environment: [
            "KEYRELAY_MASTER_KEY": Self.masterKey(), "KEYRELAY_DB": directory.appendingPathComponent("k.sqlite").path,
            "KEYRELAY_PORT": "0", "KEYRELAY_ACCESS": access.path,
        ])
        defer { serve.stop() }
        let url = try await serve.waitForURL(after: "KeyRelay listening on ")
        #expect(try await Self.listKeys(url, token: tokenA) == 200)
        #expect(try await Self.listKeys(url, token: tokenB) == 401)

        try Self.accessFile(token: tokenB).write(to: access, atomically: true, encoding: .utf8)
        serve.send(signal: SIGHUP)
        _ = try await eventually("token B to be accepted after SIGHUP\n\(serve.printed)", timeout: .seconds(15)) {
            try await Self.listKeys(url, token: tokenB) == 200 ? true : nil
        }
        #expect(try await Self.listKeys(url, token: tokenA) == 401)

        // A bad file: the reason is logged at error, and the access in force stays.
        try "{ not json".write(to: access, atomically: true, encoding: .utf8)
        serve.send(signal: SIGHUP)
        _ = try await eventually("the bad access file to be reported\n\(serve.printed)", timeout: .seconds(15)) {
            serve.printed.contains("kept the access in force") ? true : nil
        }
        #expect(serve.printed.contains("error"))
        #expect(try await Self.listKeys(url, token: tokenB) == 200)
        #expect(try await Self.listKeys(url, token: tokenA) == 401)
    }

    @Test func theDeliveryConcurrencyIsRangeCheckedFromTheFlagAndTheVariable() async throws {
        let flag = try KeyrelayChild("serve", ["serve", "--dev", "--delivery-concurrency", "0"])
        #expect(try await flag.waitForExit(timeout: .seconds(30)).map { $0 != 0 } == true)
        #expect(flag.printed.contains("--delivery-concurrency must be from 1 to 1024, not 0"))
        let variable = try KeyrelayChild("serve", ["serve", "--dev"], environment: ["KEYRELAY_DELIVERY_CONCURRENCY": "5000"])
        #expect(try await variable.waitForExit(timeout: .seconds(30)).map { $0 != 0 } == true)
        #expect(variable.printed.contains("KEYRELAY_DELIVERY_CONCURRENCY must be from 1 to 1024, not '5000'"))
    }

    @Test func aBadEnvironmentValueIsAnErrorNamingTheVariable() async throws {
        let serve = try KeyrelayChild("serve", ["serve", "--dev"], environment: ["KEYRELAY_PORT": "eighty"])
        let status = try await serve.waitForExit(timeout: .seconds(30))
        #expect(status != nil && status != 0)
        #expect(serve.printed.contains("KEYRELAY_PORT must be from 1 to 65535 (or 0 for any free port), not 'eighty'"))
        #expect(serve.printed.contains("'eighty'"))

        // The flag wins over its variable: the bad variable is not even read.
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let flagged = try KeyrelayChild("serve", ["serve", "--dev", "--port", "0"], environment: [
            "KEYRELAY_PORT": "eighty", "KEYRELAY_DB": directory.appendingPathComponent("env.sqlite").path,
        ])
        defer { flagged.stop() }
        _ = try await flagged.waitForURL(after: "KeyRelay listening on ")
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("env.sqlite").path), "KEYRELAY_DB was used")
    }

    @Test func sigtermWithADeliveryInFlightFinishesItThenExitsZero() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // A receiver that holds each webhook's answer until the test has sent SIGTERM, then answers 204.
        let receiver = HoldingReceiver()
        let receiverPort = try await receiver.start()
        defer { receiver.stop() }

        let secret = directory.appendingPathComponent("webhook-secret")
        try (makeWebhookSecret() + "\n").write(to: secret, atomically: true, encoding: .utf8)
        let database = directory.appendingPathComponent("k.sqlite").path
        let token = "shutdown-dev-token-0123456789"
        let serve = try KeyrelayChild("serve", [
            "serve", "--dev", "--dev-token", token, "--db", database, "--port", "0",
            "--webhook", "cloud-object-storage=http://127.0.0.1:\(receiverPort)/webhooks", "--webhook-secret-file", secret.path,
            "--webhook-timeout", "30s",
        ])
        defer { serve.stop() }
        let url = try await serve.waitForURL(after: "KeyRelay listening on ")
        // In dev mode there is no access file: SIGHUP is logged and ignored, it does not end the server.
        serve.send(signal: SIGHUP)
        _ = try await eventually("the dev-mode SIGHUP to be logged\n\(serve.printed)", timeout: .seconds(15)) {
            serve.printed.contains("no --access file to re-read") ? true : nil
        }
        let headers = ["authorization": "Bearer \(token)", "bluemix-instance": "ops-instance"]
        let created = try await send("POST", url + "/api/v2/keys", headers: headers, json: [
            "metadata": ["collectionType": "application/vnd.ibm.kms.key+json", "collectionTotal": 1],
            "resources": [["type": "application/vnd.ibm.kms.key+json", "name": "in-flight", "extractable": false]],
        ])
        let keyID = try #require((created.json["resources"] as? [[String: Any]])?.first?["id"] as? String, "\(created.text)")
        let crn = "crn:v1:bluemix:public:cloud-object-storage:global:a/acct:cos-instance:bucket:in-flight"
        let encoded = crn.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let registered = try await send("POST", url + "/api/v2/keys/\(keyID)/registrations/\(encoded)",
                                        headers: headers, json: [
                                            "metadata": ["collectionType": "application/vnd.ibm.kms.registration_input+json", "collectionTotal": 1],
                                            "resources": [["preventKeyDeletion": false]],
                                        ])
        #expect(registered.status == 201, "\(registered.text)")
        // Disabling the key notifies the bucket: the dispatcher posts the webhook, which the receiver holds.
        let disabled = try await send("POST", url + "/api/v2/keys/\(keyID)/actions/disable", headers: headers)
        #expect(disabled.status == 204, "\(disabled.text)")
        _ = try await eventually("the webhook to reach the receiver\n\(serve.printed)", timeout: .seconds(30)) {
            receiver.arrivals > 0 ? true : nil
        }

        serve.send(signal: SIGTERM)
        _ = try await eventually("serve to announce its shutdown\n\(serve.printed)", timeout: .seconds(15)) {
            serve.printed.contains("shutting down") ? true : nil
        }
        // Still in flight: serve must wait for the answer rather than exit.
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await serve.waitForExit(timeout: .milliseconds(1)) == nil, "serve exited with the delivery in flight")
        receiver.release()
        let status = try await serve.waitForExit(timeout: .seconds(30))
        #expect(status == 0, "\(serve.printed)")
        #expect(serve.printed.contains("KeyRelay stopped"))

        // Reopened, the database holds the notification as sent (awaiting acknowledgement), not pending.
        let check = try KeyrelayChild("status", ["status", "--db", database, "--master-key-file", database + ".master-key",
                                                "--instance", "ops-instance", "--json"])
        #expect(try await check.waitForExit(timeout: .seconds(30)) == 0, "\(check.printed)")
        let json = try JSONSerialization.jsonObject(with: Data(check.printed.utf8)) as? [String: Any]
        let key = try #require((json?["keys"] as? [[String: Any]])?.first { $0["id"] as? String == keyID }, "\(check.printed)")
        #expect((key["sent"] as? NSNumber)?.intValue == 1, "\(check.printed)")
        #expect((key["pending"] as? NSNumber)?.intValue == 0, "\(check.printed)")
    }
}

/// A webhook receiver on Hummingbird that counts arrivals and holds every answer until ``release()``.
final class HoldingReceiver: Sendable {
    private struct State {
        var arrivals = 0
        var released = false
        var task: Task<Void, any Error>?
    }
    private let state = Mutex(State())

    var arrivals: Int { state.withLock { $0.arrivals } }
    func release() { state.withLock { $0.released = true } }

    /// Starts listening on 127.0.0.1 and a free port; returns the port.
    func start() async throws -> Int {
        let router = Router()
        router.post("/webhooks") { [self] _, _ -> HTTPResponse.Status in
            state.withLock { $0.arrivals += 1 }
            // Bounded: at most 30 s, then answer anyway.
            for _ in 0..<1500 where !state.withLock({ $0.released }) { try await Task.sleep(for: .milliseconds(20)) }
            return .noContent
        }
        let (port, task) = try await startLocalReceiver(router)
        state.withLock { $0.task = task }
        return port
    }

    func stop() { state.withLock { $0.task?.cancel() } }
}
