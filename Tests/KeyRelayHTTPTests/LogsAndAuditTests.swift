import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeyRelay
import KeyRelayBus
import Logging
import Synchronization
import Testing
@testable import KeyRelayHTTP

/// Every record logged through the loggers it makes, at every level.
final class LogCapture: Sendable {
    struct Record: Sendable {
        var level: Logger.Level
        var label: String
        var message: String
        var metadata: [String: String]
        /// Everything the record says, for "this secret appears nowhere" checks.
        var text: String {
            "\(label) \(level) \(message) " + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        }
    }

    struct Handler: LogHandler {
        let label: String
        let capture: LogCapture
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            let record = Record(level: event.level, label: label, message: event.message.description,
                                metadata: merged.mapValues { "\($0)" })
            capture.records.withLock { $0.append(record) }
        }
    }

    let records = Mutex<[Record]>([])

    func logger(_ label: String) -> Logger {
        Logger(label: label) { label in Handler(label: label, capture: self) }
    }

    var all: [Record] { records.withLock { $0 } }
}

/// Lines a ``JSONLogHandler`` wrote.
final class LineBox: Sendable {
    let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

/// Audit events, kept in order as they are recorded.
final class AuditCollector: AuditSink {
    let events = Mutex<[AuditEvent]>([])
    func record(_ event: AuditEvent) { events.withLock { $0.append(event) } }
    var all: [AuditEvent] { events.withLock { $0 } }
}

/// The test API (``Harness``) with its loggers captured and its audit collected; the bus delivers the
/// `cloud-object-storage` service's notifications as signed webhooks to a port nobody listens on.
struct Observed {
    let harness: Harness
    let background: DispatcherBackground
    let logs: LogCapture
    let audit: AuditCollector

    static let webhookSecret = "whsec_" + Data((0..<32).map { UInt8($0 * 7 % 251) }).base64EncodedString()

    static func run(logger: ((LogCapture) -> Logger)? = nil, _ body: @Sendable @escaping (Observed) async throws -> Void) async throws {
        let logs = LogCapture()
        let audit = AuditCollector()
        let clock = ManualClock()
        var configuration = KeyRelayConfiguration()
        configuration.importTokenKeySize = 2048
        let engine = try await KeyRelayEngine.open(.inMemory, masterKey: .generate(), clock: clock, configuration: configuration,
                                                   logger: logs.logger("keyrelay.engine"))
        let background = DispatcherBackground(engine: engine)
        let transport = WebhookTransport(subscriptions: try WebhookSubscriptions(parsing: ["cloud-object-storage=http://127.0.0.1:9/hook"]),
                                         secret: try WebhookSecret(parsing: webhookSecret), clock: SystemClock(), timeout: .seconds(5))
        transport.subscribe(on: background.dispatcher.bus)
        let api = KeyProtectAPI(engine: engine, access: Harness.access(), devClock: clock, background: background, audit: audit,
                                logger: logger?(logs) ?? logs.logger("keyrelay.http"))
        let app = Application(router: api.makeRouter())
        do {
            try await app.test(.router) { client in
                let harness = Harness(clock: clock, engine: engine, api: api, client: client)
                try await body(Observed(harness: harness, background: background, logs: logs, audit: audit))
            }
        } catch {
            try? await transport.shutdown()
            throw error
        }
        try await transport.shutdown()
    }
}

@Suite("Logs and audit trail")
struct LogsAndAuditTests {
    @Test("a run with key material, a token and a webhook secret logs access and lifecycle lines and none of the secrets")
    func logsCarryNoSecrets() async throws {
        try await Observed.run { o in
            let h = o.harness
            let payload = Data((0..<32).map { UInt8(255 - $0) }).base64EncodedString()
            let created = try await h.createKey("imported-root", extra: ["payload": payload], headers: ["Correlation-Id": "corr-create-1"])
            let id = try #require(created["id"] as? String)
            #expect(try await h.register(id, bucket: "photos").status == .created)
            let dek = Data((0..<32).map { UInt8($0) }).base64EncodedString()
            let wrap = try await h.call(.post, "/api/v2/keys/\(id)/actions/wrap", json: ["plaintext": dek])
            #expect(wrap.status == .ok)
            let ciphertext = try #require(wrap.json["ciphertext"] as? String)
            let rotated = Data((0..<32).map { UInt8($0 * 3 % 256) }).base64EncodedString()
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/rotate", json: ["payload": rotated]).status == .noContent)
            // The rotation's notification goes to the webhook receiver, which is not there: a failed delivery.
            try await o.background.drain()

            let records = o.logs.all
            for secret in [payload, dek, ciphertext, rotated, Tokens.manager, Tokens.service, Observed.webhookSecret,
                           String(Observed.webhookSecret.dropFirst("whsec_".count))] {
                let leaks = records.filter { $0.text.contains(secret) }
                #expect(leaks.isEmpty, "a secret appears in \(leaks.map(\.text))")
            }
            // One access line per request, with the route template, status, principal, instance and correlation id.
            let access = records.filter { $0.label == "keyrelay.http" }
            #expect(access.count == 4)
            let create = try #require(access.first)
            #expect(create.level == .info)
            #expect(create.metadata["route"] == "/api/v2/keys")
            #expect(create.metadata["method"] == "POST")
            #expect(create.metadata["status"] == "201")
            #expect(create.metadata["principal"] == "manager")
            #expect(create.metadata["instance"] == instanceA)
            #expect(create.metadata["correlation_id"] == "corr-create-1")
            #expect(Double(create.metadata["duration_ms"] ?? "") != nil)
            #expect(access.map { $0.metadata["route"] } == ["/api/v2/keys", "/api/v2/keys/{id}/registrations/**",
                                                             "/api/v2/keys/{id}/actions/wrap", "/api/v2/keys/{id}/actions/rotate"])
            #expect(access[1].metadata["principal"] == "cos")
            // Lifecycle commands at info, with the key id, instance and correlation id.
            let engine = records.filter { $0.label == "keyrelay.engine" }
            let createLine = try #require(engine.first { $0.metadata["action"] == "create" })
            #expect(createLine.level == .info && createLine.metadata["key_id"] == id && createLine.metadata["outcome"] == "success")
            #expect(createLine.metadata["instance"] == instanceA && createLine.metadata["correlation_id"] == "corr-create-1")
            #expect(engine.contains { $0.metadata["action"] == "rotate" && $0.metadata["outcome"] == "success" })
            // The failed delivery, at warning, on the engine's logger (the dispatcher is the engine's).
            let delivery = try #require(engine.first { $0.metadata["outcome"] == "failed" && $0.metadata["event"] == "rotate" })
            #expect(delivery.level == .warning)
            #expect(delivery.metadata["key_id"] == id)
            #expect(delivery.metadata["resource_crn"] == Harness.bucketCRN("photos"))
        }
    }

    @Test("a generated correlation id is answered in Correlation-Id and logged; a refusal logs its status and code")
    func correlationAndRefusals() async throws {
        try await Observed.run { o in
            let h = o.harness
            let id = try #require(try await h.createKey("sync-key")["id"] as? String)
            let given = try await h.call(.post, "/api/v2/keys/\(id)/actions/sync", headers: ["Correlation-Id": "corr-sync-1"])
            #expect(given.status == .noContent)
            #expect(given.header("Correlation-Id") == "corr-sync-1")
            let refused = try await h.call(.post, "/api/v2/keys/\(id)/actions/sync")
            #expect(refused.status == .conflict)
            let generated = try #require(refused.header("Correlation-Id"))
            #expect(UUID(uuidString: generated) != nil)
            let access = o.logs.all.filter { $0.label == "keyrelay.http" }
            let line = try #require(access.last)
            #expect(line.metadata["status"] == "409" && line.metadata["correlation_id"] == generated)
            #expect(line.metadata["route"] == "/api/v2/keys/{id}/actions/sync")
            let engine = try #require(o.logs.all.last { $0.label == "keyrelay.engine" && $0.metadata["action"] == "sync" })
            #expect(engine.level == .warning && engine.metadata["code"] == "REQ_TOO_EARLY_ERR" && engine.metadata["correlation_id"] == generated)
            // An unknown path is one access line too.
            #expect(try await h.call(.get, "/api/v2/nothing-here").status == .notFound)
            #expect(o.logs.all.last { $0.label == "keyrelay.http" }?.metadata["route"] == "NotFound")
        }
    }

    @Test("--log-format json: every line is one JSON object with the level, message and metadata as fields")
    func jsonLines() async throws {
        let lines = LineBox()
        let json = { (_: LogCapture) -> Logger in
            Logger(label: "keyrelay.http") { label in JSONLogHandler(label: label) { line in lines.append(line) } }
        }
        try await Observed.run(logger: json) { o in
            _ = try await o.harness.createKey("json-key", headers: ["Correlation-Id": "corr-json-1"])
            #expect(try await o.harness.call(.get, "/api/v2/keys", token: "not-a-token").status == .unauthorized)
        }
        let written = lines.all
        #expect(written.count == 2)
        #expect(written.allSatisfy { $0.hasSuffix("\n") && $0.dropLast().contains("\n") == false })
        let objects = try written.map { try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        #expect(objects[0]["level"] as? String == "info")
        #expect(objects[0]["label"] as? String == "keyrelay.http")
        #expect(objects[0]["message"] as? String == "POST /api/v2/keys 201")
        #expect(objects[0]["route"] as? String == "/api/v2/keys")
        #expect(objects[0]["correlation_id"] as? String == "corr-json-1")
        #expect(objects[0]["status"] as? String == "201")
        #expect((objects[0]["time"] as? String).flatMap(Timestamp.parse) != nil)
        #expect(objects[1]["principal"] as? String == "-")
        #expect(objects[1]["status"] as? String == "401")
        #expect(!written.joined().contains("not-a-token"))
    }

    @Test("the JSON handler keeps nested metadata as JSON and never lets metadata replace a fixed field")
    func jsonHandlerShapes() throws {
        let lines = LineBox()
        var logger = Logger(label: "test") { label in JSONLogHandler(label: label) { line in lines.append(line) } }
        logger.logLevel = .debug
        logger[metadataKey: "replica"] = "a"
        logger.trace("hidden")
        logger.debug("shown \"quoted\"", metadata: ["level": "forged", "list": ["x", "y"], "map": ["k": "v"]])
        let written = lines.all
        #expect(written.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(written[0].utf8)) as? [String: Any])
        #expect(object["level"] as? String == "debug")
        #expect(object["message"] as? String == "shown \"quoted\"")
        #expect(object["replica"] as? String == "a")
        #expect(object["list"] as? [String] == ["x", "y"])
        #expect((object["map"] as? [String: String]) == ["k": "v"])
    }

    @Test("audit: a create succeeds, a second sync is refused with 409 and its reason, a bad token fails with 401")
    func auditTrail() async throws {
        try await Observed.run { o in
            let h = o.harness
            let id = try #require(try await h.createKey("audited", headers: ["Correlation-Id": "corr-a-1"])["id"] as? String)
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/sync").status == .noContent)
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/sync", headers: ["Correlation-Id": "corr-a-3"]).status == .conflict)
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/sync", token: "wrong-token-123").status == .unauthorized)
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/registrations/\(Harness.encode(Harness.bucketCRN("b")))",
                                     json: Harness.envelope(MediaTypes.registrationInput, [[:]]), token: Tokens.reader).status == .forbidden)
            // Not audited: the console's pages, unknown paths.
            _ = try await h.call(.get, "/ui/keys")
            _ = try await h.call(.get, "/api/v2/nothing-here")

            let events = o.audit.all
            #expect(events.map(\.action) == ["kms.secrets.create", "kms.secrets.sync", "kms.secrets.sync", "kms.secrets.sync",
                                             "kms.registrations.create"])
            let keyCRN = "crn:v1:bluemix:public:kms:us-south:a/keyrelay:\(instanceA):key:\(id)"

            let create = events[0]
            #expect(create.outcome == "success")
            #expect(create.reason == AuditEvent.Reason(reasonCode: 201, reasonType: "Created", reasonForFailure: nil))
            #expect(create.initiator.id == "manager")
            #expect(create.initiator.credential?.type == "token")
            #expect(create.target == AuditEvent.Target(id: keyCRN, typeURI: "kms/secrets"))
            #expect(create.correlationId == "corr-a-1")
            #expect(create.severity == "normal")
            #expect(create.requestData.instanceID == instanceA)
            #expect(create.date != nil)

            #expect(events[1].outcome == "success" && events[1].reason.reasonCode == 204)

            let refused = events[2]
            #expect(refused.outcome == "failure")
            #expect(refused.reason.reasonCode == 409 && refused.reason.reasonType == "Conflict")
            #expect(refused.reason.reasonForFailure?.hasSuffix("(REQ_TOO_EARLY_ERR)") == true)
            #expect(refused.responseData == AuditEvent.ResponseData(status: 409, errorCode: "REQ_TOO_EARLY_ERR"))
            #expect(refused.target.id == keyCRN)
            #expect(refused.correlationId == "corr-a-3")
            #expect(refused.severity == "warning")

            let unauthenticated = events[3]
            #expect(unauthenticated.outcome == "failure")
            #expect(unauthenticated.reason.reasonCode == 401)
            #expect(unauthenticated.responseData.errorCode == "UNAUTHORIZED_ERR")
            #expect(unauthenticated.initiator.id == "unknown")
            #expect(unauthenticated.initiator.credential?.type == "token")
            #expect(unauthenticated.severity == "critical")

            // Forbidden is reported with reason code 401, as Key Protect does; the status answered stays in responseData.
            let forbidden = events[4]
            #expect(forbidden.reason.reasonCode == 401 && forbidden.responseData.status == 403)
            #expect(forbidden.responseData.errorCode == "SERVICE_ONLY_ERR" && forbidden.initiator.id == "reader")

            let lines = events.map(\.jsonLine)
            #expect(!lines.joined().contains("wrong-token-123") && !lines.joined().contains(Tokens.manager))
        }
    }

    @Test("the route → action table covers every Key Protect route; the deprecated action form names its action")
    func actionTable() {
        #expect(AuditActions.action(method: .post, route: "/api/v2/keys/{id}/actions/sync") == "kms.secrets.sync")
        #expect(AuditActions.action(method: .delete, route: "/api/v2/keys/{id}") == "kms.secrets.delete")
        #expect(AuditActions.action(method: .post, route: "/api/v2/keys/{id}", query: "restore") == "kms.secrets.restore")
        #expect(AuditActions.action(method: .post, route: "/api/v2/keys/{id}", query: "bogus") == "kms.secrets.default")
        #expect(AuditActions.action(method: .delete, route: "/api/v2/kmip_adapters/{adapter}") == "kms.kmip-management.delete")
        #expect(AuditActions.action(method: .get, route: "/ui/keys") == nil)
        #expect(AuditActions.action(method: .get, route: nil) == nil)
        #expect(AuditActions.severity(action: "kms.secrets.delete", status: 200) == "critical")
        #expect(AuditActions.severity(action: "kms.secrets.create", status: 409) == "warning")
    }

    @Test("access-line durations are milliseconds with three decimals")
    func durations() {
        #expect(AccessLogMiddleware.milliseconds(.microseconds(12_034)) == "12.034")
        #expect(AccessLogMiddleware.milliseconds(.nanoseconds(5_900)) == "0.005")
        #expect(AccessLogMiddleware.milliseconds(.seconds(2)) == "2000.000")
        #expect(AccessLogMiddleware.milliseconds(.zero) == "0.000")
    }

    @Test("the audit file is appended to, created with mode 0600, and holds every event after finish")
    func auditFile() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let sample = AuditEvent(
            eventTime: "2026-01-01T00:00:00.000Z", action: "kms.secrets.create", outcome: "success", severity: "normal",
            reason: .init(reasonCode: 201, reasonType: "Created"),
            initiator: .init(id: "alice", typeURI: "service/security/account/user", credential: .init(type: "token"), host: .init(address: nil)),
            target: .init(id: "crn:v1:bluemix:public:kms:us-south:a/acct:inst:key:k1", typeURI: "kms/secrets"),
            correlationId: "c1", requestData: .init(requestURI: "/api/v2/keys", instanceID: "inst"), responseData: .init(status: 201))
        for round in 0..<2 {
            let trail = try AuditTrail.open(path, logger: Logger(label: "test"))
            for index in 0..<3 {
                var event = sample
                event.correlationId = "c\(round)-\(index)"
                trail.record(event)
            }
            await trail.finish()
        }
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let events = try text.split(separator: "\n").map { try JSONDecoder().decode(AuditEvent.self, from: Data($0.utf8)) }
        #expect(events.map(\.correlationId) == ["c0-0", "c0-1", "c0-2", "c1-0", "c1-1", "c1-2"])
        #expect(events.first?.target.id == sample.target.id)
        #expect(throws: KeyRelayError.self) { try AuditTrail.open("/nonexistent-dir/audit.jsonl", logger: Logger(label: "test")) }
    }
}
