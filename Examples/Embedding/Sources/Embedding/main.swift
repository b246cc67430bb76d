// A backend service embedding KeyRelay: an engine on a SQLite file, its dispatcher delivering to a simulated
// Cloud Object Storage in the same process, and the engine's event stream tailed as the story runs.
import Foundation
import KeyRelay
import KeyRelayAdapters
import KeyRelayBus

let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keyrelay-embedding-\(UUID().uuidString)")
try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: directory) }

let clock = ManualClock()
let engine = try await KeyRelayEngine.open(.file(directory.appendingPathComponent("keyrelay.sqlite").path),
                                           masterKey: .generate(), clock: clock)
let ops = RequestContext(instanceID: "demo-instance", principal: "operator")

// Delivery: the bus carries each notification to the service that subscribed to the resource's CRN service name.
let bus = ServiceBus()
let dispatcher = engine.makeDispatcher(bus: bus)
let cos = ObjectStorageService(client: engine.adopterClient(instanceID: ops.instanceID), clock: clock)
cos.subscribe(to: bus)

// Every lifecycle event as it commits, tailed by a task of its own until the first sync (a stream never ends by
// itself: break out of it, or cancel its task).
let tail = Task {
    var seen: [String] = []
    for try await event in engine.eventStream(context: ops, pollInterval: nil) {
        seen.append("\(event.kind.rawValue) (\(event.keyState))")
        if event.kind == .sync { break }
    }
    return seen
}

let key = try await engine.createKey(KeySpec(name: "bucket-root-key"), context: ops)
_ = try await cos.createBucket("invoices", keyID: key.id)
try await cos.putObject(bucket: "invoices", key: "q1.pdf", data: Data("quarterly invoices".utf8))

bus.dropNext(1, for: ServiceTopic.objectStorage)      // the deletion's notification is lost on the way
_ = try await engine.delete(key.id, force: true, context: ops)
try await dispatcher.advance(clock, by: 4 * 3600)
print("after the lost notification, the bucket reads: \(String(decoding: try await cos.getObject(bucket: "invoices", key: "q1.pdf"), as: UTF8.self))")

let receipt = try await engine.sync(key.id, context: ops)   // re-notifies every registered resource
try await dispatcher.drain()
do {
    _ = try await cos.getObject(bucket: "invoices", key: "q1.pdf")
    print("unexpected: the bucket is still readable")
} catch {
    print("after sync (\(receipt.notifications) notification): \(error)")
}
do {
    _ = try await engine.sync(key.id, context: ops)
} catch let error as KeyRelayError {
    print("sync again: \(error.code.rawValue) (\(error.status)), next accepted at \(error.earliestAllowed.map { "\($0)" } ?? "?")")
}

print("events as they committed: \(try await tail.value.joined(separator: ", "))")
