import Foundation
import KeyRelay
import KeyRelayBus
import Testing

@Suite("Webhook configuration")
struct WebhookConfigurationTests {
    @Test func parsesServiceEqualsURLEntries() throws {
        let s = try WebhookSubscriptions(parsing: [
            "cloud-object-storage=http://127.0.0.1:8081/webhooks",
            " databases-for-postgresql=https://db.example.test/kms?token=abc ",
        ])
        #expect(s.services == ["cloud-object-storage", "databases-for-postgresql"])
        #expect(s["cloud-object-storage"] == URL(string: "http://127.0.0.1:8081/webhooks"))
        #expect(s["databases-for-postgresql"]?.query == "token=abc")
        #expect(s["unknown"] == nil)
        #expect(s.description == "cloud-object-storage=http://127.0.0.1:8081/webhooks, databases-for-postgresql=https://db.example.test/kms?…")
    }

    @Test func parsesTheEnvironmentForm() throws {
        let s = try WebhookSubscriptions(environmentValue: "cloud-object-storage=http://a.test/h,databases-for-postgresql=http://b.test/h  ")
        #expect(s.services == ["cloud-object-storage", "databases-for-postgresql"])
        #expect(try WebhookSubscriptions(environmentValue: "").isEmpty)
        #expect(try WebhookSubscriptions(environmentValue: "a=http://a.test/ \n b=http://b.test/").services == ["a", "b"])
    }

    @Test(arguments: [
        ("cloud-object-storage", "write it as SERVICE=URL"),
        ("=http://a.test/", "names no service"),
        ("Cloud Storage=http://a.test/", "is not a CRN service name"),
        ("cos=", "is empty"),
        ("cos=ftp://a.test/", "must start with http:// or https://"),
        ("cos=http://", "names no host"),
        ("cos=not a url", "is not"),
        ("cos=http://user:pw@a.test/", "user name or password"),
        ("cos=http://a.test/#x", "fragment"),
    ])
    func refusesBadEntriesClearly(entry: String, says: String) {
        let error = #expect(throws: WebhookConfigurationError.self) { try WebhookSubscriptions(parsing: [entry]) }
        #expect(error?.message.contains(says) == true, "\(error?.message ?? "no error")")
        #expect(error?.message.contains("pw") != true, "a password is never repeated")
    }

    @Test func refusesAServiceGivenTwice() {
        let error = #expect(throws: WebhookConfigurationError.self) {
            try WebhookSubscriptions(parsing: ["cos=http://a.test/", "cos=http://b.test/"])
        }
        #expect(error?.message.contains("given twice") == true)
    }

    @Test func parsesAStandardWebhooksSecret() throws {
        let secret = try WebhookSecret(parsing: WebhookFixtures.secretText + "\n")
        #expect(secret == WebhookFixtures.secret)
        #expect(secret.standardWebhooksText == WebhookFixtures.secretText)
        #expect(secret != WebhookSecret.generate())
        #expect(try WebhookSecret(parsing: WebhookSecret.generate().standardWebhooksText) != secret)
    }

    @Test func neverPrintsTheSecret() {
        let secret = WebhookFixtures.secret
        let shown = ["\(secret)", String(describing: secret), String(reflecting: secret), "\([secret])"]
        for text in shown {
            #expect(!text.contains(WebhookFixtures.secretBytes.base64EncodedString()))
            #expect(text.contains("redacted"))
        }
    }

    @Test(arguments: [
        ("c2VjcmV0", "must start with 'whsec_'"),
        ("whsec_%%%", "not base64"),
        ("whsec_" + Data("short".utf8).base64EncodedString(), "has 5 bytes"),
        ("whsec_" + Data(repeating: 1, count: 65).base64EncodedString(), "has 65 bytes"),
    ])
    func refusesBadSecretsClearly(text: String, says: String) {
        let error = #expect(throws: WebhookConfigurationError.self) { try WebhookSecret(parsing: text) }
        #expect(error?.message.contains(says) == true, "\(error?.message ?? "no error")")
    }
}

@Suite("Webhook delivery through the dispatcher")
struct WebhookDispatcherTests {
    /// The engine's own dispatcher, with the webhook transport subscribed for COS: a 500 is a failed attempt
    /// retried with backoff, the next 2xx marks the notification sent, and its webhook-id did not change.
    @Test(arguments: DeliveryPolicy.Scheduling.explicit)
    func failedAttemptsAreRetriedUntilTheReceiverAnswers2xx(_ scheduling: DeliveryPolicy.Scheduling) async throws {
        let h = try await Harness(policy: DeliveryPolicy(maxAttempts: 5, jitter: .none, scheduling: scheduling), subscribe: false)
        let receiver = try await WebhookReceiver.start(answer: .status(500, body: "not now"))
        let transport = WebhookTransport(subscriptions: try WebhookFixtures.subscriptions(receiver.url),
                                         secret: WebhookFixtures.secret, clock: h.clock, timeout: .seconds(5))
        do {
            transport.subscribe(on: h.bus)
            #expect(h.bus.topics == [ServiceTopic.objectStorage])
            let key = try await h.key(registering: [h.bucket("photos")])
            _ = try await h.engine.disable(key.id, context: h.ops)
            try await h.dispatcher.drain()

            var log = await h.dispatcher.log
            guard case .failed(let error, let retryAt)? = log.last?.result else {
                Issue.record("expected a failed attempt, got \(log)")
                throw CancellationError()
            }
            #expect(error.contains("answered 500: not now"))
            #expect(retryAt == h.at(1))

            receiver.answer(.status(204))
            try await h.dispatcher.advance(h.clock, by: 1)
            log = await h.dispatcher.log
            #expect(log.last?.result == .delivered(times: 1))
            let notes = try await h.notifications(key.id)
            #expect(notes.last?.status == .sent)

            let requests = receiver.received
            #expect(requests.count == 2)
            #expect(Set(requests.map { $0.headers["webhook-id"] }).count == 1, "the retry kept its webhook-id")
            let event = try WebhookEvent.decode(requests[1].body)
            #expect(event.type == "com.ibm.kms.key.disable" && event.subject == key.id && event.data.keyStateCode == 2)
            #expect(event.id == notes.last?.event.id)
        } catch {
            try? await transport.shutdown()
            try? await receiver.close()
            throw error
        }
        try await transport.shutdown()
        try await receiver.close()
    }

    /// A receiver slower than the timeout: each attempt times out, the notification ends dead and counted; once
    /// the receiver answers again, one sync (after its cooldown) reaches it and the acknowledgement ends the drift.
    @Test(arguments: DeliveryPolicy.Scheduling.explicit)
    func aReceiverSlowerThanTheTimeoutEndsDeadAndOneSyncConverges(_ scheduling: DeliveryPolicy.Scheduling) async throws {
        let h = try await Harness(policy: DeliveryPolicy(maxAttempts: 2, jitter: .none, scheduling: scheduling), subscribe: false)
        let receiver = try await WebhookReceiver.start(answer: .never)
        let transport = WebhookTransport(subscriptions: try WebhookFixtures.subscriptions(receiver.url),
                                         secret: WebhookFixtures.secret, clock: h.clock, timeout: .milliseconds(200))
        do {
            transport.subscribe(on: h.bus)
            let bucket = h.bucket("photos")
            let key = try await h.key(registering: [bucket])
            _ = try await h.engine.disable(key.id, context: h.ops)
            try await h.dispatcher.drain()
            try await h.dispatcher.advance(h.clock, by: 60)
            let dead = try #require(try await h.notifications(key.id).last)
            #expect(dead.status == .dead && dead.attempts == 2, "\(dead)")
            #expect(dead.lastError?.contains("after 2 attempts") == true, "\(dead.lastError ?? "")")
            #expect(try await h.engine.deliveryCounts(keyID: key.id).dead == 1)
            #expect(try await h.engine.drift(keyID: key.id, context: h.ops).count == 1)

            receiver.answer(.status(204))
            try await h.dispatcher.advance(h.clock, by: 3600)
            let receipt = try await h.engine.sync(key.id, context: h.ops)
            #expect(receipt.notifications == 1)
            try await h.dispatcher.drain()
            let synced = try #require(try await h.notifications(key.id).last)
            #expect(synced.status == .sent && synced.event.kind == .sync, "\(synced)")
            try await h.engine.acknowledge(eventID: synced.event.id, resourceCRN: bucket, adopterKeyState: .disabled, keyVersionID: nil,
                                           timestamp: h.clock.now(), context: h.ops)
            #expect(try await h.notifications(key.id).last?.status == .acknowledged)
            #expect(try await h.engine.drift(keyID: key.id, context: h.ops).isEmpty)
            #expect(receiver.received.count == 3, "two timed-out attempts, then the sync's delivery")
        } catch {
            try? await transport.shutdown()
            try? await receiver.close()
            throw error
        }
        try await transport.shutdown()
        try await receiver.close()
    }
}
