import Foundation
import Testing

/// Faults on webhooks between `serve` and a receiver in another process: each ends dead after its retries and
/// visible through the API (the delivery's status, attempts and last error; the key's delivery counts).
@Suite("webhook faults across processes", .serialized)
struct CrossProcessFaultTests {
    /// A bucket CRN no simulated service holds.
    static let strayCRN = "crn:v1:bluemix:public:cloud-object-storage:global:a/keyrelay:cos-simulated:bucket:nobody-home"

    /// Disables the key, then moves the dev clock past every retry; returns the delivery once dead.
    func disableAndExhaustRetries(_ stack: CrossProcessStack, keyID: String) async throws -> [String: Any] {
        let disabled = try await stack.api("POST", "/api/v2/keys/\(keyID)/actions/disable")
        #expect(disabled.status == 204, "\(disabled.text)")
        try await stack.advance("1h")
        return try await eventually("the delivery to be dead") { () async throws -> [String: Any]? in
            let delivery = try await stack.newestEventDeliveries(keyID).first
            return delivery?["status"] as? String == "dead" ? delivery : nil
        }
    }

    func run(_ stack: CrossProcessStack, _ body: (CrossProcessStack) async throws -> Void) async {
        defer { stack.stop() }
        do {
            try await body(stack)
        } catch {
            Issue.record("\(error)\n--- serve:\n\(stack.serve.printed)\n--- simulate cos:\n\(stack.cos?.printed ?? "")")
        }
    }

    @Test("receiver down: every attempt is refused, retried with backoff, then dead and counted")
    func receiverDown() async throws {
        let stack = try await CrossProcessStack.start(startCOS: false)
        await run(stack) { stack in
            let keyID = try await stack.createRootKey("down-root")
            try await stack.register(Self.strayCRN, with: keyID)
            let delivery = try await disableAndExhaustRetries(stack, keyID: keyID)
            let lastError = delivery["lastError"] as? String ?? ""
            #expect(lastError.contains("after 8 attempts") && lastError.contains("could not be delivered"), "\(delivery)")
            #expect(try await stack.deliveries(keyID)["dead"] == 1)
        }
    }

    @Test("receiver answering an error status (a resource it does not hold: 404): retried, then dead")
    func receiverAnswersError() async throws {
        let stack = try await CrossProcessStack.start()
        await run(stack) { stack in
            let keyID = try await stack.createRootKey("error-root")
            try await stack.register(Self.strayCRN, with: keyID)
            let delivery = try await disableAndExhaustRetries(stack, keyID: keyID)
            #expect((delivery["lastError"] as? String)?.contains("answered 404") == true, "\(delivery)")
            #expect(try await stack.deliveries(keyID)["dead"] == 1)
        }
    }

    @Test("receiver holding the wrong secret: 401 on every attempt, retried, then dead; the bucket never hears")
    func wrongSecret() async throws {
        let stack = try await CrossProcessStack.start(cosSecret: makeWebhookSecret())
        await run(stack) { stack in
            let keyID = try await stack.createRootKey("secret-root")
            let created = try await send("PUT", "\(stack.cosURL)/buckets/photos?key=\(keyID)")
            #expect(created.status == 201, "\(created.text)")
            let delivery = try await disableAndExhaustRetries(stack, keyID: keyID)
            #expect((delivery["lastError"] as? String)?.contains("answered 401") == true, "\(delivery)")
            #expect(try await stack.deliveries(keyID)["dead"] == 1)
            // The receiver refused every webhook, so it still serves the bucket: drift shows it.
            let bucket = try await send("GET", "\(stack.cosURL)/buckets/photos")
            #expect(bucket.json["access"] as? String == "allowed", "\(bucket.text)")
            #expect(try await stack.drifted(keyID))
        }
    }
}
