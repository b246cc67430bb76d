import ArgumentParser
import Foundation
import KeyRelay
import KeyRelayHTTP

/// `keyrelay serve`: the Key Protect–compatible HTTP API (all logic lives in KeyRelayHTTP).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the Key Protect v2-compatible HTTP API over a database.",
        discussion: """
            Without --dev, a master key (--master-key-file or KEYRELAY_MASTER_KEY) and an access file (--access) are \
            required. --dev prints a root token, grants it Manager, KeyPurge and Service on every instance and, if no \
            master key is given, generates one beside the database (mode 0600). --manual-clock (with --dev) adds \
            POST /api/v2/_dev/clock.
            """)

    @Option(name: .long, help: "The SQLite database file (created if missing).")
    var db: String = "keyrelay.sqlite"

    @Option(name: .long, help: "The address to listen on.")
    var host: String = "127.0.0.1"

    @Option(name: .long, help: "The port to listen on.")
    var port: Int = 8080

    @Option(name: .customLong("master-key-file"), help: "A file holding the base64 master key (32 bytes).")
    var masterKeyFile: String?

    @Option(name: .long, help: "The access file (JSON: tokens → principal, role, instances).")
    var access: String?

    @Flag(name: .long, help: "Development mode: a root token on every instance; generated master key if none.")
    var dev = false

    @Option(name: .customLong("dev-token"), help: "The dev root token (default: random, printed).")
    var devToken: String?

    @Flag(name: .customLong("manual-clock"), help: "Run on a manual clock moved by POST /api/v2/_dev/clock (--dev only).")
    var manualClock = false

    func validate() throws {
        // Port 0 asks the system for a free port; anything outside 0–65535 would fail deep inside the bind.
        guard (0...65535).contains(port) else { throw ValidationError("--port must be from 0 to 65535, not \(port)") }
    }

    func run() async throws {
        var options = ServeOptions(databasePath: db)
        options.host = host
        options.port = port
        options.masterKeyFile = masterKeyFile
        options.accessFile = access
        options.dev = dev
        options.devToken = devToken
        options.manualClock = manualClock
        do {
            try await KeyRelayServer.run(options)
        } catch let error as KeyRelayError {
            FileHandle.standardError.write(Data("keyrelay serve: \(error.message)\n".utf8))
            throw ExitCode(2)
        }
    }
}
