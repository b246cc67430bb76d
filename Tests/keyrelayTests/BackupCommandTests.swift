import Foundation
import Testing

/// Issue 14, item 6: `keyrelay backup` while another process writes the database.
@Suite("keyrelay backup")
struct BackupCommandTests {
    let env = ["KEYRELAY_MASTER_KEY": Data(repeating: 7, count: 32).base64EncodedString()]

    @Test func aBackupTakenWhileAnotherProcessWritesIsAPrefixOfTheSourceAndNeverOverwrites() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("live.sqlite").path
        let copy = dir.appendingPathComponent("copy.sqlite").path
        #expect(try run(["key", "create", "first", "--db", db], environment: env).status == 0)
        let env = env
        // Another process at a time keeps writing while the backup runs.
        let writer = Task.detached {
            for index in 0..<12 { _ = try run(["key", "create", "key-\(index)", "--db", db], environment: env) }
        }
        while try run(["events", "--db", db], environment: env).stdout.split(separator: "\n").count < 4 { try await Task.sleep(for: .milliseconds(20)) }
        let backup = try run(["backup", "--db", db, "--to", copy], environment: env)
        try await writer.value
        #expect(backup.status == 0, "\(backup.stderr)")
        #expect(backup.stdout.contains("the master key is not in it"))

        let sourceEvents = try run(["events", "--db", db], environment: env).stdout.split(separator: "\n")
        let copiedEvents = try run(["events", "--db", copy], environment: env).stdout.split(separator: "\n")
        #expect(copiedEvents.count >= 4 && copiedEvents.count <= sourceEvents.count)
        #expect(Array(sourceEvents.prefix(copiedEvents.count)) == copiedEvents)
        let copiedKeys = try run(["key", "list", "--json", "--db", copy], environment: env)
        #expect(copiedKeys.status == 0 && copiedKeys.stdout.split(separator: "\n").count == copiedEvents.count)

        let again = try run(["backup", "--db", db, "--to", copy], environment: env)
        #expect(again.status == 1 && again.stderr.contains("already exists: a backup never overwrites a file"), "\(again.stderr)")
        #expect(try run(["events", "--db", copy], environment: env).stdout.split(separator: "\n") == copiedEvents, "the copy is untouched")
        let wrongKey = try run(["key", "list", "--db", copy], environment: ["KEYRELAY_MASTER_KEY": Data(repeating: 8, count: 32).base64EncodedString()])
        #expect(wrongKey.status == 1 && wrongKey.stderr.contains("UNAUTHORIZED_ERR"))
        let nowhere = try run(["backup", "--db", db, "--to", "/nonexistent-dir/copy.sqlite"], environment: env)
        #expect(nowhere.stderr == "error: BAD_BODY_ERR (400): --to: Cannot create '/nonexistent-dir/copy.sqlite': no such file or directory\n", "\(nowhere.stderr)")
    }
}
