import Foundation
import KeyRelay
@testable import KeyRelayScenario
import Testing

/// `keyrelay scenario run` runs each scenario on an SQLite file of its own, as a deployment would.
@Suite("scenario databases")
struct ScenarioDatabaseTests {

    func temporaryFolder() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("keyrelay-scenario-db-\(UUID().uuidString)").path
    }

    @Test("a scenario on an SQLite file leaves the file and its master key (0600), and the file opens with that key")
    func fileIsLeftToInspect() async throws {
        let folder = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let runner = ScenarioRunner(options: ScenarioOptions(database: .sqliteFiles(directory: folder)))
        let result = await runner.run(text: "key create k1\nexpect key k1 state active\n", file: "dir/one.scenario")
        #expect(result.tally.failed == 0 && result.tally.passed == 1)

        let path = folder + "/dir_one.sqlite"
        let key = try MasterKey(base64: String(contentsOfFile: path + ".master-key", encoding: .utf8))
        let attributes = try FileManager.default.attributesOfItem(atPath: path + ".master-key")
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let engine = try await KeyRelayEngine.open(StoreLocation.file(path).mustExist, masterKey: key)
        let keys = try await engine.listKeys(context: RequestContext(instanceID: "scenario", principal: "test"))
        #expect(keys.total == 1)
    }

    @Test("a scenario whose database file exists fails at its start and does not touch the file")
    func existingFileIsRefused() async throws {
        let folder = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let runner = ScenarioRunner(options: ScenarioOptions(database: .sqliteFiles(directory: folder)))
        _ = await runner.run(text: "key create k1\n", file: "again.scenario")
        let before = try Data(contentsOf: URL(fileURLWithPath: folder + "/again.sqlite"))
        let second = await runner.run(text: "key create k1\n", file: "again.scenario")
        #expect(second.tally.failed == 1)
        #expect(second.entries.first?.saw?.contains("already exists") == true)
        #expect(try Data(contentsOf: URL(fileURLWithPath: folder + "/again.sqlite")) == before)
    }
}
