import Foundation
import KeyRelay
import KeyRelayScenario
import Testing

/// Each scenario on a database of its own: in memory, or a fresh PostgreSQL database with
/// `KEYRELAY_TEST_BACKEND=postgres` (scripts/test's second pass).
let scenarioRunner = ScenarioRunner(options: ScenarioOptions(database: .fresh { try await StoreLocation.testDatabase() }))

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Every file of scenarios/, by name.
let scenarioFiles: [String] = {
    let directory = repositoryRoot.appendingPathComponent("scenarios").path
    return ((try? ScenarioRunner.scenarioFiles(in: [directory])) ?? []).map { URL(fileURLWithPath: $0).lastPathComponent }
}()

@Suite("scenarios/ files")
struct ScenarioFilesTests {
    @Test("there are at least 15 scenarios, the seed story first")
    func enoughScenarios() {
        #expect(scenarioFiles.count >= 15)
        #expect(scenarioFiles.first == "00-seed-story.scenario")
    }

    @Test("every expectation of the scenario passes", arguments: scenarioFiles)
    func scenarioPasses(_ name: String) async throws {
        let path = repositoryRoot.appendingPathComponent("scenarios").appendingPathComponent(name).path
        let result = try await scenarioRunner.run(file: path, displayName: "scenarios/\(name)")
        #expect(result.tally.failed == 0, "\(result.transcript)")
        #expect(result.tally.passed > 0, "\(result.transcript)")
    }

    @Test("the seed story gives the same transcript on every run")
    func reproducible() async throws {
        let path = repositoryRoot.appendingPathComponent("scenarios/00-seed-story.scenario").path
        let first = try await scenarioRunner.run(file: path, displayName: "story")
        let second = try await scenarioRunner.run(file: path, displayName: "story")
        #expect(first.transcript == second.transcript)
        #expect(first.transcript.hasSuffix("13 passed, 0 failed"))
    }
}
