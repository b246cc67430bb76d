import CPowerCutVFS
import Foundation
import KeyRelay
import Testing

/// Power cuts (issue #15). A SIGKILL leaves the OS page cache intact, so the crash tests cannot tell a durable
/// commit from one that merely reached the page cache. Here the child (`KeyRelayPowerCutChild`) runs the engine
/// through a SQLite VFS that keeps every write since the last fsync in the process's memory and loses it at a
/// seeded moment (sometimes tearing a flush at 512-byte sectors, sometimes letting a random part of the unsynced
/// sectors through). After each cut the database is reopened as it is on disk: `integrity_check` must be ok and
/// every acknowledged command, event and notification outcome must be there.
@Suite("Power cuts")
struct PowerCutTests {
    /// 8 lanes × 26 cuts, each lane on its own database file, the lanes in parallel (the children mostly wait for
    /// fsync, so more lanes than cores still go faster).
    @Test(.timeLimit(.minutes(6)))
    func powerCutsLoseNothingAcknowledged() async throws {
        let executable = try #require(PowerCut.childExecutable(), "KeyRelayPowerCutChild must be built next to the tests")
        let report = try await PowerCut.run(executable, lanes: 8, cutsPerLane: 26, seedBase: 15_000, control: false)
        print(report.figureLine(title: "power-cut"))
        #expect(report.cuts >= 200)
        #expect(report.unexpectedExits.isEmpty, "\(report.unexpectedExits.prefix(5))")
        #expect(report.corruptions.isEmpty, "\(report.corruptions.prefix(5))")
        #expect(report.losses.isEmpty, "\(report.losses.prefix(10))")
        #expect(report.halfDone.isEmpty, "\(report.halfDone.prefix(10))")
        // The cuts really lost unsynced writes, and the workload really did work.
        #expect(report.droppedSectors > 0)
        #expect(report.acknowledgedChecked >= 1_000)
        #expect(report.ackLines > 0, "no notification acknowledgement was ever checked")
        #expect(report.syncs > 0)
        #expect(report.databaseSyncs > 0, "no cut ever ran with a checkpoint behind it")
    }

    /// The same test with `synchronous = OFF` must find acknowledged writes missing: proof that it can fail.
    @Test(.timeLimit(.minutes(4)))
    func controlWithSynchronousOffDetectsLosses() async throws {
        let executable = try #require(PowerCut.childExecutable(), "KeyRelayPowerCutChild must be built next to the tests")
        let report = try await PowerCut.run(executable, lanes: 2, cutsPerLane: 8, seedBase: 95_000, control: true)
        print(report.figureLine(title: "power-cut control (synchronous = OFF)"))
        #expect(report.unexpectedExits.isEmpty, "\(report.unexpectedExits.prefix(5))")
        #expect(report.syncs == 0, "synchronous = OFF never fsyncs: the control did not run with OFF")
        #expect(report.losses.count >= 1, "the control lost nothing: the test cannot tell durable from not")
    }
}

/// What the children acknowledged on one database file, across its cuts.
struct PowerCutLedger {
    /// Key id → the highest event sequence acknowledged.
    var keys: [String: Int] = [:]
    /// "keyID CRN".
    var registrations: Set<String> = []
    /// Notification ids acknowledged.
    var acknowledgements: Set<Int64> = []

    var count: Int { keys.count + registrations.count + acknowledgements.count }
}

struct PowerCutReport: Sendable {
    var cuts = 0
    var cutsByReason: [String: Int] = [:]
    var acknowledgedLines = 0
    var ackLines = 0
    /// Acknowledged facts checked after a cut (each key, registration and acknowledgement, every time it is checked).
    var acknowledgedChecked = 0
    var syncs: Int64 = 0
    /// Syncs of the database file itself: checkpoints.
    var databaseSyncs: Int64 = 0
    var droppedSectors: Int64 = 0
    var persistedSectors: Int64 = 0
    var losses: [String] = []
    var corruptions: [String] = []
    var halfDone: [String] = []
    var unexpectedExits: [String] = []
    var seconds = 0.0
    /// Summed over lanes: time in children (to their cut) and in checking what is on disk.
    var childSeconds = 0.0
    var checkSeconds = 0.0

    mutating func merge(_ other: PowerCutReport) {
        cuts += other.cuts
        cutsByReason.merge(other.cutsByReason, uniquingKeysWith: +)
        acknowledgedLines += other.acknowledgedLines
        ackLines += other.ackLines
        acknowledgedChecked += other.acknowledgedChecked
        syncs += other.syncs
        databaseSyncs += other.databaseSyncs
        droppedSectors += other.droppedSectors
        persistedSectors += other.persistedSectors
        losses += other.losses
        corruptions += other.corruptions
        halfDone += other.halfDone
        unexpectedExits += other.unexpectedExits
        childSeconds += other.childSeconds
        checkSeconds += other.checkSeconds
    }

    func figureLine(title: String) -> String {
        let reasons = cutsByReason.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        return "\(title): \(cuts) cuts (\(reasons)); \(acknowledgedLines) acknowledged lines (\(ackLines) notification acks); "
            + "\(acknowledgedChecked) acknowledged facts checked; \(syncs) syncs (\(databaseSyncs) of them checkpoints); unsynced sectors dropped \(droppedSectors), "
            + "let through \(persistedSectors); losses \(losses.count), corrupt \(corruptions.count), "
            + "half-done \(halfDone.count); \(String(format: "%.1f", seconds)) s "
            + "(summed over lanes: children \(String(format: "%.1f", childSeconds)) s, checks \(String(format: "%.1f", checkSeconds)) s)"
    }
}

enum PowerCut {
    static let instance = "power"

    static func childExecutable() -> URL? {
        var candidates: [URL] = []
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(dir.appendingPathComponent("KeyRelayPowerCutChild"))
            dir = dir.deletingLastPathComponent()
        }
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("KeyRelayPowerCutChild"))
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    static func configuration() -> KeyRelayConfiguration {
        var configuration = KeyRelayConfiguration()
        configuration.lifecycle.enableRestoreCooldown = 0
        configuration.lifecycle.rotationInterval = 0
        configuration.lifecycle.syncCooldown = -1
        return configuration
    }

    /// Runs `lanes` lanes in parallel, each cutting `cutsPerLane` children on its own database file.
    static func run(_ executable: URL, lanes: Int, cutsPerLane: Int, seedBase: UInt64, control: Bool) async throws -> PowerCutReport {
        let started = Date()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keyrelay-powercut-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let master = MasterKey.generate()
        var report = try await withThrowingTaskGroup(of: PowerCutReport.self) { group in
            for lane in 0..<lanes {
                let path = directory.appendingPathComponent("lane\(lane).sqlite").path
                let seed = seedBase + UInt64(lane) * 1_000
                group.addTask {
                    try await runLane(executable, path: path, master: master, seed: seed, cuts: cutsPerLane, control: control)
                }
            }
            var total = PowerCutReport()
            for try await lane in group { total.merge(lane) }
            return total
        }
        report.seconds = Date().timeIntervalSince(started)
        return report
    }

    /// One database file: cut a child, check what is on disk against everything acknowledged so far, again.
    static func runLane(_ executable: URL, path: String, master: MasterKey, seed: UInt64, cuts: Int,
                        control: Bool) async throws -> PowerCutReport {
        var report = PowerCutReport()
        var ledger = PowerCutLedger()
        for cut in 0..<cuts {
            let childSeed = seed + UInt64(cut)
            let childStarted = Date()
            let run = try await runChild(executable, path: path, master: master, seed: childSeed, control: control)
            report.childSeconds += Date().timeIntervalSince(childStarted)
            let tag = "seed \(childSeed)\(control ? " --synchronous-off" : "")"
            guard run.status == POWERCUT_EXIT_STATUS, let cutLine = run.lines.last(where: { $0.hasPrefix("cut ") }) else {
                report.unexpectedExits.append("\(tag): exit \(run.status): \(run.stderr.prefix(500))")
                if !control { return report }
                continue
            }
            report.cuts += 1
            let fields = cutLine.split(separator: " ")
            report.cutsByReason[String(fields[1]), default: 0] += 1
            for field in fields.dropFirst(2) {
                let pair = field.split(separator: "=")
                guard pair.count == 2, let value = Int64(pair[1]) else { continue }
                switch pair[0] {
                case "syncs": report.syncs += value
                case "dbsyncs": report.databaseSyncs += value
                case "dropped": report.droppedSectors += value
                case "persisted": report.persistedSectors += value
                default: break
                }
            }
            for line in run.lines {
                let parts = line.split(separator: " ", maxSplits: 2).map(String.init)
                guard parts.count >= 2 else { continue }
                switch parts[0] {
                case "key" where parts.count == 3:
                    guard let sequence = Int(parts[2]) else { continue }
                    ledger.keys[parts[1]] = max(ledger.keys[parts[1]] ?? 0, sequence)
                    report.acknowledgedLines += 1
                case "reg" where parts.count == 3:
                    ledger.registrations.insert("\(parts[1]) \(parts[2])")
                    report.acknowledgedLines += 1
                case "ack":
                    guard let id = Int64(parts[1]) else { continue }
                    ledger.acknowledgements.insert(id)
                    report.acknowledgedLines += 1
                    report.ackLines += 1
                default: continue
                }
            }
            let checkStarted = Date()
            let verdict = try await check(path: path, master: master, ledger: &ledger)
            report.checkSeconds += Date().timeIntervalSince(checkStarted)
            report.acknowledgedChecked += verdict.checked
            report.losses += verdict.losses.map { "\(tag): \($0)" }
            report.halfDone += verdict.halfDone.map { "\(tag): \($0)" }
            if let corruption = verdict.corruption {
                report.corruptions.append("\(tag): \(corruption)")
                if !control { return report }
                // The control may leave a database that cannot be used: start the lane again on a new file.
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
                ledger = PowerCutLedger()
            }
        }
        return report
    }

    struct ChildRun: Sendable {
        var status: Int32
        var lines: [String]
        var stderr: String
    }

    /// Runs one child to its power cut.
    static func runChild(_ executable: URL, path: String, master: MasterKey, seed: UInt64, control: Bool) async throws -> ChildRun {
        let process = Process()
        process.executableURL = executable
        process.arguments = [path, String(seed)] + (control ? ["--synchronous-off"] : [])
        var environment = ProcessInfo.processInfo.environment
        environment["KEYRELAY_MASTER_KEY"] = master.base64EncodedString()
        process.environment = environment
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let stdout = output.fileHandleForReading
        // stdout is read to its end on a thread of its own (the read blocks), so a full pipe never stalls the child.
        let data = await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: stdout.readDataToEndOfFile()) }
        }
        process.waitUntilExit()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        // Only whole lines count: a line the cut interrupted is not an acknowledgement.
        var text = String(decoding: data, as: UTF8.self)
        if !text.hasSuffix("\n") { text = text.lastIndex(of: "\n").map { String(text[...$0]) } ?? "" }
        return ChildRun(status: process.terminationStatus, lines: text.split(separator: "\n").map(String.init),
                        stderr: String(decoding: stderr, as: UTF8.self))
    }

    struct Verdict {
        var checked = 0
        var losses: [String] = []
        var halfDone: [String] = []
        var corruption: String?
    }

    /// Reopens the database as it is on disk (no VFS layer in this process) and checks it against the ledger.
    /// Lost facts are reported once, then dropped from the ledger.
    static func check(path: String, master: MasterKey, ledger: inout PowerCutLedger) async throws -> Verdict {
        var verdict = Verdict()
        var buffer = [CChar](repeating: 0, count: 4096)
        let rc = powercut_integrity_check(path, &buffer, Int32(buffer.count))
        let integrity = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard rc == 0, integrity == "ok" else {
            verdict.corruption = "integrity_check: \(integrity) (rc \(rc))"
            verdict.losses = ["everything on a corrupt database (\(ledger.count) acknowledged facts)"]
            return verdict
        }
        let snapshot: Snapshot
        do {
            snapshot = try await Snapshot.read(path: path, master: master)
        } catch {
            verdict.corruption = "the engine cannot open it: \(error)"
            return verdict
        }
        try waitUntilClosed(path)

        for (keyID, sequence) in ledger.keys {
            verdict.checked += 1
            let stored = snapshot.keys[keyID]?.eventSequence ?? 0
            if stored < sequence {
                verdict.losses.append("key \(keyID): acknowledged event \(sequence), found \(stored)")
                ledger.keys[keyID] = stored == 0 ? nil : stored
            }
        }
        for registration in ledger.registrations {
            verdict.checked += 1
            if !snapshot.registrations.contains(registration) {
                verdict.losses.append("registration \(registration)")
                ledger.registrations.remove(registration)
            }
        }
        for id in ledger.acknowledgements {
            verdict.checked += 1
            if snapshot.notificationStatus[id] != .acknowledged {
                verdict.losses.append("notification \(id): acknowledged, found \(snapshot.notificationStatus[id].map(\.rawValue) ?? "nothing")")
                ledger.acknowledgements.remove(id)
            }
        }
        // Nothing half-done: each key's events are 1...eventSequence, and each notifying event has one notification
        // per registration of its key (the child registers before any notifying event of a key).
        for key in snapshot.keys.values {
            let events = snapshot.eventsByKey[key.id] ?? []
            if events.map(\.keySequence) != Array(stride(from: 1, through: key.eventSequence, by: 1)) {
                verdict.halfDone.append("key \(key.id): events \(events.map(\.keySequence)) for sequence \(key.eventSequence)")
            }
            let registrations = snapshot.registrationCount[key.id] ?? 0
            for event in events where event.kind.notifiesResources {
                let fanOut = snapshot.notificationsByEvent[event.id] ?? 0
                if fanOut != registrations {
                    verdict.halfDone.append("key \(key.id) \(event.kind) #\(event.keySequence): \(fanOut) notifications for \(registrations) registrations")
                }
            }
        }
        return verdict
    }

    /// Everything on disk that the checks need, read through the public engine API.
    struct Snapshot {
        var keys: [String: Key] = [:]
        var registrations: Set<String> = []
        var registrationCount: [String: Int] = [:]
        var eventsByKey: [String: [LifecycleEvent]] = [:]
        var notificationStatus: [Int64: NotificationStatus] = [:]
        var notificationsByEvent: [String: Int] = [:]

        static func read(path: String, master: MasterKey) async throws -> Snapshot {
            let engine = try await KeyRelayEngine.open(path: path, masterKey: master, configuration: PowerCut.configuration())
            let context = RequestContext(instanceID: PowerCut.instance, principal: "power-cut-checker")
            var snapshot = Snapshot()
            let page = 5_000
            var query = KeyQuery()
            query.states = [.active, .suspended, .deactivated, .destroyed]
            query.limit = page
            while true {
                let keys = try await engine.listKeys(query, context: context).items
                for key in keys { snapshot.keys[key.id] = key }
                if keys.count < page { break }
                query.offset += page
            }
            var offset = 0
            while true {
                let registrations = try await engine.registrations(limit: page, offset: offset, context: context).items
                for registration in registrations {
                    snapshot.registrations.insert("\(registration.keyID) \(registration.resourceCRN)")
                    snapshot.registrationCount[registration.keyID, default: 0] += 1
                }
                if registrations.count < page { break }
                offset += page
            }
            var after: Int64 = 0
            while true {
                let events = try await engine.events(after: after, limit: page, context: context)
                for event in events { snapshot.eventsByKey[event.keyID, default: []].append(event) }
                guard let last = events.last, events.count == page else { break }
                after = last.sequence
            }
            offset = 0
            while true {
                let notifications = try await engine.notifications(limit: page, offset: offset)
                for notification in notifications {
                    snapshot.notificationStatus[notification.id] = notification.status
                    snapshot.notificationsByEvent[notification.event.id, default: 0] += 1
                }
                if notifications.count < page { break }
                offset += page
            }
            return snapshot  // the engine, its store and its connections go with this scope
        }
    }

    /// The next child must find no connection of this process on the file: a real power cut takes the shared
    /// memory too, and SQLite rebuilds it only when no connection is open. Waits for the released engine's
    /// connections to close (Linux: by the process's open descriptors; elsewhere, nothing to look at).
    static func waitUntilClosed(_ path: String) throws {
        #if os(Linux)
        let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        for _ in 0..<500 {
            let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
            let open = descriptors.contains { fd in
                let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")) ?? ""
                return target.hasPrefix(real)
            }
            if !open { return }
            Thread.sleep(forTimeInterval: 0.01)
        }
        throw PowerCutError.stillOpen(path)
        #endif
    }

    enum PowerCutError: Error { case stillOpen(String) }
}
