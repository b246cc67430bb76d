import ArgumentParser
import Foundation
import KeyRelayScenario
import Synchronization

/// `keyrelay scenario …`
struct ScenarioCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scenario", abstract: "Replay scenario files on a virtual clock.",
        subcommands: [Run.self])

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run scenario files (or directories of *.scenario files) and print their transcripts.",
            discussion: "Exit status 0 only when every expectation passed. The language is described in docs/scenarios.md.")

        @Argument(help: "Scenario files or directories.")
        var paths: [String]

        @Option(help: "Seed of identifiers, imported material and bus jitter (same seed, same transcript).")
        var seed: UInt64 = ScenarioOptions.defaultSeed

        @Flag(help: "Print the transcript as JSON lines.")
        var json = false

        @Option(name: .customLong("db-dir"),
                help: ArgumentHelp("Keep each scenario's SQLite database in this folder (one new file per scenario, left there to inspect with `keyrelay status --db`).",
                                   discussion: "Without it, the databases are files in a temporary folder removed after the run.",
                                   valueName: "DIR"))
        var databaseDirectory: String?

        @Flag(name: .customLong("in-memory"), help: "Run each scenario on an in-memory database instead of an SQLite file.")
        var inMemory = false

        func run() async throws {
            let files: [String]
            do {
                files = try ScenarioRunner.scenarioFiles(in: paths)
            } catch {
                printError("error: \(error)")
                throw ExitCode(2)
            }
            if files.isEmpty {
                printError("error: no *.scenario files in \(paths.joined(separator: ", "))")
                throw ExitCode(2)
            }
            if inMemory, databaseDirectory != nil {
                throw ValidationError("--in-memory and --db-dir exclude each other: choose one")
            }
            // The main job runs on what a deployment runs on: an SQLite file per scenario, each created new.
            var temporary: String?
            let database: ScenarioDatabase
            if inMemory {
                database = .inMemory
            } else if let databaseDirectory {
                database = .sqliteFiles(directory: databaseDirectory)
            } else {
                let folder = FileManager.default.temporaryDirectory.appendingPathComponent("keyrelay-scenarios-\(UUID().uuidString)").path
                temporary = folder
                database = .sqliteFiles(directory: folder)
            }
            defer { if let temporary { try? FileManager.default.removeItem(atPath: temporary) } }
            let runner = ScenarioRunner(options: ScenarioOptions(seed: seed, database: database))
            var total = ScenarioTally()
            let json = json
            for (index, file) in files.enumerated() {
                if index > 0, !json { print("") }
                let result: ScenarioResult
                do {
                    result = try await runner.run(file: file) { entry in
                        print(json ? entry.json : entry.text)
                        fflush(nil)
                    }
                } catch {
                    printError("error: cannot read \(file): \(error)")
                    total.failed += 1
                    continue
                }
                total += result.tally
            }
            print(json ? total.json : total.text)
            if total.failed > 0 { throw ExitCode.failure }
        }
    }
}
