import Foundation
import KeyRelay
import KeyRelayBus

/// Acknowledges every notification with the state its event asks for, then prints `ack <notification id>`.
final class CrashAckingSubscriber: ServiceSubscriber {
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

/// How many hand-overs the dispatch child runs at once.
let dispatchConcurrency = 4

/// Dispatch mode of the crash child: opens the engine on `dbPath` with the master key `main` loaded,
/// subscribes acknowledging subscribers for COS and Cloud Databases, and delivers on the real clock, printing
/// `ack <id>` (unbuffered) per acknowledged notification. When nothing is left pending or sent it prints `done` and
/// exits 0. Instance `crash`.
func runDispatchChild(dbPath: String, seed: UInt64, master: MasterKey) async throws {
    let engine = try await KeyRelayEngine.open(path: dbPath, masterKey: master)
    let bus = ServiceBus()
    let subscriber = CrashAckingSubscriber(client: engine.adopterClient(instanceID: "crash"))
    bus.subscribe(subscriber, to: ServiceTopic.objectStorage)
    bus.subscribe(subscriber, to: ServiceTopic.postgreSQL)
    // Four hand-overs at once (the test bounds the acknowledgements a kill can leave unprinted by it); a short delivery
    // timeout, so that the claims a killed child leaves behind end 1.2 s later (DeliveryPolicy.claimLease).
    let dispatcher = engine.makeDispatcher(bus: bus, policy: DeliveryPolicy(maxAttempts: 1_000, maxDelay: 0.05, concurrency: dispatchConcurrency,
                                                                            deliveryTimeout: 0.1), seed: seed)
    emit("ready")
    while true {
        try await dispatcher.drain()
        let counts = try await engine.deliveryCounts()
        if counts.pending == 0, counts.sent == 0 {
            emit("done")
            exit(0)
        }
        // Something is waiting for a retry: wait for it (bounded), without spinning.
        if let next = try await dispatcher.nextDueDate() {
            let wait = max(0.001, min(0.05, next.timeIntervalSinceNow))
            try await Task.sleep(for: .milliseconds(Int64(wait * 1000)))
        }
    }
}
