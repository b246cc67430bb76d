import Foundation
import Testing

@Suite("keyrelay audit and serve's logging flags")
struct AuditCommandTests {
    /// One event of the trail, in the shape `serve --audit` writes.
    static func line(_ time: String, _ action: String, key: String, outcome: String = "success", status: Int = 200,
                     code: String? = nil, correlation: String) -> String {
        let failure = code.map {
            #","reasonForFailure":"Conflict: Sync could not be performed: Please see 'reasons' for more details (\#($0))""#
        } ?? ""
        let errorCode = code.map { #","errorCode":"\#($0)""# } ?? ""
        return #"{"action":"\#(action)","correlationId":"\#(correlation)","eventTime":"\#(time)","#
            + #""initiator":{"credential":{"type":"token"},"host":{"address":"127.0.0.1"},"id":"alice","typeURI":"service/security/account/user"},"#
            + #""outcome":"\#(outcome)","reason":{"reasonCode":\#(status),"reasonType":"X"\#(failure)},"#
            + #""requestData":{"instanceID":"inst","requestURI":"/api/v2/keys"},"responseData":{"status":\#(status)\#(errorCode)},"#
            + #""severity":"normal","target":{"id":"crn:v1:bluemix:public:kms:us-south:a/acct:inst:key:\#(key)","typeURI":"kms/secrets"}}"#
    }

    @Test("filters by action, outcome, key and time; prints one readable line per event, or the events with --json")
    func filters() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let trail = [
            Self.line("2026-01-01T00:00:00.000Z", "kms.secrets.create", key: "k1", status: 201, correlation: "c1"),
            Self.line("2026-01-01T00:10:00.000Z", "kms.secrets.sync", key: "k1", status: 204, correlation: "c2"),
            Self.line("2026-01-01T00:20:00.000Z", "kms.secrets.sync", key: "k1", outcome: "failure", status: 409,
                      code: "REQ_TOO_EARLY_ERR", correlation: "c3"),
            "not json",
            Self.line("2026-01-02T00:00:00.000Z", "kms.secrets.sync", key: "k2", outcome: "failure", status: 409,
                      code: "REQ_TOO_EARLY_ERR", correlation: "c4"),
        ].joined(separator: "\n") + "\n"
        let file = dir.appendingPathComponent("audit.jsonl")
        try trail.write(to: file, atomically: true, encoding: .utf8)

        let failures = try run(["audit", "--file", file.path, "--action", "kms.secrets.sync", "--outcome", "failure"])
        #expect(failures.status == 0, "\(failures.stderr)")
        #expect(failures.stdout == """
            2026-01-01T00:20:00.000Z kms.secrets.sync failure 409 REQ_TOO_EARLY_ERR by alice on crn:v1:bluemix:public:kms:us-south:a/acct:inst:key:k1 correlation c3
            2026-01-02T00:00:00.000Z kms.secrets.sync failure 409 REQ_TOO_EARLY_ERR by alice on crn:v1:bluemix:public:kms:us-south:a/acct:inst:key:k2 correlation c4

            """)
        #expect(failures.stderr.contains(":4: not an audit event, skipped"))

        let k1 = try run(["audit", "--file", file.path, "--key", "k1", "--since", "2026-01-01T00:05:00Z", "--json"])
        #expect(k1.status == 0)
        let objects = try k1.stdout.split(separator: "\n").map {
            try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(objects.map { $0["correlationId"] as? String } == ["c2", "c3"])

        let bad = try run(["audit", "--file", file.path, "--outcome", "maybe"])
        #expect(bad.status != 0 && bad.stderr.contains("--outcome must be success or failure"))
        let missing = try run(["audit", "--file", dir.appendingPathComponent("none").path])
        #expect(missing.status == 1 && missing.stderr.contains("cannot be read"))
    }

    @Test("serve refuses a bad --log-level or --log-format by name, before doing anything")
    func badLoggingFlags() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let level = try run(["serve", "--dev", "--db", dir.appendingPathComponent("k.sqlite").path, "--log-level", "loud"])
        #expect(level.status != 0)
        #expect(level.stderr.contains("--log-level must be one of trace, debug, info, notice, warning, error, critical, not 'loud'"))
        let format = try run(["serve", "--dev", "--db", dir.appendingPathComponent("k.sqlite").path, "--log-format", "xml"])
        #expect(format.status != 0 && format.stderr.contains("--log-format must be text or json, not 'xml'"))
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("k.sqlite.master-key").path))
        // An audit file that cannot be opened is refused by name, before a dev master key is generated.
        let audit = try run(["serve", "--dev", "--port", "0", "--db", dir.appendingPathComponent("k.sqlite").path,
                             "--audit", dir.appendingPathComponent("missing/audit.jsonl").path])
        let missing = dir.appendingPathComponent("missing/audit.jsonl").path
        #expect(audit.status == 2 && audit.stderr.contains("--audit \(missing): the audit file cannot be opened"))
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("k.sqlite.master-key").path))
        // From the environment, the error names the variable; a flag wins over its variable.
        let fromEnvironment = try run(["serve", "--dev", "--db", dir.appendingPathComponent("k.sqlite").path],
                                      environment: ["KEYRELAY_LOG_LEVEL": "loud"])
        #expect(fromEnvironment.status != 0 && fromEnvironment.stderr.contains("KEYRELAY_LOG_LEVEL must be one of trace,"))
        let flagWins = try run(["serve", "--dev", "--port", "0", "--db", dir.appendingPathComponent("k.sqlite").path, "--log-format", "json",
                                "--audit", dir.appendingPathComponent("missing/audit.jsonl").path],
                               environment: ["KEYRELAY_LOG_FORMAT": "xml"])
        #expect(flagWins.status == 2 && flagWins.stderr.contains("the audit file cannot be opened"))
        let auditFromEnvironment = try run(["serve", "--dev", "--port", "0", "--db", dir.appendingPathComponent("k.sqlite").path],
                                           environment: ["KEYRELAY_AUDIT": dir.appendingPathComponent("missing/env.jsonl").path])
        #expect(auditFromEnvironment.status == 2 && auditFromEnvironment.stderr.contains("missing/env.jsonl: the audit file cannot be opened"))
        let help = try run(["serve", "--help"])
        #expect(help.stdout.contains("--log-level") && help.stdout.contains("--log-format") && help.stdout.contains("--audit"))
        #expect(help.stdout.contains("KEYRELAY_LOG_LEVEL") && help.stdout.contains("KEYRELAY_LOG_FORMAT") && help.stdout.contains("KEYRELAY_AUDIT"))
    }
}
