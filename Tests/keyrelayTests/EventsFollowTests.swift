import Foundation
import Testing

/// `keyrelay events --follow` tails the engine's event stream: stored events first, then what another process
/// (here `keyrelay key …`; in practice `serve`) writes to the same database.
@Suite("keyrelay events --follow")
struct EventsFollowTests {
    @Test func followPrintsStoredEventsThenAnotherProcesssWrites() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("f.sqlite").path
        let env = ["KEYRELAY_MASTER_KEY": Data(repeating: 7, count: 32).base64EncodedString()]
        let created = try run(["key", "create", "orders-root", "--db", db, "--json"], environment: env)
        #expect(created.status == 0, "\(created.stderr)")
        let key = try #require(try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: Any])
        let id = try #require(key["id"] as? String)

        let follower = try KeyrelayChild("events --follow", ["events", "--follow", "--interval", "0.1", "--db", db], environment: env)
        defer { follower.stop() }
        _ = try await eventually("the stored create event", timeout: .seconds(30)) {
            follower.printed.contains("com.ibm.kms.key.create") ? true : nil
        }
        let rotated = try run(["key", "rotate", id, "--db", db], environment: env)
        #expect(rotated.status == 0, "\(rotated.stderr)")
        let lines = try await eventually("the rotate event written by another process", timeout: .seconds(30)) { () -> [String]? in
            let lines = follower.printed.split(separator: "\n").map(String.init)
            return lines.contains { $0.contains("com.ibm.kms.key.rotate") } ? lines : nil
        }
        let events = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        #expect(events.compactMap { $0["type"] as? String } == ["com.ibm.kms.key.create", "com.ibm.kms.key.rotate"])
        #expect(events.allSatisfy { $0["subject"] as? String == id })
    }
}
