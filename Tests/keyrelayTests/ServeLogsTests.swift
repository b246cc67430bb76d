import Foundation
import Testing

@Suite("serve --log-format json --audit FILE, end to end")
struct ServeLogsTests {
    @Test("the built server logs JSON lines on standard error, answers Correlation-Id and appends the audit file")
    func jsonLogsAndAuditFile() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keyrelay-audit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let audit = directory.appendingPathComponent("audit.jsonl")
        let stack = try await CrossProcessStack.start(startCOS: false, serveArguments: ["--log-format", "json", "--audit", audit.path])
        defer { stack.stop() }

        let id = try await stack.createRootKey("audited-root")
        let refused = try await send("POST", stack.kms + "/api/v2/keys/\(id)/actions/sync",
                                     headers: ["authorization": "Bearer not-the-token", "bluemix-instance": CrossProcessStack.instance,
                                               "correlation-id": "corr-e2e-1"])
        #expect(refused.status == 401 && refused.headers["correlation-id"] == "corr-e2e-1")

        let access = try await eventually("the 401 access line") {
            stack.serve.printed.split(separator: "\n").first { $0.contains("corr-e2e-1") && $0.contains("keyrelay.http") }
        }
        let object = try #require(try JSONSerialization.jsonObject(with: Data(access.utf8)) as? [String: Any])
        #expect(object["route"] as? String == "/api/v2/keys/{id}/actions/sync" && object["status"] as? String == "401")
        #expect(object["principal"] as? String == "-")
        // The dev token is printed once, in the startup notice; no log line carries it, nor the wrong one.
        #expect(stack.serve.printed.components(separatedBy: CrossProcessStack.token).count == 2)
        #expect(!stack.serve.printed.contains("not-the-token"))

        let events = try await eventually("two audit events") { () -> [[String: Any]]? in
            let lines = (try? String(contentsOf: audit, encoding: .utf8))?.split(separator: "\n") ?? []
            guard lines.count >= 2 else { return nil }
            return try lines.map { try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        }
        #expect(events.map { $0["action"] as? String } == ["kms.secrets.create", "kms.secrets.sync"])
        #expect(events.map { $0["outcome"] as? String } == ["success", "failure"])
        #expect(events[1]["correlationId"] as? String == "corr-e2e-1")
        let attributes = try FileManager.default.attributesOfItem(atPath: audit.path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
    }
}
