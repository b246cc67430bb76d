// The process the power-cut test (Tests/KeyRelayTests/PowerCutTests.swift) loses power under (issue #15). Not
// shipped to users.
//
//   KeyRelayPowerCutChild DB_PATH SEED [--synchronous-off]
//
// It installs the power-cut VFS (CPowerCutVFS) as SQLite's default before anything opens a database, so the
// engine's store opens through it unchanged, with its default durability (`synchronous = FULL`). The seed picks
// when and how the power goes out (see `plan(seed:control:)`). The engine then runs a mixed workload until the
// cut: six concurrent lifecycle workers (create, register two resources, rotate, disable, enable, sync, forced
// delete, restore, sync — concurrent, so group commit batches them) and a dispatcher delivering every
// notification to subscribers that acknowledge it. One line is printed per outcome, after the engine call
// returned and never before:
//
//   key ID SEQ          the key exists with at least event sequence SEQ (create and every lifecycle command)
//   reg ID CRN          the registration exists
//   ack NOTIFICATION    the notification is acknowledged
//
// `--synchronous-off` is the control run: every connection runs with `synchronous = OFF` (the VFS ignores the
// store's FULL), so acknowledged writes may be lost and the test must see it. The master key comes from
// KEYRELAY_MASTER_KEY. The process ends by the cut (exit status 86, after a `cut ...` line), never by itself.
import CPowerCutVFS
import Foundation
import KeyRelay
import KeyRelayBus

/// Writes one whole line with one `write(2)` (unbuffered: the cut must not eat a printed line, nor print half).
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func fail(_ message: String, status: Int32) -> Never {
    FileHandle.standardError.write(Data("KeyRelayPowerCutChild: \(message)\n".utf8))
    exit(status)
}

/// When and how the power goes out, from the seed alone (so a seed reproduces a cut).
func plan(seed: UInt64, control: Bool) -> (powercut_plan, watchdog: Duration) {
    var random = SeededGenerator(seed: seed)
    var plan = powercut_plan()
    plan.seed = random.next()
    if control {
        // No fsync ever happens under synchronous = OFF: the cut is counted in writes, and the OS writes dirty
        // pages back now and then, so part of the work reaches the disk and part does not.
        plan.synchronous_off = 1
        plan.cut_after_writes = Int64.random(in: 40...900, using: &random)
        plan.writeback_every = Int64.random(in: 8...64, using: &random)
        return (plan, .seconds(3))
    }
    switch Int.random(in: 0..<10, using: &random) {
    case 0...3:  // at a sync, before it completes: every unsynced write is gone
        plan.cut_after_syncs = Int64.random(in: 1...60, using: &random)
    case 4...6:  // inside a sync's flush: a random part of its sectors reached the file (torn)
        plan.cut_after_syncs = Int64.random(in: 1...60, using: &random)
        plan.torn = 1
    case 7...8:  // between syncs, with a random half of the unsynced sectors written back in no order
        plan.cut_after_writes = Int64.random(in: 1...700, using: &random)
        plan.writeback_at_cut = 1
    default:     // between syncs, everything unsynced lost
        plan.cut_after_writes = Int64.random(in: 1...700, using: &random)
    }
    if Bool.random(using: &random) { plan.writeback_every = Int64.random(in: 4...80, using: &random) }
    // The checker's last connection checkpoints the WAL away, so checkpoints in the child come from a short
    // auto-checkpoint (half the runs; the other half keeps SQLite's 1000 pages).
    if Bool.random(using: &random) { plan.wal_autocheckpoint = Int32.random(in: 8...120, using: &random) }
    return (plan, .seconds(2))
}

/// Acknowledges every notification with the state its event asks for, then prints `ack <notification id>`.
final class AcknowledgingSubscriber: ServiceSubscriber {
    let client: any AdopterClient
    init(client: any AdopterClient) { self.client = client }
    func deliver(_ notification: ResourceNotification) async throws {
        let event = notification.event
        try await client.acknowledge(EventAcknowledgement(eventID: event.id, resourceCRN: notification.resourceCRN,
                                                            adopterKeyState: .expected(for: event.keyState),
                                                            keyVersionID: event.keyVersion.id, timestamp: Date()))
        emit("ack \(notification.id)")
    }
}

/// One worker's endless round of lifecycle commands, each acknowledged line printed after the call returned.
func lifecycleWorker(_ engine: KeyRelayEngine, seed: UInt64, worker: Int, context: RequestContext) async throws {
    func acknowledged(_ key: Key) { emit("key \(key.id) \(key.eventSequence)") }
    var round = 0
    while true {
        round += 1
        let key = try await engine.createKey(KeySpec(name: "power-\(seed)-\(worker)-\(round)"), context: context)
        acknowledged(key)
        let crns = [CRN.bucket(account: "acct", serviceInstance: "cos", bucket: "b-\(key.id.prefix(13))"),
                    CRN.deployment(account: "acct", deployment: "d-\(key.id.prefix(13))")]
        for crn in crns {
            try await engine.register(keyID: key.id, resourceCRN: crn, context: context)
            emit("reg \(key.id) \(crn)")
        }
        acknowledged(try await engine.rotate(key.id, context: context))
        acknowledged(try await engine.disable(key.id, context: context))
        acknowledged(try await engine.enable(key.id, context: context))
        emit("key \(key.id) \(try await engine.sync(key.id, context: context).event.keySequence)")
        acknowledged(try await engine.delete(key.id, force: true, context: context))
        acknowledged(try await engine.restore(key.id, context: context))
        emit("key \(key.id) \(try await engine.sync(key.id, context: context).event.keySequence)")
    }
}

let arguments = CommandLine.arguments
guard arguments.count >= 3, let seed = UInt64(arguments[2]) else {
    fail("usage: KeyRelayPowerCutChild DB_PATH SEED [--synchronous-off]", status: 64)
}
let path = arguments[1]
let control = arguments.dropFirst(3).contains("--synchronous-off")
let (cutPlan, watchdog) = plan(seed: seed, control: control)
var installed = cutPlan
guard powercut_install(&installed) == 0 else { fail("the power-cut VFS could not be installed", status: 70) }
guard let master = try MasterKey.load() else { fail("KEYRELAY_MASTER_KEY is not set", status: 64) }
emit("plan syncs=\(cutPlan.cut_after_syncs) writes=\(cutPlan.cut_after_writes) torn=\(cutPlan.torn) "
     + "writebackAtCut=\(cutPlan.writeback_at_cut) writebackEvery=\(cutPlan.writeback_every) "
     + "synchronousOff=\(cutPlan.synchronous_off) walAutocheckpoint=\(cutPlan.wal_autocheckpoint)")

// If the planned moment never comes (a short run), the power goes out anyway.
Thread.detachNewThread {
    Thread.sleep(forTimeInterval: Double(watchdog.components.seconds))
    powercut_cut_now("watchdog")
}

var configuration = KeyRelayConfiguration()
configuration.lifecycle.enableRestoreCooldown = 0
configuration.lifecycle.rotationInterval = 0
configuration.lifecycle.syncCooldown = -1
let engine: KeyRelayEngine
do {
    engine = try await KeyRelayEngine.open(path: path, masterKey: master, configuration: configuration)
} catch {
    fail("cannot open \(path): \(error)", status: 2)
}
let context = RequestContext(instanceID: "power", principal: "power-cut-child")
let bus = ServiceBus()
let subscriber = AcknowledgingSubscriber(client: engine.adopterClient(instanceID: "power"))
bus.subscribe(subscriber, to: ServiceTopic.objectStorage)
bus.subscribe(subscriber, to: ServiceTopic.postgreSQL)
// A short delivery timeout: claims left by the cut end 1.2 s later (DeliveryPolicy.claimLease).
let dispatcher = engine.makeDispatcher(bus: bus, policy: DeliveryPolicy(maxAttempts: 1_000, maxDelay: 0.05, deliveryTimeout: 0.1), seed: seed)
emit("open")

do {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for worker in 0..<6 {
            group.addTask { try await lifecycleWorker(engine, seed: seed, worker: worker, context: context) }
        }
        group.addTask {
            // Delivers what earlier runs left due as well as this run's notifications.
            while true {
                if try await dispatcher.drain() == 0 { try await Task.sleep(for: .milliseconds(5)) }
            }
        }
        try await group.waitForAll()
    }
} catch {
    fail("the workload failed before the cut: \(error)", status: 3)
}
