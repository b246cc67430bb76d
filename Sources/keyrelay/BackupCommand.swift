import ArgumentParser
import Foundation
import KeyRelay

/// `keyrelay backup`: a consistent online copy of a database, safe while `serve` runs.
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup", abstract: "Copy a database consistently while it is in use (SQLite's online backup).",
        discussion: """
            The copy is one snapshot: every command is in it entirely or not at all. It never overwrites a file. \
            The master key is not in the copy: keep it separately, the copy cannot be opened without it. To \
            restore: stop `keyrelay serve`, put the copy in place of the database file (remove its -wal and -shm \
            files), and start again with the same master key.
            """)
    @OptionGroup var options: DatabaseOptions
    @Option(help: "The new file to write (must not exist).") var to: String

    func run() async throws {
        try await reportingErrors(json: options.json) {
            // Opening the engine checks the master key: a backup taken without it could not be restored.
            let engine = try await options.engine()
            do {
                try await engine.backup(to: to)
            } catch let error as KeyRelayError {
                throw error
            } catch {
                throw KeyRelayError.commandLine("--to: \(error)")
            }
            if options.json {
                print(CLIJSON.encode(["backup": to, "database": options.db]))
            } else {
                print("backed up \(options.db) to \(to) (integrity ok); the master key is not in it: keep it separately")
            }
        }
    }
}
