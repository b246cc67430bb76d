import Foundation
@testable import KeyRelay
import KeyRelayBus
import KeyRelaySQLite
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a child's stdout line by line on a dedicated thread (blocking reads stay off the cooperative pool).
final class LineReader: @unchecked Sendable {
    let lines: AsyncStream<String>
    init(_ handle: FileHandle) {
        let (stream, continuation) = AsyncStream.makeStream(of: String.self)
        lines = stream
        Thread.detachNewThread {
            var buffer = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                buffer.append(chunk)
                while let newline = buffer.firstIndex(of: 0x0A) {
                    continuation.yield(String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self))
                    buffer = Data(buffer[buffer.index(after: newline)...])
                }
            }
            continuation.finish()
        }
    }
}

@Suite("Crash safety of delivery")
struct CrashTests {
    static let instance = "crash"

    /// The built `KeyRelayCrashChild`, next to the test bundle in the products directory.
    static func childExecutable() -> URL? {
        var candidates: [URL] = []
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(dir.appendingPathComponent("KeyRelayCrashChild"))
            dir = dir.deletingLastPathComponent()
        }
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("KeyRelayCrashChild"))
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    static func configuration() -> KeyRelayConfiguration {
        var configuration = KeyRelayConfiguration()
        configuration.lifecycle.enableRestoreCooldown = 0
        configuration.lifecycle.rotationInterval = 0
        configuration.lifecycle.syncCooldown = -1
        return configuration
    }

    /// Writes keys, registrations and lifecycle actions: every notification starts pending.
    static func prepare(path: String, master: MasterKey) async throws -> Int {
        let engine = try await KeyRelayEngine.open(path: path, masterKey: master, ids: SeededIdentifiers(seed: 5),
                                                   configuration: configuration())
        let ops = RequestContext(instanceID: instance, principal: "operator")
        for k in 0..<8 {
            let key = try await engine.createKey(KeySpec(name: "k\(k)"), context: ops)
            for b in 0..<3 {
                try await engine.register(keyID: key.id, resourceCRN: CRN.bucket(account: "a", serviceInstance: "cos", bucket: "b\(k)-\(b)"), context: ops)
            }
            try await engine.register(keyID: key.id, resourceCRN: CRN.deployment(account: "a", deployment: "d\(k)"), context: ops)
            try await engine.rotate(key.id, context: ops)
            try await engine.disable(key.id, context: ops)
            try await engine.enable(key.id, context: ops)
            try await engine.sync(key.id, context: ops)
            try await engine.delete(key.id, force: true, context: ops)
        }
        let total = try await engine.deliveryCounts(instanceID: instance).pending
        try (engine.storage as? SQLiteStore)?.close()
        return total
    }

    struct Run {
        var acked: [Int64] = []
        var finished = false
    }

    /// Runs the child; kills it with SIGKILL after `killAfter` lines of output (nil: let it finish).
    static func runChild(_ executable: URL, path: String, master: MasterKey, seed: UInt64, killAfter: Int?) async throws -> Run {
        let process = Process()
        process.executableURL = executable
        process.arguments = ["dispatch", path, String(seed)]
        var environment = ProcessInfo.processInfo.environment
        environment["KEYRELAY_MASTER_KEY"] = master.base64EncodedString()
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let reader = LineReader(pipe.fileHandleForReading)
        var run = Run()
        var lines = 0
        if killAfter == 0 { kill(process.processIdentifier, SIGKILL) }
        for await line in reader.lines {
            lines += 1
            if line.hasPrefix("ack "), let id = Int64(line.dropFirst(4)) { run.acked.append(id) }
            if line == "done" { run.finished = true }
            if let killAfter, lines >= killAfter { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        return run
    }

    @Test(.timeLimit(.minutes(10)))
    func killedDuringDispatchLosesNothing() async throws {
        let executable = try #require(Self.childExecutable(), "KeyRelayCrashChild must be built next to the tests")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keyrelay-crash-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("keyrelay.sqlite").path
        let master = MasterKey.generate()
        let total = try await Self.prepare(path: path, master: master)
        #expect(total == 8 * 4 * 5)

        var generator = SeededGenerator(seed: 2024)
        var printed: [Int64] = []
        var kills = 0
        var midRunKills = 0
        var immediateKills = 0
        for round in 0..<24 {
            // Kill at a random point: before it starts, right after it opened the database, or after some acks.
            let killAfter = Int.random(in: 0...6, using: &generator)
            if killAfter == 0 { immediateKills += 1 }
            let run = try await Self.runChild(executable, path: path, master: master, seed: UInt64(round), killAfter: killAfter)
            printed += run.acked
            if !run.finished {
                kills += 1
                if killAfter > 0 { midRunKills += 1 }
            }
        }
        // The test proves something only if children really die: every round killed before it starts, and at least
        // one in the middle of its deliveries. (How many later rounds die depends on how fast a child finishes the
        // little work left, which no fixed count can bound: seen from 5 to 16 of 24 on the same machine.)
        #expect(kills >= immediateKills && midRunKills >= 1, "killed \(kills) of 24, \(midRunKills) mid-run")
        let final = try await Self.runChild(executable, path: path, master: master, seed: 99, killAfter: nil)
        #expect(final.finished)
        printed += final.acked

        let engine = try await KeyRelayEngine.open(path: path, masterKey: master, configuration: Self.configuration())
        let counts = try await engine.deliveryCounts(instanceID: Self.instance)
        #expect(counts == DeliveryCounts(acknowledged: total))
        // At most one acknowledgement per hand-over in flight (the child runs 4 at once) can have committed without its
        // line being printed when the child was killed.
        let unique = Set(printed)
        #expect(unique.count >= total - kills * 4)
        #expect(unique.count <= total)
        // Duplicates changed nothing: every resource reports the state of its key's latest event.
        let ops = RequestContext(instanceID: Self.instance, principal: "operator")
        let registrations = try await engine.registrations(limit: 5000, context: ops).items
        #expect(registrations.count == 8 * 4)
        for registration in registrations {
            let latest = try #require(try await engine.events(keyID: registration.keyID).last { $0.kind.notifiesResources })
            #expect(registration.acknowledgement?.eventID == latest.id)
            #expect(registration.acknowledgement?.adopterKeyState == .deleted)
        }
        #expect(try await engine.drift(context: ops).isEmpty)
        #expect(try (engine.storage as? SQLiteStore)?.integrityCheck() == "ok")
    }
}
