import AsyncHTTPClient
import Foundation
import Testing

/// The seed story with COS as a separate process: `keyrelay serve --dev --manual-clock --webhook
/// cloud-object-storage=…` and `keyrelay simulate cos`, talking only HTTP (webhooks one way; registrations,
/// unwrap and event_ack the other).
@Suite("seed story across processes", .serialized)
struct CrossProcessStoryTests {
    @Test("a lost delete notification leaves the bucket readable; sync makes it unreadable; a second sync is 409")
    func seedStory() async throws {
        let stack = try await CrossProcessStack.start()
        defer { stack.stop() }
        do {
            try await story(stack)
        } catch {
            Issue.record("\(error)\n--- serve:\n\(stack.serve.printed)\n--- simulate cos:\n\(stack.cos?.printed ?? "")")
        }
    }

    func story(_ stack: CrossProcessStack) async throws {
        // A bucket on a root key, registered by the COS process through the API; an object written.
        let keyID = try await stack.createRootKey("story-root")
        let created = try await send("PUT", "\(stack.cosURL)/buckets/photos?key=\(keyID)")
        #expect(created.status == 201, "\(created.text)")
        let registrations = try await stack.api("GET", "/api/v2/keys/\(keyID)/registrations")
        #expect(registrations.text.contains("bucket:photos"), "\(registrations.text)")
        let put = try await send("PUT", "\(stack.cosURL)/buckets/photos/objects/cat.jpg", body: Data("meow".utf8))
        #expect(put.status == 204, "\(put.text)")

        // The key's delete notification is lost (dropped by the bus), and the key deleted with force.
        let fault = try await stack.api("POST", "/api/v2/_dev/bus", json: ["service": "cloud-object-storage", "dropNext": 1])
        #expect(fault.status == 200, "\(fault.text)")
        let deleted = try await stack.api("DELETE", "/api/v2/keys/\(keyID)?force=true")
        #expect(deleted.status == 200, "\(deleted.text)")
        // The bus hands it over (and loses it): recorded sent, awaiting an acknowledgement that will not come.
        _ = try await eventually("the delete notification to be handed over and lost") { () async throws -> Bool? in
            try await stack.newestEventDeliveries(keyID).first?["status"] as? String == "sent" ? true : nil
        }

        // Four hours later the bucket is still readable, and drift shows it.
        try await stack.advance("4h")
        let stillReadable = try await send("GET", "\(stack.cosURL)/buckets/photos/objects/cat.jpg")
        #expect(stillReadable.status == 200)
        #expect(stillReadable.text == "meow")
        #expect(try await stack.drifted(keyID))

        // Sync: 204, the re-emitted delete reaches COS as a webhook, and the bucket becomes unreadable.
        let sync = try await stack.api("POST", "/api/v2/keys/\(keyID)/actions/sync")
        #expect(sync.status == 204, "\(sync.text)")
        let denied = try await eventually("the bucket to become unreadable") { () async throws -> Answer? in
            let answer = try await send("GET", "\(stack.cosURL)/buckets/photos/objects/cat.jpg")
            return answer.status == 403 ? answer : nil
        }
        #expect(denied.json["error"] as? String == "AccessDenied", "\(denied.text)")
        // COS acknowledged with event_ack: no drift left.
        _ = try await eventually("the drift to clear") { try await stack.drifted(keyID) ? nil : true }

        // A second sync within the hour: 409 REQ_TOO_EARLY_ERR with Retry-After.
        let again = try await stack.api("POST", "/api/v2/keys/\(keyID)/actions/sync")
        #expect(again.status == 409, "\(again.text)")
        #expect(again.text.contains("REQ_TOO_EARLY_ERR"))
        let retryAfter = again.headers["retry-after"].flatMap(Int.init)
        #expect(retryAfter != nil && retryAfter! > 0 && retryAfter! <= 3601, "\(again.headers)")
    }
}
