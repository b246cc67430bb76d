import Foundation
import Testing
@testable import KeyRelay

let start = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01T00:00:00Z
let alice = RequestContext(instanceID: "instance-a", principal: "alice")
let bob = RequestContext(instanceID: "instance-a", principal: "bob")
let mallory = RequestContext(instanceID: "instance-b", principal: "mallory")
let bucketCRN = CRN.bucket(account: "acct", serviceInstance: "cos-1", bucket: "invoices")

/// An engine on a manual clock and a private database: a temp file when `path` is given, otherwise
/// `StoreLocation.testDatabase()` (in memory, or a fresh PostgreSQL database with `KEYRELAY_TEST_BACKEND=postgres`).
func makeEngine(path: String? = nil, master: MasterKey = testMaster, configuration: KeyRelayConfiguration = KeyRelayConfiguration())
    async throws -> (KeyRelayEngine, ManualClock) {
    let clock = ManualClock(start: start)
    let engine: KeyRelayEngine
    if let path {
        engine = try await KeyRelayEngine.open(path: path, masterKey: master, clock: clock, ids: SeededIdentifiers(seed: 7), configuration: configuration)
    } else {
        engine = try await KeyRelayEngine.open(try await .testDatabase(), masterKey: master, clock: clock, ids: SeededIdentifiers(seed: 7),
                                               configuration: configuration)
    }
    return (engine, clock)
}

let testMaster = MasterKey.generate()

func temporaryPath(_ name: String = "keyrelay.sqlite") throws -> String {
    let dir = FileManager.default.temporaryDirectory.appending(path: "keyrelay-engine-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appending(path: name).path
}

/// Runs `body`, expecting a KeyRelayError with `code`; returns it.
@discardableResult
func expectError(_ code: ReasonCode, sourceLocation: SourceLocation = #_sourceLocation,
                 _ body: () async throws -> Void) async -> KeyRelayError? {
    do {
        try await body()
        Issue.record("expected \(code.rawValue), but the call succeeded", sourceLocation: sourceLocation)
    } catch {
        guard let error = error as? KeyRelayError else {
            Issue.record("expected \(code.rawValue), got \(error)", sourceLocation: sourceLocation)
            return nil
        }
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        #expect(error.status == code.status, sourceLocation: sourceLocation)
        return error
    }
    return nil
}
