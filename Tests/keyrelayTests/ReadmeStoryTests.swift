import Foundation
import Testing

/// Issue 14, item 8: the README's "Driving a database by hand" commands, run exactly as printed, tell the seed's
/// whole story from the command line: delete → still readable → sync → deliver → unreadable → 409.
@Suite("The README's story from the command line")
struct ReadmeStoryTests {
    /// The first `sh` block under the heading, one command per line.
    static func readmeCommands() throws -> [String] {
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let section = try #require(readme.range(of: "## Driving a database by hand"))
        let rest = readme[section.upperBound...]
        let open = try #require(rest.range(of: "```sh\n"))
        let close = try #require(rest[open.upperBound...].range(of: "```"))
        return rest[open.upperBound..<close.lowerBound].split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    }

    @Test func theReadmeCommandsTellTheWholeStory() throws {
        let commands = try Self.readmeCommands()
        // One shell, so that the `export` holds for the lines after it; each line's output and status marked.
        var script = "set -u\n"
        for (index, command) in commands.enumerated() {
            script += "printf '@@@ %d\\n' \(index)\n{ \(command)\n} 2>&1\nprintf '\\n@@@ status %d\\n' $?\n"
        }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        process.currentDirectoryURL = dir
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "KEYRELAY_MASTER_KEY")
        env["PATH"] = try keyrelayBinary().deletingLastPathComponent().path + ":" + (env["PATH"] ?? "/usr/bin:/bin")
        process.environment = env
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()

        // Each command's output and exit status, by index.
        var outputs: [(String, Int32)] = []
        for chunk in text.components(separatedBy: "@@@ ").dropFirst() where !chunk.hasPrefix("status") {
            outputs.append((String(chunk.drop { $0 != "\n" }.dropFirst()), 0))
        }
        let statuses = text.split(separator: "\n").filter { $0.hasPrefix("@@@ status ") }.compactMap { Int32($0.split(separator: " ").last!) }
        #expect(statuses.count == commands.count, "\(text)")
        for index in outputs.indices where index < statuses.count { outputs[index].1 = statuses[index] }

        // What each line must show, in the README's order.
        let expected: [(command: String, status: Int32, shows: [String])] = [
            ("export KEYRELAY_MASTER_KEY", 0, []),
            ("keyrelay key create orders-root", 0, ["state: active", "aliases: orders"]),
            ("keyrelay resource bucket create invoices", 0, ["registered crn:v1:", ":bucket:invoices with key "]),
            ("keyrelay resource bucket put invoices", 0, ["wrote invoices.csv to bucket invoices"]),
            ("keyrelay key delete orders --force", 0, ["state: destroyed"]),
            ("keyrelay resource bucket get invoices", 0, ["acme,42"]),
            ("keyrelay key sync orders ", 1, ["REQ_TOO_EARLY_ERR (409)", "Sync cannot be performed until at least"]),
            ("keyrelay status", 0, ["1 drifted registration(s)", "notifications: 1 pending", "keyrelay deliver"]),
            ("keyrelay key sync orders --clock-offset 4h", 0, ["sync accepted: 1 notification(s) of state destroyed"]),
            ("keyrelay deliver --clock-offset 4h", 0, ["delete", "sync", "delivered", "0 pending, 0 sent, 2 acknowledged, 0 dead"]),
            ("keyrelay resource bucket get invoices", 1, ["error: FEATURE_RESTRICTED_ERR (403): Access denied to 'invoices': key deleted"]),
            ("keyrelay key sync orders --clock-offset 4h", 1, ["REQ_TOO_EARLY_ERR (409)"]),
            ("keyrelay events --key orders", 0, ["com.ibm.kms.key.create", "com.ibm.kms.key.delete", "com.ibm.kms.key.sync"]),
        ]
        #expect(commands.count == expected.count, "\(commands)")
        for (index, line) in expected.enumerated() where index < commands.count && index < outputs.count {
            #expect(commands[index].hasPrefix(line.command), "README line \(index): \(commands[index])")
            #expect(outputs[index].1 == line.status, "\(commands[index]) exited \(outputs[index].1):\n\(outputs[index].0)")
            for shown in line.shows { #expect(outputs[index].0.contains(shown), "\(commands[index]):\n\(outputs[index].0)") }
        }
        #expect(!outputs[5].0.contains("error"), "still readable after the delete")
    }
}
