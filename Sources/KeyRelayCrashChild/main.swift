// A child process for crash tests: it runs real, durable engine commands against a database file and prints one
// line per command *after* the engine acknowledged it, so the parent knows what must survive a SIGKILL.
//
//   KeyRelayCrashChild lifecycle DB_PATH SEED   — create keys, register resources, rotate/disable/enable/delete/sync
//   KeyRelayCrashChild dispatch DB_PATH SEED    — deliver notifications (see Dispatch.swift)
//   KeyRelayCrashChild groupcommit DB_PATH SEED — concurrent writes through group commit (see GroupCommitChild.swift)
//
// The master key comes from KEYRELAY_MASTER_KEY.
import Foundation
import KeyRelay

/// Writes one line straight to the stdout file descriptor (no buffering: a SIGKILL must not eat it).
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

let arguments = CommandLine.arguments
guard arguments.count >= 4, let seed = UInt64(arguments[3]) else {
    FileHandle.standardError.write(Data("usage: KeyRelayCrashChild lifecycle|dispatch|groupcommit DB_PATH SEED\n".utf8))
    exit(64)
}
guard let master = try MasterKey.load() else {
    FileHandle.standardError.write(Data("KEYRELAY_MASTER_KEY is not set\n".utf8))
    exit(64)
}
switch arguments[1] {
case "lifecycle":
    try await runLifecycleChild(dbPath: arguments[2], seed: seed, master: master)
case "dispatch":
    try await runDispatchChild(dbPath: arguments[2], seed: seed, master: master)
case "groupcommit": await runGroupCommitChild(dbPath: arguments[2], seed: seed)
default:
    FileHandle.standardError.write(Data("unknown mode \(arguments[1])\n".utf8))
    exit(64)
}

/// Loops forever (until killed): each iteration creates a key, registers three resources, then runs a rotate,
/// disable, enable, sync and forced delete on it. Windows are zeroed so the real clock never refuses a step.
func runLifecycleChild(dbPath: String, seed: UInt64, master: MasterKey) async throws {
    var configuration = KeyRelayConfiguration()
    configuration.lifecycle.enableRestoreCooldown = 0
    configuration.lifecycle.rotationInterval = 0
    configuration.lifecycle.syncCooldown = -1
    let engine = try await KeyRelayEngine.open(path: dbPath, masterKey: master, ids: SeededIdentifiers(seed: seed &+ UInt64(getpid())),
                                               configuration: configuration)
    let context = RequestContext(instanceID: "crash", principal: "child")
    func committed(_ key: Key) { emit("ok \(key.id) \(key.eventSequence)") }
    var round = 0
    while true {
        round += 1
        let key = try await engine.createKey(KeySpec(name: "crash-\(seed)-\(round)"), context: context)
        committed(key)
        for index in 0..<3 {
            let crn = CRN.bucket(account: "acct", serviceInstance: "cos", bucket: "b-\(key.id.prefix(8))-\(index)")
            try await engine.register(keyID: key.id, resourceCRN: crn, context: context)
            emit("reg \(key.id) \(crn)")
        }
        committed(try await engine.rotate(key.id, context: context))
        committed(try await engine.disable(key.id, context: context))
        committed(try await engine.enable(key.id, context: context))
        let receipt = try await engine.sync(key.id, context: context)
        emit("ok \(key.id) \(receipt.event.keySequence)")
        committed(try await engine.delete(key.id, force: true, context: context))
    }
}
