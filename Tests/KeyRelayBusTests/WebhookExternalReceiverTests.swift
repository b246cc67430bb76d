import Foundation
import KeyRelay
import KeyRelayBus
import Testing

/// Posts real webhooks to a receiver written in Python with the reference `standardwebhooks` and `cloudevents`
/// libraries (Tests/webhook/receiver.py). Runs only under `scripts/webhook-verify-check`, which starts that receiver
/// and sets `KEYRELAY_WEBHOOK_CHECK_URL` and `KEYRELAY_WEBHOOK_CHECK_SECRET_FILE`; skipped otherwise.
@Suite("Webhook external receiver")
struct WebhookExternalReceiverTests {
    static let environment = ProcessInfo.processInfo.environment
    static let enabled = environment["KEYRELAY_WEBHOOK_CHECK_URL"] != nil && environment["KEYRELAY_WEBHOOK_CHECK_SECRET_FILE"] != nil

    @Test(.enabled(if: enabled, "set by scripts/webhook-verify-check"))
    func aReceiverUsingTheReferenceLibrariesAcceptsOurWebhooks() async throws {
        let url = try #require(URL(string: Self.environment["KEYRELAY_WEBHOOK_CHECK_URL"] ?? ""))
        let secretFile = try #require(Self.environment["KEYRELAY_WEBHOOK_CHECK_SECRET_FILE"])
        let secret = try WebhookSecret(parsing: String(contentsOfFile: secretFile, encoding: .utf8))
        let subscriptions = try WebhookFixtures.subscriptions(url)

        // The receiver checks timestamps against its own clock, so sign with the real one.
        let transport = WebhookTransport(subscriptions: subscriptions, secret: secret, clock: SystemClock(), timeout: .seconds(5))
        let wrongSecret = WebhookTransport(subscriptions: subscriptions, secret: WebhookSecret.generate(), clock: SystemClock(),
                                           httpClient: WebhookFixtures.sharedClient)
        let stale = WebhookTransport(subscriptions: subscriptions, secret: secret,
                                     clock: ManualClock(start: Date(timeIntervalSince1970: SystemClock().now().timeIntervalSince1970 - 600)),
                                     httpClient: WebhookFixtures.sharedClient)
        do {
            // Accepted (204): a delete, a rotation, a sync's re-emission.
            try await transport.deliver(WebhookFixtures.notification(id: 1, kind: .delete, state: .destroyed))
            try await transport.deliver(WebhookFixtures.notification(id: 2, eventID: "0b9a4f5e-7c2d-4e1f-8a3b-6c5d4e3f2a1b",
                                                                     kind: .rotate, state: .active))
            try await transport.deliver(WebhookFixtures.notification(id: 3, eventID: "5e4d3c2b-1a09-4f8e-b7d6-c5b4a3928170",
                                                                     kind: .sync, state: .suspended))
            // Refused (401): signed with another secret; signed ten minutes ago.
            for bad in [wrongSecret, stale] {
                let error = await #expect(throws: WebhookDeliveryError.self) {
                    try await bad.deliver(WebhookFixtures.notification(id: 4))
                }
                guard case .status(401, _)? = error?.reason else {
                    Issue.record("expected 401, got \(String(describing: error))")
                    continue
                }
            }
        } catch {
            try? await transport.shutdown()
            throw error
        }
        try await transport.shutdown()
    }
}
