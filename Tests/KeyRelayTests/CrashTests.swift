import Foundation
import KeyRelaySQLite
import Testing
@testable import KeyRelay

/// Where SwiftPM put the built executables (next to the test runner).
func productsDirectory() -> URL {
    let runner = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    for candidate in [runner.deletingLastPathComponent(), Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
    where FileManager.default.fileExists(atPath: candidate.appending(path: "KeyRelayCrashChild").path) {
        return candidate
    }
    return runner.deletingLastPathComponent()
}

@Suite("Crash safety", .serialized)
struct CrashTests {
    /// Runs lifecycle commands in a child process and SIGKILLs it at random moments, many times, on one database
    /// file. Every command the child reported as committed must be there afterwards, nothing half-done may be, and
    /// SQLite's integrity check must pass.
    @Test func killingTheProcessAtAnyMomentLosesNothingAcknowledged() async throws {
        let child = productsDirectory().appending(path: "KeyRelayCrashChild")
        try #require(FileManager.default.isExecutableFile(atPath: child.path), "build KeyRelayCrashChild first: \(child.path)")
        let path = try temporaryPath("crash.sqlite")
        let master = MasterKey.generate()
        var environment = ProcessInfo.processInfo.environment
        environment["KEYRELAY_MASTER_KEY"] = master.base64EncodedString()
        var generator = SeededGenerator(seed: 20261125)
        var acknowledged: [String: Int] = [:]     // key id → highest event sequence the child reported committed
        var registered: [String: Set<String>] = [:]
        let rounds = 25
        for round in 0..<rounds {
            let process = Process()
            process.executableURL = child
            process.arguments = ["lifecycle", path, String(round)]
            process.environment = environment
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Kill after a random 30–400 ms: somewhere inside a command, a commit or between commands.
            let delay = 30 + Int(generator.next() % 370)
            try await Task.sleep(for: .milliseconds(delay))  // real time: we are racing a real process, not a rule
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            for line in output.split(separator: "\n") {
                let parts = line.split(separator: " ", maxSplits: 2).map(String.init)
                guard parts.count == 3 else { continue }  // a line cut by the kill is not an acknowledgement
                if parts[0] == "ok", let sequence = Int(parts[2]) {
                    acknowledged[parts[1], default: 0] = max(acknowledged[parts[1], default: 0], sequence)
                } else if parts[0] == "reg" {
                    registered[parts[1], default: []].insert(parts[2])
                }
            }
        }
        #expect(acknowledged.count >= rounds / 2, "the child committed too little to prove anything")

        let store = try SQLiteStore(.file(path))
        #expect(try store.integrityCheck() == "ok")
        let engine = try await KeyRelayEngine(storage: store, masterKey: master, clock: ManualClock(start: start))
        let context = RequestContext(instanceID: "crash", principal: "checker")
        var query = KeyQuery()
        query.states = [.active, .suspended, .deactivated, .destroyed]
        query.limit = 5000
        let keys = try await engine.listKeys(query, context: context).items
        let byID = Dictionary(uniqueKeysWithValues: keys.map { ($0.id, $0) })
        for (keyID, sequence) in acknowledged {
            let key = try #require(byID[keyID], "acknowledged key \(keyID) is missing")
            #expect(key.eventSequence >= sequence, "key \(keyID): acknowledged event \(sequence) lost")
        }
        for (keyID, crns) in registered {
            let stored = Set(try await engine.registrations(keyID: keyID, limit: 5000, context: context).items.map(\.resourceCRN))
            #expect(crns.isSubset(of: stored), "acknowledged registrations of \(keyID) lost")
        }
        // Nothing half-done: every key's event count matches its sequence, and every notifying event has exactly
        // one notification per registration (the child registers before any notifying event of a key).
        for key in keys {
            let events = try await engine.events(keyID: key.id, limit: 10_000)
            #expect(events.map(\.keySequence) == Array(1...max(1, key.eventSequence)).prefix(events.count).map { $0 })
            #expect(events.count == key.eventSequence)
            let registrations = try await engine.registrations(keyID: key.id, limit: 5000, context: context).total
            let notifications = try await engine.notifications(keyID: key.id, limit: 10_000)
            for event in events where event.kind.notifiesResources {
                #expect(notifications.filter { $0.event.id == event.id }.count == registrations,
                        "event \(event.kind) of \(key.id) has a partial fan-out")
            }
        }
    }
}
