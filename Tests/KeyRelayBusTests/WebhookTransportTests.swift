import Crypto
import Foundation
import KeyRelay
import KeyRelayBus
import Testing

/// Notifications, a secret and a clock for the webhook tests.
enum WebhookFixtures {
    static let start = Date(timeIntervalSince1970: 1_767_225_600)   // 2026-01-01T00:00:00Z
    /// 32 fixed bytes, so the independent HMAC below uses the same key.
    static let secretBytes = Data((0..<32).map { UInt8($0 &* 7 &+ 3) })
    static let secretText = "whsec_" + secretBytes.base64EncodedString()
    static let secret = try! WebhookSecret(parsing: secretText)
    static let bucketCRN = CRN.bucket(account: "acct", serviceInstance: "cos-1", bucket: "photos")

    static func notification(id: Int64 = 42, eventID: String = "7f0c2a8e-31d4-4c55-9a0e-5d6b2c1f9e10",
                             kind: LifecycleEventKind = .delete, state: KeyState = .destroyed,
                             resourceCRN: String = bucketCRN, service: String = ServiceTopic.objectStorage,
                             attempts: Int = 0) -> ResourceNotification {
        let event = LifecycleEvent(sequence: 17, id: eventID, instanceID: "instance-1", keyID: "key-1", keySequence: 4,
                                   kind: kind, keyState: state,
                                   keyVersion: KeyVersion(id: "version-2", creationDate: start.addingTimeInterval(-3600)),
                                   date: start.addingTimeInterval(-60), principal: "operator", correlationID: "corr-1")
        return ResourceNotification(id: id, event: event, resourceCRN: resourceCRN, serviceName: service, status: .pending,
                                    attempts: attempts, nextAttemptDate: start, lastError: nil, sentDate: nil, acknowledgedDate: nil)
    }

    /// A client shared by the tests that only sign messages (never shut down; it lives as long as the process).
    static let sharedClient = WebhookTransport.makeHTTPClient()

    /// A transport that is only asked to sign (its URL is never posted to).
    static func signer(clock: any KeyRelayClock, source: WebhookEventSource = .keyRelay) throws -> WebhookTransport {
        WebhookTransport(subscriptions: try subscriptions(URL(string: "http://127.0.0.1:1/")!), secret: secret, clock: clock,
                         source: source, httpClient: sharedClient)
    }

    static func subscriptions(_ url: URL, service: String = ServiceTopic.objectStorage) throws -> WebhookSubscriptions {
        var s = WebhookSubscriptions()
        try s.set(url, for: service)
        return s
    }
}

/// The CloudEvent as an outside receiver would decode it (independent of `WebhookEvent`).
private struct ReceivedCloudEvent: Decodable {
    struct Data: Decodable {
        var keyState: String
        var keyStateCode: Int
        var keyVersion: String
        var eventSequence: Int64
        var keySequence: Int
    }
    var specversion: String
    var id: String
    var source: String
    var type: String
    var subject: String
    var time: String
    var datacontenttype: String
    var resourcecrn: String
    var data: Data
}

/// Runs `body` with a receiver and a transport posting to it, and shuts both down whatever happens.
private func withReceiver(
    answer: WebhookReceiver.Answer = .status(204), timeout: Duration = .seconds(5), clock: ManualClock = ManualClock(start: WebhookFixtures.start),
    _ body: (WebhookReceiver, WebhookTransport, ManualClock) async throws -> Void
) async throws {
    let receiver = try await WebhookReceiver.start(answer: answer)
    let transport = WebhookTransport(subscriptions: try WebhookFixtures.subscriptions(receiver.url),
                                     secret: WebhookFixtures.secret, clock: clock, timeout: timeout)
    do {
        try await body(receiver, transport, clock)
    } catch {
        try? await transport.shutdown()
        try? await receiver.close()
        throw error
    }
    try await transport.shutdown()
    try await receiver.close()
}

@Suite("Webhook transport")
struct WebhookTransportTests {
    @Test func postsOneSignedCloudEventPerNotification() async throws {
        try await withReceiver { receiver, transport, clock in
            let n = WebhookFixtures.notification()
            try await transport.deliver(n)
            let requests = receiver.received
            try #require(requests.count == 1)
            let r = requests[0]
            #expect(r.method == "POST")
            #expect(r.path == "/hooks/kms?tenant=t1")
            #expect(r.headers["content-type"] == "application/cloudevents+json")

            let event = try JSONDecoder().decode(ReceivedCloudEvent.self, from: r.body)
            #expect(event.specversion == "1.0")
            #expect(event.id == n.event.id)
            #expect(event.source == "/keyrelay/instance-1")
            #expect(event.type == "com.ibm.kms.key.delete")
            #expect(event.subject == "key-1")
            #expect(event.time == "2025-12-31T23:59:00Z")
            #expect(event.datacontenttype == "application/json")
            #expect(event.resourcecrn == WebhookFixtures.bucketCRN)
            #expect(event.data.keyState == "destroyed")
            #expect(event.data.keyStateCode == 5)
            #expect(event.data.keyVersion == "version-2")
            #expect(event.data.eventSequence == 17)
            #expect(event.data.keySequence == 4)

            // Standard Webhooks headers, verified by the verifier and by an independent HMAC.
            let id = try #require(r.headers["webhook-id"])
            let timestamp = try #require(r.headers["webhook-timestamp"])
            let signature = try #require(r.headers["webhook-signature"])
            #expect(timestamp == String(Int64(clock.now().timeIntervalSince1970)))
            let expected = HMAC<SHA256>.authenticationCode(
                for: Data("\(id).\(timestamp).".utf8) + r.body, using: SymmetricKey(data: WebhookFixtures.secretBytes))
            #expect(signature == "v1," + Data(expected).base64EncodedString())
            try WebhookVerifier(secret: WebhookFixtures.secret, clock: clock).verify(headers: r.headers, body: r.body)

            // The round trip gives the same lifecycle event back (what a simulated service applies).
            let decoded = try WebhookVerifier(secret: WebhookFixtures.secret, clock: clock).verifiedEvent(headers: r.headers, body: r.body)
            let back = try decoded.lifecycleEvent()
            #expect(back.id == n.event.id && back.keyID == n.event.keyID && back.kind == .delete)
            #expect(back.keyState == .destroyed && back.keyVersion == n.event.keyVersion && back.keySequence == 4)
        }
    }

    /// The wire format receivers rely on, byte for byte: docs/webhooks.md shows this very request, signed with
    /// `WebhookFixtures.secretText`, so a reader can check their verifier against it.
    @Test func theBodyAndSignatureAreTheDocumentedOnes() throws {
        let message = try WebhookFixtures.signer(clock: ManualClock(start: WebhookFixtures.start))
            .message(for: WebhookFixtures.notification())
        let body = #"{"data":{"correlationId":"corr-1","eventSequence":17,"instanceId":"instance-1","keySequence":4,"keyState":"destroyed","keyStateCode":5,"keyVersion":"version-2","keyVersionCreationDate":"2025-12-31T23:00:00Z"},"datacontenttype":"application/json","id":"7f0c2a8e-31d4-4c55-9a0e-5d6b2c1f9e10","resourcecrn":"crn:v1:bluemix:public:cloud-object-storage:global:a/acct:cos-1:bucket:photos","source":"/keyrelay/instance-1","specversion":"1.0","subject":"key-1","time":"2025-12-31T23:59:00Z","type":"com.ibm.kms.key.delete"}"#
        #expect(String(decoding: message.body, as: UTF8.self) == body)
        #expect(WebhookFixtures.secretText == "whsec_AwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dw=")
        #expect(message.webhookID == "msg_7f0c2a8e-31d4-4c55-9a0e-5d6b2c1f9e10_42")
        #expect(message.timestamp == 1_767_225_600)
        #expect(message.signature == "v1,dwA4T2DxebLfOgUIsjznMn5Gg+KqzHAWpBvynh6vKx8=")
    }

    @Test func aReceiverRefusesAnEventThatIsNotALifecycleEvent() throws {
        var event = WebhookEvent(WebhookFixtures.notification())
        #expect(try event.lifecycleEvent().kind == .delete)
        event.type = "com.example.other"
        let error = #expect(throws: WebhookEventError.self) { try event.lifecycleEvent() }
        #expect(error?.message.contains("unknown type 'com.example.other'") == true)
        event = WebhookEvent(WebhookFixtures.notification())
        event.data.keyStateCode = 4
        #expect(throws: WebhookEventError.self) { try event.lifecycleEvent() }
    }

    @Test func aSyncReEmissionIsTypedSyncAndCarriesTheCurrentState() async throws {
        try await withReceiver { receiver, transport, _ in
            try await transport.deliver(WebhookFixtures.notification(kind: .sync, state: .suspended))
            let event = try JSONDecoder().decode(ReceivedCloudEvent.self, from: try #require(receiver.received.first).body)
            #expect(event.type == "com.ibm.kms.key.sync")
            #expect(event.type == CloudEventNames.type(of: .sync))
            #expect(event.data.keyState == "suspended" && event.data.keyStateCode == 2)
        }
    }

    @Test func theSourceCanBeTheInstanceCRN() throws {
        let transport = try WebhookFixtures.signer(clock: ManualClock(), source: .kmsInstanceCRN(region: "us-south", account: "acct"))
        let body = try transport.message(for: WebhookFixtures.notification()).body
        let event = try JSONDecoder().decode(ReceivedCloudEvent.self, from: body)
        #expect(event.source == "crn:v1:bluemix:public:kms:us-south:a/acct:instance-1::")
    }

    @Test func webhookIDIsStableAcrossRetriesAndDistinctPerNotification() async throws {
        try await withReceiver { receiver, transport, clock in
            let first = WebhookFixtures.notification(id: 42)
            try await transport.deliver(first)
            clock.advance(by: 30)
            try await transport.deliver(WebhookFixtures.notification(id: 42, attempts: 1))   // the retry
            let other = WebhookFixtures.notification(
                id: 43, resourceCRN: CRN.bucket(account: "acct", serviceInstance: "cos-1", bucket: "videos"))
            try await transport.deliver(other)
            let ids = receiver.received.map { $0.headers["webhook-id"] }
            try #require(ids.count == 3)
            #expect(ids[0] == ids[1])
            #expect(ids[0] != ids[2])
            #expect(ids[0] == WebhookTransport.webhookID(for: first))
            // A retry is signed anew at its own time.
            let stamps = receiver.received.map { $0.headers["webhook-timestamp"] }
            #expect(stamps[0] != stamps[1])
        }
    }

    @Test(arguments: [200, 202, 204, 299])
    func anyTwoHundredIsSent(status: Int) async throws {
        try await withReceiver(answer: .status(status, body: "ok")) { _, transport, _ in
            try await transport.deliver(WebhookFixtures.notification())
        }
    }

    @Test(arguments: [400, 401, 404, 500, 503])
    func anErrorStatusIsAFailedAttempt(status: Int) async throws {
        try await withReceiver(answer: .status(status, body: "signature rejected\n")) { _, transport, _ in
            let error = await #expect(throws: WebhookDeliveryError.self) {
                try await transport.deliver(WebhookFixtures.notification())
            }
            #expect(error?.reason == .status(status, detail: "signature rejected"))
            let text = error.map(String.init(describing:)) ?? ""
            #expect(text.contains("answered \(status)"))
            #expect(!text.contains("tenant=t1"), "the URL's query stays out of errors")
        }
    }

    @Test func aRedirectIsNotFollowed() async throws {
        try await withReceiver { receiver, transport, _ in
            receiver.answer(.redirect(to: "http://127.0.0.1:\(receiver.port)/elsewhere"))
            let error = await #expect(throws: WebhookDeliveryError.self) {
                try await transport.deliver(WebhookFixtures.notification())
            }
            #expect(error?.reason == .redirect(302, location: "http://127.0.0.1:\(receiver.port)/elsewhere"))
            #expect(receiver.received.count == 1, "the redirect target was not asked")
        }
    }

    @Test func aReceiverThatNeverAnswersTimesOut() async throws {
        try await withReceiver(answer: .never, timeout: .milliseconds(200)) { receiver, transport, _ in
            let error = await #expect(throws: WebhookDeliveryError.self) {
                try await transport.deliver(WebhookFixtures.notification())
            }
            #expect(error?.reason == .timedOut(.milliseconds(200)))
            #expect(receiver.received.count == 1)
            #expect(error.map(String.init(describing:))?.contains("within 200 ms") == true)
        }
    }

    /// Every hand-over in flight has a connection of its own: 16 deliveries at once to a receiver that holds each
    /// request all reach it. With async-http-client's default of 8 connections per host, 8 would wait in the
    /// client's queue, within their own timeout, and time out never sent.
    @Test func asManyConnectionsAsHandOversInFlight() async throws {
        let receiver = try await WebhookReceiver.start(answer: .never)
        let transport = WebhookTransport(subscriptions: try WebhookFixtures.subscriptions(receiver.url), secret: WebhookFixtures.secret,
                                         clock: ManualClock(start: WebhookFixtures.start), timeout: .seconds(5),
                                         connectionsPerReceiver: 16)
        await withTaskGroup(of: Void.self) { group in
            for id in 1...16 {
                group.addTask {
                    let n = WebhookFixtures.notification(id: Int64(id),
                                                         resourceCRN: CRN.bucket(account: "acct", serviceInstance: "cos-1", bucket: "b\(id)"))
                    _ = try? await transport.deliver(n)
                }
            }
        }
        #expect(receiver.received.count == 16, "\(receiver.received.count) of 16 deliveries reached the receiver")
        try await transport.shutdown()
        try await receiver.close()
    }

    @Test func aRefusedConnectionIsAFailedAttempt() async throws {
        let port = try await WebhookReceiver.closedPort()
        let transport = WebhookTransport(
            subscriptions: try WebhookFixtures.subscriptions(URL(string: "http://127.0.0.1:\(port)/hooks")!),
            secret: WebhookFixtures.secret, clock: ManualClock(), timeout: .seconds(30))
        let error = await #expect(throws: WebhookDeliveryError.self) {
            try await transport.deliver(WebhookFixtures.notification())
        }
        try await transport.shutdown()
        // Unreachable, not timed out: the refusal ended the attempt at once (no timing assertion on a shared machine).
        guard case .unreachable? = error?.reason else {
            Issue.record("expected unreachable, got \(String(describing: error))")
            return
        }
    }

    @Test func aServiceWithoutSubscriptionFails() async throws {
        try await withReceiver { receiver, transport, _ in
            let error = await #expect(throws: WebhookDeliveryError.self) {
                try await transport.deliver(WebhookFixtures.notification(service: ServiceTopic.postgreSQL))
            }
            #expect(error?.reason == .noSubscription)
            #expect(receiver.received.isEmpty)
        }
    }

    @Test func neitherTheSecretNorKeyMaterialIsInTheMessage() throws {
        let transport = try WebhookFixtures.signer(clock: ManualClock())
        let message = try transport.message(for: WebhookFixtures.notification())
        let everything = String(decoding: message.body, as: UTF8.self) + message.headers.description
        #expect(!everything.contains(WebhookFixtures.secretBytes.base64EncodedString()))
        #expect(!everything.contains("operator"), "the principal is not sent")
        #expect("\(WebhookFixtures.secret)" == "whsec_<redacted>")
    }
}

@Suite("Webhook verifier")
struct WebhookVerifierTests {
    private func signed(at clock: ManualClock) throws -> WebhookMessage {
        try WebhookFixtures.signer(clock: clock).message(for: WebhookFixtures.notification())
    }

    @Test func acceptsAFreshSignedMessage() throws {
        let clock = ManualClock(start: WebhookFixtures.start)
        let m = try signed(at: clock)
        let verifier = WebhookVerifier(secret: WebhookFixtures.secret, clock: clock)
        try verifier.verify(webhookID: m.webhookID, timestamp: String(m.timestamp), signature: m.signature, body: m.body)
        clock.advance(by: 300)
        try verifier.verify(headers: m.headers, body: m.body)
    }

    @Test func rejectsATamperedBody() throws {
        let clock = ManualClock(start: WebhookFixtures.start)
        let m = try signed(at: clock)
        var body = m.body
        body[body.count / 2] ^= 0x01
        #expect(throws: WebhookVerificationError.noMatchingSignature) {
            try WebhookVerifier(secret: WebhookFixtures.secret, clock: clock).verify(headers: m.headers, body: body)
        }
        // Nor may the id or timestamp be changed under the same signature.
        var headers = m.headers
        headers["webhook-id"] = "msg_other"
        #expect(throws: WebhookVerificationError.noMatchingSignature) {
            try WebhookVerifier(secret: WebhookFixtures.secret, clock: clock).verify(headers: headers, body: m.body)
        }
    }

    @Test func rejectsAStaleOrFutureTimestamp() throws {
        let clock = ManualClock(start: WebhookFixtures.start)
        let m = try signed(at: clock)
        let verifier = WebhookVerifier(secret: WebhookFixtures.secret, clock: clock)
        clock.advance(by: 301)
        #expect(throws: WebhookVerificationError.timestampOutOfTolerance(secondsFromNow: -301)) {
            try verifier.verify(headers: m.headers, body: m.body)
        }
        let early = ManualClock(start: WebhookFixtures.start.addingTimeInterval(-301))
        #expect(throws: WebhookVerificationError.timestampOutOfTolerance(secondsFromNow: 301)) {
            try WebhookVerifier(secret: WebhookFixtures.secret, clock: early).verify(headers: m.headers, body: m.body)
        }
    }

    @Test func rejectsTheWrongSecretAndMissingOrMalformedHeaders() throws {
        let clock = ManualClock(start: WebhookFixtures.start)
        let m = try signed(at: clock)
        let other = WebhookVerifier(secret: WebhookSecret.generate(), clock: clock)
        #expect(throws: WebhookVerificationError.noMatchingSignature) { try other.verify(headers: m.headers, body: m.body) }
        let verifier = WebhookVerifier(secret: WebhookFixtures.secret, clock: clock)
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            var headers = m.headers
            headers[name] = nil
            #expect(throws: WebhookVerificationError.missingHeader(name)) { try verifier.verify(headers: headers, body: m.body) }
        }
        var headers = m.headers
        headers["webhook-timestamp"] = "soon"
        #expect(throws: WebhookVerificationError.malformedTimestamp) { try verifier.verify(headers: headers, body: m.body) }
        headers = m.headers
        headers["webhook-signature"] = "v1,not-base64!!"
        #expect(throws: WebhookVerificationError.noMatchingSignature) { try verifier.verify(headers: headers, body: m.body) }
    }

    @Test func acceptsOneMatchingSignatureAmongSeveral() throws {
        let clock = ManualClock(start: WebhookFixtures.start)
        let m = try signed(at: clock)
        var headers = m.headers
        headers["Webhook-Signature"] = "v1,\(Data(repeating: 0, count: 32).base64EncodedString()) \(m.signature)"
        headers["webhook-signature"] = nil
        try WebhookVerifier(secret: WebhookFixtures.secret, clock: clock).verify(headers: headers, body: m.body)
    }
}
