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
            let runner = ScenarioRunner(options: ScenarioOptions(seed: seed))
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
