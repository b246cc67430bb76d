import Foundation
import KeyRelay
import KeyRelayBus
import Synchronization

/// A subscriber that acknowledges every notification with the state the event asks for, and records what it got.
final class AckingSubscriber: ServiceSubscriber {
    let client: any AdopterClient
    let clock: any KeyRelayClock
    private let got = Mutex<[ResourceNotification]>([])
    init(client: any AdopterClient, clock: any KeyRelayClock) {
        self.client = client
        self.clock = clock
    }
    var received: [ResourceNotification] { got.withLock { $0 } }
    func deliver(_ notification: ResourceNotification) async throws {
        got.withLock { $0.append(notification) }
        let event = notification.event
        try await client.acknowledge(EventAcknowledgement(eventID: event.id, resourceCRN: notification.resourceCRN,
                                                            adopterKeyState: .expected(for: event.keyState),
                                                            keyVersionID: event.keyVersion.id, timestamp: clock.now()))
    }
}

/// An engine on a manual clock, a bus, a dispatcher, and acknowledging subscribers for COS and Databases.
struct Harness {
    let clock = ManualClock()
    let engine: KeyRelayEngine
    let bus = ServiceBus()
    let dispatcher: Dispatcher
    let ops = RequestContext(instanceID: "instance-1", principal: "operator")
    let cos: AckingSubscriber
    let db: AckingSubscriber
    let start: Date

    static let cosService = ServiceTopic.objectStorage
    static let dbService = ServiceTopic.postgreSQL

    init(seed: UInt64 = 7, policy: DeliveryPolicy = DeliveryPolicy(), subscribe: Bool = true) async throws {
        engine = try await KeyRelayEngine.inMemory(clock: clock, ids: SeededIdentifiers(seed: seed))
        dispatcher = engine.makeDispatcher(bus: bus, policy: policy, seed: seed)
        let client = engine.adopterClient(instanceID: ops.instanceID)
        cos = AckingSubscriber(client: client, clock: clock)
        db = AckingSubscriber(client: client, clock: clock)
        if subscribe {
            bus.subscribe(cos, to: Self.cosService)
            bus.subscribe(db, to: Self.dbService)
        }
        start = clock.now()
    }

    func bucket(_ name: String) -> String { CRN.bucket(account: "acct", serviceInstance: "cos-1", bucket: name) }
    func deployment(_ name: String) -> String { CRN.deployment(account: "acct", deployment: name) }

    /// A root key with the given resources registered.
    func key(registering crns: [String]) async throws -> Key {
        let key = try await engine.createKey(KeySpec(name: "root"), context: ops)
        for crn in crns { try await engine.register(keyID: key.id, resourceCRN: crn, context: ops) }
        return key
    }

    func notifications(_ keyID: String) async throws -> [ResourceNotification] {
        try await engine.notifications(keyID: keyID).sorted { $0.id < $1.id }
    }

    func at(_ seconds: TimeInterval) -> Date { start.addingTimeInterval(seconds) }
}

extension DeliveryPolicy.Scheduling {
    /// The two a dispatcher runs (`.automatic` resolves to one of them by the clock).
    static let explicit: [Self] = [.rounds, .continuous]
}
