import Foundation
import Testing

/// The repository root, found from this file's path.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The built `keyrelay` binary: in the products directory that holds the test bundle.
func keyrelayBinary() throws -> URL {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<5 {
        let candidate = directory.appendingPathComponent("keyrelay")
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            return candidate
        }
        directory = directory.deletingLastPathComponent()
    }
    throw CLIFailure(message: "keyrelay binary not found near \(CommandLine.arguments[0])")
}

struct CLIFailure: Error { var message: String }

struct Output {
    var status: Int32
    var stdout: String
    var stderr: String
}

func run(_ arguments: [String], environment: [String: String] = [:], in directory: URL = root) throws -> Output {
    let process = Process()
    process.executableURL = try keyrelayBinary()
    process.arguments = arguments
    process.currentDirectoryURL = directory
    var env = ProcessInfo.processInfo.environment
    env.removeValue(forKey: "KEYRELAY_MASTER_KEY")
    env.merge(environment) { $1 }
    process.environment = env
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return Output(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                  stderr: String(decoding: stderr, as: UTF8.self))
}

func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("keyrelay-cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

@Suite("keyrelay command line")
struct CLITests {
    @Test("scenario run on the seed story exits 0 with the closing line")
    func seedStory() throws {
        let output = try run(["scenario", "run", "scenarios/00-seed-story.scenario"])
        #expect(output.status == 0, "\(output.stdout)\(output.stderr)")
        #expect(output.stdout.hasSuffix("13 passed, 0 failed\n"))
        #expect(output.stdout.hasPrefix("scenarios/00-seed-story.scenario:2 ✓ clock start 2026-01-01T00:00:00Z\n"))
    }

    @Test("a wrong expectation exits non-zero with a ✗ line; a malformed file names file:line:column")
    func failures() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try "key create k1\nexpect key k1 state destroyed\n".write(to: dir.appendingPathComponent("a-wrong.scenario"), atomically: true, encoding: .utf8)
        try "key create k1\nadvance later\n".write(to: dir.appendingPathComponent("b-bad.scenario"), atomically: true, encoding: .utf8)
        let output = try run(["scenario", "run", "."], in: dir)
        #expect(output.status == 1)
        #expect(output.stdout.contains("./a-wrong.scenario:2 ✗ expect key k1 state destroyed — expected state destroyed, saw state active"))
        #expect(output.stdout.contains("./b-bad.scenario:2:9: expected a duration"))
        #expect(output.stdout.hasSuffix("0 passed, 2 failed\n"))

        let json = try run(["scenario", "run", "--json", "a-wrong.scenario"], in: dir)
        #expect(json.status == 1)
        #expect(json.stdout.split(separator: "\n").last == #"{"failed":1,"passed":0}"#)
    }

    @Test("scenario run --db-dir leaves one SQLite file per scenario, with its master key that status opens; an existing file is refused")
    func scenarioDatabaseFiles() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try "key create k1\nexpect key k1 state active\n".write(to: dir.appendingPathComponent("a.scenario"), atomically: true, encoding: .utf8)
        let kept = try run(["scenario", "run", "--db-dir", "dbs", "a.scenario"], in: dir)
        #expect(kept.status == 0, "\(kept.stdout)\(kept.stderr)")
        let status = try run(["status", "--db", "dbs/a.sqlite", "--master-key-file", "dbs/a.sqlite.master-key", "--instance", "scenario"], in: dir)
        #expect(status.status == 0, "\(status.stderr)")
        #expect(status.stdout.contains("instance scenario: 1 key(s)"), "\(status.stdout)")

        let again = try run(["scenario", "run", "--db-dir", "dbs", "a.scenario"], in: dir)
        #expect(again.status == 1 && again.stdout.contains("dbs/a.sqlite already exists"), "\(again.stdout)")

        let both = try run(["scenario", "run", "--db-dir", "dbs", "--in-memory", "a.scenario"], in: dir)
        #expect(both.status != 0 && both.stderr.contains("--in-memory and --db-dir exclude each other"), "\(both.stderr)")
    }

    @Test("a missing path exits non-zero")
    func missingPath() throws {
        let output = try run(["scenario", "run", "no-such-dir"])
        #expect(output.status != 0)
        #expect(output.stderr.contains("no-such-dir"))
    }

    @Test("database commands need a master key")
    func masterKeyRequired() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let output = try run(["key", "list", "--db", dir.appendingPathComponent("k.sqlite").path])
        #expect(output.status != 0)
        #expect(output.stderr.contains("no master key"))
    }

    @Test("key commands on a temporary database, errors with reason codes, events as CloudEvents")
    func keyCommands() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("k.sqlite").path
        let env = ["KEYRELAY_MASTER_KEY": Data(repeating: 7, count: 32).base64EncodedString()]
        let created = try run(["key", "create", "orders-root", "--db", db, "--json", "--as", "alice"], environment: env)
        #expect(created.status == 0, "\(created.stderr)")
        let key = try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: Any]
        let id = try #require(key?["id"] as? String)
        #expect(key?["state"] as? String == "active")

        let bucket = try run(["resource", "bucket", "create", "invoices", "--key", id, "--db", db], environment: env)
        #expect(bucket.status == 0, "\(bucket.stderr)")
        let refused = try run(["key", "delete", id, "--db", db], environment: env)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("PROTECTED_RESOURCE_ERR (409)"))
        let deleted = try run(["key", "delete", id, "--force", "--db", db], environment: env)
        #expect(deleted.status == 0, "\(deleted.stderr)")
        #expect(deleted.stdout.contains("state: destroyed"))

        let list = try run(["key", "list", "--all", "--db", db], environment: env)
        #expect(list.stdout.contains("orders-root"))
        let status = try run(["status", "--db", db, "--json"], environment: env)
        #expect(status.stdout.contains("\"pending\":1"))

        let events = try run(["events", "--db", db], environment: env)
        let lines = events.stdout.split(separator: "\n")
        #expect(lines.count == 2)
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any]
        #expect(first?["specversion"] as? String == "1.0")
        #expect(first?["type"] as? String == "com.ibm.kms.key.create")
        #expect(first?["subject"] as? String == id)
        let after = try run(["events", "--after", "1", "--db", db], environment: env)
        #expect(after.stdout.contains("com.ibm.kms.key.delete"))
        #expect(!after.stdout.contains("com.ibm.kms.key.create"))

        let wrongKey = try run(["key", "list", "--db", db],
                               environment: ["KEYRELAY_MASTER_KEY": Data(repeating: 8, count: 32).base64EncodedString()])
        #expect(wrongKey.status != 0)
        #expect(wrongKey.stderr.contains("UNAUTHORIZED_ERR"))
    }

    @Test("--expires-in becomes the engine's expiration; wrong options are usage errors, engine refusals reason codes")
    func expiryAndUsageErrors() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("k.sqlite").path
        let env = ["KEYRELAY_MASTER_KEY": Data(repeating: 7, count: 32).base64EncodedString()]
        let before = Date()
        let created = try run(["key", "create", "short-lived", "--expires-in", "30d", "--db", db, "--json"], environment: env)
        #expect(created.status == 0, "\(created.stderr)")
        let key = try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: Any]
        let expires = try #require((key?["expirationDate"] as? String).flatMap { ISO8601DateFormatter().date(from: $0) })
        #expect(abs(expires.timeIntervalSince(before) - 30 * 86400) < 60)

        // Beyond the longest duration any input may name (100 years): a usage error naming the bound.
        let tooFar = try run(["key", "create", "forever", "--expires-in", "40000d", "--db", db, "--json"], environment: env)
        #expect(tooFar.status == 64)
        #expect(tooFar.stderr.contains("at most 36500d"))

        // The command line's own mistakes: ArgumentParser's usage errors (exit 64, with the usage), no reason code.
        let usage: [([String], String)] = [
            (["--expires-in", "soon"], "--expires-in must be a duration such as 30d or 4h, at most 36500d (100 years), not 'soon'"),
            (["--expires", "tomorrow"], "--expires must be an RFC 3339 time"),
            (["--expires", "2030-01-01T00:00:00Z", "--expires-in", "1d"], "give --expires or --expires-in, not both"),
            (["--payload", "not base64!"], "--payload must be base64 key material"),
        ]
        for (arguments, message) in usage {
            let output = try run(["key", "create", "bad"] + arguments + ["--db", db], environment: env)
            #expect(output.status == 64, "\(arguments): \(output.stderr)")
            #expect(output.stderr.contains(message) && output.stderr.contains("Usage:"), "\(output.stderr)")
            #expect(!output.stderr.contains("_ERR"))
        }
        let noKey = try run(["events", "--deliveries", "--db", db], environment: env)
        #expect(noKey.status == 64 && noKey.stderr.contains("--deliveries needs --key"))
        let interval = try run(["events", "--follow", "--interval", "0", "--db", db], environment: env)
        #expect(interval.status == 64 && interval.stderr.contains("--interval must be from 0.1 to 3600 seconds"))
        for wrong in ["70000", "99999"] {
            let port = try run(["serve", "--dev", "--port", wrong, "--db", db])
            #expect(port.status == 64 && port.stderr.contains("--port must be from 1 to 65535 (or 0 for any free port), not \(wrong)"),
                    "\(port.stderr)")
        }
    }

    @Test("status and events read the engine's paged overview and events-with-deliveries")
    func overviewQueries() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("k.sqlite").path
        let env = ["KEYRELAY_MASTER_KEY": Data(repeating: 7, count: 32).base64EncodedString()]
        let created = try run(["key", "create", "orders-root", "--db", db, "--json"], environment: env)
        let id = try #require((try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: Any])?["id"] as? String)
        _ = try run(["key", "create", "spare", "--db", db], environment: env)
        #expect(try run(["resource", "bucket", "create", "invoices", "--key", id, "--db", db], environment: env).status == 0)
        #expect(try run(["key", "delete", id, "--force", "--db", db], environment: env).status == 0)

        let status = try run(["status", "--db", db, "--json"], environment: env)
        #expect(status.status == 0, "\(status.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        let keys = try #require(summary["keys"] as? [[String: Any]])
        #expect(keys.count == 2 && summary["drifted"] as? Int == 1)
        let deleted = try #require(keys.first { $0["id"] as? String == id })
        #expect(deleted["registrations"] as? Int == 1 && deleted["drifted"] as? Int == 1 && deleted["pending"] as? Int == 1)

        let events = try run(["events", "--key", id, "--deliveries", "--db", db], environment: env)
        #expect(events.status == 0, "\(events.stderr)")
        let lines = events.stdout.split(separator: "\n").map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(lines.map { $0?["type"] as? String } == ["com.ibm.kms.key.delete", "com.ibm.kms.key.create"])
        let deliveries = (lines.first??["data"] as? [String: Any])?["deliveries"] as? [[String: Any]]
        #expect(deliveries?.count == 1 && deliveries?.first?["status"] as? String == "pending")
        #expect((deliveries?.first?["resourceCrn"] as? String)?.hasSuffix(":bucket:invoices") == true)
    }
}
