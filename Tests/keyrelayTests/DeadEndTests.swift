import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Issue 14, item 7: every way a newcomer could hit a dead end ends in one clear message naming the command
/// line's own flags, with nothing created or written on the way.
@Suite("keyrelay without dead ends")
struct DeadEndTests {
    let env = ["KEYRELAY_MASTER_KEY": Data(repeating: 7, count: 32).base64EncodedString()]

    @Test func versionPrintsOneSemanticVersion() throws {
        let output = try run(["--version"])
        #expect(output.status == 0)
        #expect(output.stdout.range(of: #"^\d+\.\d+\.\d+\n$"#, options: .regularExpression) != nil, "\(output.stdout)")
    }

    @Test func readingCommandsNeverCreateADatabase() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let typo = dir.appendingPathComponent("typo.sqlite").path
        let commands: [[String]] = [["key", "list"], ["key", "show", "k"], ["status"], ["events"], ["events", "--key", "k"],
                                    ["resource", "registrations"], ["resource", "bucket", "list"], ["key", "sync", "k"],
                                    ["backup", "--to", dir.appendingPathComponent("copy.sqlite").path], ["deliver"]]
        for command in commands {
            let output = try run(command + ["--db", typo], environment: env)
            #expect(output.status == 1, "\(command): \(output.stderr)")
            #expect(output.stderr == "error: BAD_BODY_ERR (400): --db \(typo): There is no KeyRelay database at '\(typo)' (it was not created: only a command that creates keys creates a database)\n",
                    "\(command): \(output.stderr)")
            #expect(!FileManager.default.fileExists(atPath: typo), "\(command) created \(typo)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test func eventsOfAKeyTakeAnAliasAndRefuseAnUnknownKey() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("k.sqlite").path
        let created = try run(["key", "create", "orders-root", "--alias", "orders", "--db", db, "--json"], environment: env)
        #expect(created.status == 0, "\(created.stderr)")
        let id = try #require((try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: Any])?["id"] as? String)
        let byAlias = try run(["events", "--key", "orders", "--db", db], environment: env)
        #expect(byAlias.status == 0 && byAlias.stdout.contains("\"subject\":\"\(id)\""), "\(byAlias.stdout)\(byAlias.stderr)")
        let byID = try run(["events", "--key", id, "--db", db], environment: env)
        #expect(byID.stdout == byAlias.stdout)
        let unknown = try run(["events", "--key", "does-not-exist", "--db", db], environment: env)
        #expect(unknown.status == 1)
        // Key Protect's message on the error line, KeyRelay's explanation on a hint line of its own.
        #expect(unknown.stderr.hasPrefix("error: KEY_NOT_FOUND_ERR (404): key does not exist\nhint: no key with id or alias 'does-not-exist'"), "\(unknown.stderr)")
    }

    @Test func messagesNameTheCommandLinesFlagsNotAPIFields() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("k.sqlite").path
        let created = try run(["key", "create", "orders-root", "--alias", "orders", "--db", db], environment: env)
        #expect(created.status == 0)
        #expect(try run(["resource", "bucket", "create", "invoices", "--key", "orders", "--db", db], environment: env).status == 0)
        let refused = try run(["key", "delete", "orders", "--db", db], environment: env)
        #expect(refused.status == 1 && refused.stderr.contains("delete with --force"), "\(refused.stderr)")
        let months = try run(["key", "create", "x", "--rotation-months", "13", "--db", db], environment: env)
        #expect(months.status == 64 && months.stderr.contains("--rotation-months must be from 1 to 12, not 13"), "\(months.stderr)")
        let badKey = try run(["key", "list", "--db", db], environment: ["KEYRELAY_MASTER_KEY": "not a key"])
        #expect(badKey.status == 64 && badKey.stderr.contains("KEYRELAY_MASTER_KEY: The master key must be base64"), "\(badKey.stderr)")
        let keyFile = dir.appendingPathComponent("short.key")
        try Data("c2hvcnQ=\n".utf8).write(to: keyFile)
        let shortKey = try run(["key", "list", "--db", db, "--master-key-file", keyFile.path])
        #expect(shortKey.stderr.contains("--master-key-file \(keyFile.path): The master key must be 32 bytes"), "\(shortKey.stderr)")
        for output in [refused, months, badKey, shortKey] {
            for apiWord in ["force=true", "interval_month", "BAD_BODY_ERR"] { #expect(!output.stderr.contains(apiWord), "\(output.stderr)") }
        }
    }

    @Test func devNeverWritesAKeyFileBesideAnExistingDatabase() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("k.sqlite").path
        #expect(try run(["key", "create", "orders-root", "--db", db], environment: env).status == 0)
        let output = try run(["serve", "--dev", "--db", db, "--port", "0"])
        #expect(output.status == 2)
        #expect(output.stdout.isEmpty, "\(output.stdout)")
        #expect(output.stderr.split(separator: "\n").count == 1, "\(output.stderr)")
        for needed in ["KEYRELAY_MASTER_KEY", "--master-key-file", "\(db).master-key", "already exists"] {
            #expect(output.stderr.contains(needed), "\(needed): \(output.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: db + ".master-key"))
    }

    @Test func aPortInUseIsOneLineBeforeAnythingIsPrintedOrWritten() throws {
        let (socket, port) = try listeningSocket()
        defer { close(socket) }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("new.sqlite").path
        let output = try run(["serve", "--dev", "--db", db, "--port", String(port)])
        #expect(output.status == 2)
        #expect(output.stdout.isEmpty, "no dev token: \(output.stdout)")
        #expect(output.stderr == "keyrelay serve: cannot listen on 127.0.0.1:\(port): address already in use\n", "\(output.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty, "no key file, no database")
    }

    @Test func servePrintsTheConsoleURL() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lines = try serveUntil(["serve", "--dev", "--db", dir.appendingPathComponent("k.sqlite").path, "--port", "0"]) {
            $0.contains { $0.hasPrefix("console: ") }
        }
        let listening = try #require(lines.first { $0.hasPrefix("KeyRelay listening on http://127.0.0.1:") })
        let base = String(listening.dropFirst("KeyRelay listening on ".count))
        #expect(lines.contains("console: \(base)/ui"), "\(lines)")
    }
}

/// A socket listening on 127.0.0.1 on a free port, and that port.
func listeningSocket() throws -> (Int32, Int) {
    #if canImport(Glibc)
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
    let descriptor = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
            bind(descriptor, address, length) == 0 && listen(descriptor, 1) == 0 && getsockname(descriptor, address, &length) == 0
        }
    }
    guard descriptor >= 0, bound else { throw CLIFailure(message: "cannot open a listening socket") }
    return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
}

/// Starts `keyrelay` with `arguments`, collects its standard output lines until `done` says so (at most 60 s),
/// then stops it with SIGINT.
func serveUntil(_ arguments: [String], environment: [String: String] = [:], _ done: ([String]) -> Bool) throws -> [String] {
    let process = Process()
    process.executableURL = try keyrelayBinary()
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env.removeValue(forKey: "KEYRELAY_MASTER_KEY")
    env.merge(environment) { $1 }
    process.environment = env
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    try process.run()
    defer {
        process.interrupt()
        process.waitUntilExit()
    }
    var text = ""
    let deadline = Date().addingTimeInterval(60)
    while Date() < deadline, process.isRunning {
        let chunk = out.fileHandleForReading.availableData
        if chunk.isEmpty { break }
        text += String(decoding: chunk, as: UTF8.self)
        if done(text.split(separator: "\n").map(String.init)) { break }
    }
    return text.split(separator: "\n").map(String.init)
}
