import Foundation
import KeyRelay
import KeyRelayAdapters

/// How scenarios run.
public struct ScenarioOptions: Sendable {
    /// The seed of identifiers, imported material and bus jitter. The same seed gives the same transcript.
    public var seed: UInt64
    /// Where the clock starts unless the scenario says `clock start`.
    public var start: Date
    /// The Key Protect instance the scenario acts in.
    public var instanceID: String
    /// Who acts when a step names nobody (`as <principal>`).
    public var principal: String
    /// Where each scenario keeps its data (a database of its own, created new, either way).
    public var database: ScenarioDatabase

    /// The default seed (`--seed` overrides it).
    public static let defaultSeed: UInt64 = 20_260_101

    public init(seed: UInt64 = ScenarioOptions.defaultSeed, start: Date = Date(timeIntervalSince1970: 1_767_225_600),
                instanceID: String = "scenario", principal: String = "operator", database: ScenarioDatabase = .inMemory) {
        self.seed = seed
        self.start = start
        self.instanceID = instanceID
        self.principal = principal
        self.database = database
    }
}

/// Where a scenario's engine keeps its data. Every scenario runs on a database of its own, created new, so one
/// scenario never sees another's keys and a transcript does not depend on what ran before it.
public enum ScenarioDatabase: Sendable {
    /// A private in-memory SQLite database per scenario, gone when the scenario ends.
    case inMemory
    /// A new SQLite file per scenario in `directory` (created if missing), named after the scenario file
    /// (`scenarios/00-seed-story.scenario` → `scenarios_00-seed-story.sqlite`) and left there with the scenario's
    /// own master key beside it (`….master-key`, mode 0600), so that
    /// `keyrelay status --db FILE --master-key-file FILE.master-key` can look at what a scenario did. A scenario
    /// whose database file already exists fails at its start rather than run on data it did not write.
    case sqliteFiles(directory: String)
    /// A new database per scenario from `make` (a fresh PostgreSQL database, say).
    case fresh(@Sendable () async throws -> StoreLocation)

    /// The location of `scenarioFile`'s database; a file location also gets `masterKey` written beside it.
    func location(for scenarioFile: String, masterKey: MasterKey) async throws -> StoreLocation {
        switch self {
        case .inMemory:
            return .inMemory
        case .fresh(let make):
            return try await make()
        case .sqliteFiles(let directory):
            var name = scenarioFile.hasSuffix(".scenario") ? String(scenarioFile.dropLast(".scenario".count)) : scenarioFile
            while name.hasPrefix("./") { name.removeFirst(2) }
            name = String(name.map { $0 == "/" || $0 == "\\" ? "_" : $0 })
            let path = (directory as NSString).appendingPathComponent(name + ".sqlite")
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            guard !FileManager.default.fileExists(atPath: path) else {
                throw ScenarioRunError(description: "\(path) already exists: each scenario runs on a database it creates; choose an empty --db-dir or remove the file")
            }
            let keyPath = path + ".master-key"
            guard FileManager.default.createFile(atPath: keyPath, contents: Data(masterKey.base64EncodedString().utf8),
                                                 attributes: [.posixPermissions: 0o600]) else {
                throw ScenarioRunError(description: "cannot write the scenario's master key to \(keyPath)")
            }
            return .file(path)
        }
    }
}

/// Runs scenarios: each on a fresh engine over a database of its own (``ScenarioOptions/database``: in memory, or a
/// new SQLite file), a manual clock, seeded identifiers and a seeded bus, so a run is reproducible byte for byte.
public struct ScenarioRunner: Sendable {
    public var options: ScenarioOptions

    public init(options: ScenarioOptions = ScenarioOptions()) {
        self.options = options
    }

    /// Parses and runs scenario text. A syntax error yields one failed `syntax-error` entry and runs nothing.
    /// - Parameter emit: called with each transcript entry as soon as it is final.
    public func run(text: String, file: String,
                    emit: @Sendable (TranscriptEntry) -> Void = { _ in }) async -> ScenarioResult {
        await run(bytes: Array(text.utf8), file: file, emit: emit)
    }

    /// Parses and runs the bytes of a scenario file (see ``ScenarioParser/parse(bytes:file:)``).
    public func run(bytes: [UInt8], file: String,
                    emit: @Sendable (TranscriptEntry) -> Void = { _ in }) async -> ScenarioResult {
        let scenario: Scenario
        do {
            scenario = try ScenarioParser.parse(bytes: bytes, file: file)
        } catch {
            let entry = TranscriptEntry(file: file, line: error.line, column: error.column, kind: .syntaxError, ok: false,
                                        step: error.description, expected: error.expected)
            emit(entry)
            return ScenarioResult(file: file, entries: [entry], tally: ScenarioTally(passed: 0, failed: 1))
        }
        return await run(scenario, emit: emit)
    }

    /// Runs a parsed scenario.
    public func run(_ scenario: Scenario, emit: @Sendable (TranscriptEntry) -> Void = { _ in }) async -> ScenarioResult {
        var entries: [TranscriptEntry] = []
        var tally = ScenarioTally()
        func record(_ entry: TranscriptEntry) {
            entries.append(entry)
            emit(entry)
        }
        do {
            // A scenario that opens with `clock start` runs on a clock that starts there, whatever the default start:
            // the clock never has to move backwards.
            var options = options
            if case .clockStart(let date) = scenario.steps.first?.action { options.start = date }
            let execution = try await Execution(options: options, file: scenario.file)
            await execution.run(scenario.steps, record: record, tally: &tally)
        } catch {
            record(TranscriptEntry(file: scenario.file, line: 0, kind: .step, ok: false, step: "start the engine",
                                   expected: "an engine", saw: "\(error)"))
            tally.failed += 1
        }
        return ScenarioResult(file: scenario.file, entries: entries, tally: tally)
    }

    /// The largest scenario file read: 8 MiB (bundled scenarios are a few KiB).
    public static let maximumFileBytes = 8 * 1024 * 1024

    /// Runs a scenario file.
    /// - Throws: ``ScenarioRunError`` when the file cannot be read or is larger than ``maximumFileBytes``.
    public func run(file path: String, displayName: String? = nil,
                    emit: @Sendable (TranscriptEntry) -> Void = { _ in }) async throws -> ScenarioResult {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ScenarioRunError(description: "cannot open \(path)")
        }
        defer { try? handle.close() }
        // Read at most one byte past the bound, so a huge file is refused without being loaded.
        let data = try handle.read(upToCount: Self.maximumFileBytes + 1) ?? Data()
        guard data.count <= Self.maximumFileBytes else {
            throw ScenarioRunError(description: "\(path) is larger than \(Self.maximumFileBytes / 1024 / 1024) MiB; scenario files are small scripts")
        }
        return await run(bytes: [UInt8](data), file: displayName ?? path, emit: emit)
    }

    /// The `*.scenario` files a list of paths names: files as given, directories searched recursively, each
    /// directory's files in name order.
    public static func scenarioFiles(in paths: [String]) throws -> [String] {
        var files: [String] = []
        let fm = FileManager.default
        for path in paths {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw ScenarioRunError(description: "No such file or directory: \(path)")
            }
            if !isDirectory.boolValue { files.append(path); continue }
            guard let walker = fm.enumerator(atPath: path) else { continue }
            var found: [String] = []
            while let relative = walker.nextObject() as? String {
                if relative.hasSuffix(".scenario") { found.append(relative) }
            }
            let base = path.hasSuffix("/") ? String(path.dropLast()) : path
            files += found.sorted().map { "\(base)/\($0)" }
        }
        return files
    }
}

/// One scenario's run: the engine, the clock, the services and the names the script gave.
final class Execution {
    let file: String
    let options: ScenarioOptions
    let clock: ManualClock
    let engine: KeyRelayEngine
    let services: any ScenarioServices
    var material: SeededGenerator
    var keys: [String: String] = [:]
    var resources: [String: (kind: ResourceKind, crn: String)] = [:]
    var resourceKeys: [String: String] = [:]
    var ciphertexts: [String: String] = [:]
    var lastPlaintext: Data?
    var lastOutcome: Outcome?
    var actionsRun = 0

    /// The outcome of the last step that was not an expectation.
    enum Outcome {
        case success(status: Int?)
        /// `hint` is KeyRelay's own explanation (``KeyRelayError/hint``), beside Key Protect's `message`.
        case failure(status: Int?, code: String?, message: String, hint: String? = nil)

        var summary: String {
            switch self {
            case .success(let status): status.map { "success (\($0))" } ?? "success"
            case .failure(let status, let code, let message, let hint):
                [status.map(String.init), code].compactMap { $0 }.joined(separator: " ") + ": " + message
                    + (hint.map { " (hint: \($0))" } ?? "")
            }
        }
    }

    init(options: ScenarioOptions, file: String) async throws {
        self.options = options
        self.file = file
        clock = ManualClock(start: options.start)
        let masterKey = MasterKey.generate()
        engine = try await KeyRelayEngine.open(try await options.database.location(for: file, masterKey: masterKey), masterKey: masterKey,
                                               clock: clock, ids: SeededIdentifiers(seed: options.seed))
        material = SeededGenerator(seed: options.seed ^ 0x6D61_7465_7269_616C)
        services = BusServices(engine: engine, clock: clock, seed: options.seed, instanceID: options.instanceID)
    }

    func context(_ principal: String?) -> RequestContext {
        RequestContext(instanceID: options.instanceID, principal: principal ?? options.principal)
    }

    func run(_ steps: [ScenarioStep], record: (TranscriptEntry) -> Void, tally: inout ScenarioTally) async {
        var heldFailure: TranscriptEntry?
        for step in steps {
            if var held = heldFailure {
                heldFailure = nil
                if step.action.isOutcomeExpectation {
                    held.ok = true
                    held.expected = nil
                    record(held)
                } else {
                    tally.failed += 1
                    record(held)
                }
            }
            if case .expect(let expectation) = step.action {
                let verdict = await check(expectation)
                if let failure = verdict {
                    tally.failed += 1
                    record(TranscriptEntry(file: file, line: step.line, kind: .expectation, ok: false, step: step.source,
                                           expected: failure.expected, saw: failure.saw))
                } else {
                    tally.passed += 1
                    record(TranscriptEntry(file: file, line: step.line, kind: .expectation, ok: true, step: step.source))
                }
                continue
            }
            let outcome = await perform(step.action)
            lastOutcome = outcome
            switch outcome {
            case .success:
                record(TranscriptEntry(file: file, line: step.line, kind: .step, ok: true, step: step.source))
            case .failure:
                heldFailure = TranscriptEntry(file: file, line: step.line, kind: .step, ok: false, step: step.source,
                                              expected: "success", saw: outcome.summary)
            }
        }
        if let held = heldFailure {
            tally.failed += 1
            record(held)
        }
    }

    // MARK: - Actions

    func perform(_ action: StepAction) async -> Outcome {
        do {
            let status = try await execute(action)
            return .success(status: status)
        } catch let error as KeyRelayError {
            return .failure(status: error.status, code: error.code.rawValue, message: error.message, hint: error.hint)
        } catch let error as ServiceAccessError {
            let status = switch error {
            case .accessDenied: 403
            case .noSuchResource, .noSuchItem: 404
            case .resourceExists: 409
            }
            return .failure(status: status, code: nil, message: error.description)
        } catch {
            return .failure(status: nil, code: nil, message: "\(error)")
        }
    }

    /// Runs a step; returns the HTTP status Key Protect would answer a successful request with.
    func execute(_ action: StepAction) async throws -> Int? {
        switch action {
        case .clockStart(let date):
            clock.set(to: date)
            return nil
        case .advance(let interval):
            try await advance(by: interval)
            return nil
        case .createKey(let name, let options, let principal):
            let spec = try keySpec(name: name, options)
            let key = try await engine.createKey(spec, context: context(principal))
            keys[name] = key.id
            return 201
        case .keyAction(let verb, let name, let force, let payload, let principal):
            let id = keys[name]!
            let ctx = context(principal)
            switch verb {
            case .rotate: try await engine.rotate(id, payload: payload, context: ctx); return 204
            case .disable: try await engine.disable(id, context: ctx); return 204
            case .enable: try await engine.enable(id, context: ctx); return 204
            case .delete: try await engine.delete(id, force: force, context: ctx); return 200
            case .restore: try await engine.restore(id, context: ctx); return 201
            case .purge: try await engine.purge(id, context: ctx); return 200
            case .sync: try await engine.sync(id, context: ctx); return 204
            case .setForDeletion: try await engine.setKeyForDeletion(id, context: ctx); return 204
            case .unsetForDeletion: try await engine.unsetKeyForDeletion(id, context: ctx); return 204
            }
        case .policy(let name, let change, let principal):
            switch change {
            case .dualAuth: try await engine.setPolicies(keys[name]!, dualAuthDelete: true, context: context(principal))
            case .rotation(let months):
                try await engine.setPolicies(keys[name]!, rotation: RotationPolicy(enabled: true, intervalMonth: months),
                                             context: context(principal))
            }
            return 200
        case .wrap(let name, let ciphertext, let plaintext, let principal):
            let result = try await engine.wrap(keys[name]!, plaintext: plaintext.map { Data($0.utf8) }, context: context(principal))
            ciphertexts[ciphertext] = result.ciphertext
            return 200
        case .unwrap(let name, let ciphertext, let principal):
            guard let text = ciphertexts[ciphertext] else {
                throw ScenarioRunError(description: "the ciphertext '\(ciphertext)' was never made (its wrap failed)")
            }
            lastPlaintext = try await engine.unwrap(keys[name]!, ciphertext: text, context: context(principal)).plaintext
            return 200
        case .createResource(let kind, let name, let key, let retention):
            let crn = try await services.createResource(kind, name: name, keyID: keys[key]!, retention: retention)
            resources[name] = (kind, crn)
            resourceKeys[name] = keys[key]!
            return 201
        case .write(let resource, let object, let text):
            try await services.write(try kind(resource), name: resource, object: object, text: text)
            return 200
        case .read(let resource, let object):
            _ = try await services.read(try kind(resource), name: resource, object: object)
            return 200
        case .bus(let fault, let service):
            try await services.inject(fault, service: service)
            return nil
        case .drain:
            try await services.drain()
            return nil
        case .expect:
            return nil
        }
    }

    func kind(_ resource: String) throws -> ResourceKind {
        guard let entry = resources[resource] else {
            throw ScenarioRunError(description: "'\(resource)' was never created (its create step failed)")
        }
        return entry.kind
    }

    func keySpec(name: String, _ options: KeyCreateOptions) throws -> KeySpec {
        var payload: Data?
        switch options.material {
        case .generated: payload = nil
        case .imported(let data): payload = data
        case .importedSeeded:
            var bytes = Data()
            for _ in 0..<4 { withUnsafeBytes(of: material.next().littleEndian) { bytes.append(contentsOf: $0) } }
            payload = bytes
        }
        let expiration = options.expiresAt ?? options.expiresIn.map { clock.now().addingTimeInterval($0) }
        return KeySpec(name: options.name ?? name, description: options.description, aliases: options.aliases,
                       extractable: options.kind == .standard, payload: payload, expirationDate: expiration,
                       dualAuthDelete: options.dualAuth ? true : nil,
                       rotation: options.rotationMonths.map { RotationPolicy(enabled: true, intervalMonth: $0) })
    }

    /// Moves the clock forward, stopping at every instant where a key expires or the bus has work, and doing that
    /// work there.
    func advance(by interval: TimeInterval) async throws {
        guard clock.canAdvance(by: interval) else {
            throw ScenarioRunError(description: "the clock cannot move past \(Timestamp.format(Timestamp.range.upperBound))")
        }
        try await services.advance(to: clock.now().addingTimeInterval(interval))
    }

    // MARK: - Expectations

    struct Failure {
        var expected: String
        var saw: String
    }

    func check(_ expectation: Expectation) async -> Failure? {
        do {
            return try await evaluate(expectation)
        } catch let error as KeyRelayError {
            return Failure(expected: describe(expectation), saw: "\(error.code.rawValue) (\(error.status)): \(error.message)")
        } catch {
            return Failure(expected: describe(expectation), saw: "\(error)")
        }
    }

    func describe(_ expectation: Expectation) -> String {
        switch expectation {
        case .ok: "success"
        case .status(let s): "status \(s)"
        case .error(let code, _): code
        case .keyState(_, let state): "state \(state)"
        case .keyPurged: "the key purged"
        case .keyVersion(_, let n): "version \(n)"
        case .access(_, let allowed): allowed ? "access allowed" : "access denied"
        case .resourceKeyVersion(_, let n): "key version \(n)"
        case .drift(_, let n): "\(n) drifted"
        case .notifications: "notification counts"
        case .read(_, _, let text): "'\(text)'"
        case .plaintext(let text): "'\(text)'"
        case .registrations(_, let n): "\(n) registration(s)"
        }
    }

    func evaluate(_ expectation: Expectation) async throws -> Failure? {
        func fail(_ expected: String, _ saw: String) -> Failure { Failure(expected: expected, saw: saw) }
        switch expectation {
        case .ok, .status, .error:
            guard let outcome = lastOutcome else { return fail(describe(expectation), "no earlier step") }
            switch (expectation, outcome) {
            case (.ok, .success): return nil
            case (.status(let want), .success(let status)), (.status(let want), .failure(let status, _, _, _)):
                return status == want ? nil : fail("status \(want)", status.map { "status \($0) (\(outcome.summary))" } ?? outcome.summary)
            case (.error(let code, let contains), .failure(_, let saw, let message, let hint)):
                guard saw == code else { return fail(code, outcome.summary) }
                // The text may come from Key Protect's message or from KeyRelay's hint beside it.
                if let contains, !message.contains(contains), !(hint?.contains(contains) ?? false) {
                    return fail("a message containing '\(contains)'", "'\(message)'" + (hint.map { " (hint: '\($0)')" } ?? ""))
                }
                return nil
            default:
                return fail(describe(expectation), outcome.summary)
            }
        case .keyState(let name, let state):
            let key = try await engine.key(keys[name]!, context: context(nil))
            return key.state == state ? nil : fail("state \(state)", "state \(key.state)")
        case .keyPurged(let name):
            do {
                let key = try await engine.key(keys[name]!, context: context(nil))
                return fail("the key purged", "state \(key.state)")
            } catch let error as KeyRelayError where error.code == .keyNotFound {
                return nil
            }
        case .keyVersion(let name, let count):
            let key = try await engine.key(keys[name]!, context: context(nil))
            return key.versionCount == count ? nil : fail("version \(count)", "version \(key.versionCount)")
        case .registrations(let name, let count):
            let page = try await engine.registrations(keyID: keys[name]!, context: context(nil))
            return page.total == count ? nil : fail("\(count) registration(s)", "\(page.total)")
        case .access(let resource, let allowed):
            let actual = try await services.isAccessible(try kind(resource), name: resource)
            return actual == allowed ? nil : fail(allowed ? "access allowed" : "access denied", actual ? "access allowed" : "access denied")
        case .resourceKeyVersion(let resource, let ordinal):
            let versionID = try await services.keyVersionInUse(try kind(resource), name: resource)
            let keyID = resourceKeys[resource]!
            let versions = try await engine.versions(keyID, limit: 5000, allKeyStates: true, context: context(nil)).items
            guard let index = versions.firstIndex(where: { $0.id == versionID }) else {
                return fail("key version \(ordinal)", "a version unknown to the key (\(versionID))")
            }
            let actual = versions.count - index
            return actual == ordinal ? nil : fail("key version \(ordinal)", "key version \(actual)")
        case .drift(let name, let count):
            let drift = try await engine.drift(keyID: name.map { keys[$0]! }, context: context(nil))
            return drift.count == count ? nil : fail("\(count) drifted", "\(drift.count) drifted")
        case .notifications(let name, let service, let wanted):
            let counts = try await engine.deliveryCounts(instanceID: options.instanceID, keyID: name.map { keys[$0]! },
                                                         service: service)
            let mismatched = wanted.filter { counts[$0.0] != $0.1 }
            guard !mismatched.isEmpty else { return nil }
            let expected = wanted.map { "\($0.0.rawValue)=\($0.1)" }.joined(separator: " ")
            let saw = wanted.map { "\($0.0.rawValue)=\(counts[$0.0])" }.joined(separator: " ")
            let rest = NotificationStatus.allCases.filter { s in !wanted.contains { $0.0 == s } && counts[s] > 0 }
                .map { "\($0.rawValue)=\(counts[$0])" }
            return fail(expected, ([saw] + rest).joined(separator: " "))
        case .read(let resource, let object, let text):
            do {
                let actual = try await services.read(try kind(resource), name: resource, object: object)
                return actual == text ? nil : fail("'\(text)'", "'\(actual)'")
            } catch let error as ServiceAccessError {
                return fail("'\(text)'", error.description)
            }
        case .plaintext(let text):
            guard let plaintext = lastPlaintext else { return fail("'\(text)'", "no unwrap yet") }
            let actual = String(decoding: plaintext, as: UTF8.self)
            return actual == text ? nil : fail("'\(text)'", "'\(actual)'")
        }
    }
}

