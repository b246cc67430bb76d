// The story of DESIGN.md, told through the embedding API on a manual clock.
import Foundation
import KeyRelay

let clock = ManualClock()
let engine = try await KeyRelayEngine.inMemory(clock: clock)
let ops = RequestContext(instanceID: "demo-instance", principal: "operator")

let key = try await engine.createKey(KeySpec(name: "bucket-root-key"), context: ops)
let bucket = "crn:v1:bluemix:public:cloud-object-storage:global:a/acct:cos-1:bucket:invoices"
try await engine.register(keyID: key.id, resourceCRN: bucket, context: ops)
try await engine.delete(key.id, force: true, context: ops)   // COS's notification of this is lost
clock.advance(by: 4 * 3600)                                  // four hours later
let receipt = try await engine.sync(key.id, context: ops)    // accepted: re-notifies the bucket
print("sync accepted: \(receipt.notifications) notification(s) of state \(receipt.event.keyState)")
do {
    try await engine.sync(key.id, context: ops)              // again, within the hour
} catch let error as KeyRelayError {
    print("sync refused: \(error.code.rawValue) (\(error.status)): \(error.message)")
}
clock.advance(by: 3600 + 1)
print("after 1h 1s: accepted again: \(try await engine.sync(key.id, context: ops).notifications) notification(s)")
