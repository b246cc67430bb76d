import Foundation
import KeyRelay
import KeyRelayBus
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// The dispatcher as a swift-service-lifecycle `Service` (issue #14 item 9): a graceful shutdown finishes the deliveries
/// in flight and records them, and starts no other.
@Suite("Dispatcher shutdown")
struct DispatcherShutdownTests {
    /// Records arrivals and holds each delivery until released (bounded: 60 s at most).
    final class HoldingSubscriber: ServiceSubscriber {
        private let state = Mutex((arrivals: [String](), released: false))
        var arrivals: [String] { state.withLock { $0.arrivals } }
        func release() { state.withLock { $0.released = true } }
        func deliver(_ notification: ResourceNotification) async throws {
            state.withLock { $0.arrivals.append(notification.resourceCRN) }
            for _ in 0..<3000 where !state.withLock({ $0.released }) { try await Task.sleep(for: .milliseconds(20)) }
        }
    }

    @Test(arguments: DeliveryPolicy.Scheduling.explicit)
    func aGracefulShutdownFinishesTheDeliveriesInFlightAndStartsNoOther(_ scheduling: DeliveryPolicy.Scheduling) async throws {
        // Two hand-overs at once, three notifications: the window holds two, the third waits for room.
        let h = try await Harness(policy: DeliveryPolicy(concurrency: 2, scheduling: scheduling), subscribe: false)
        let holder = HoldingSubscriber()
        h.bus.subscribe(holder, to: Harness.cosService)
        let key = try await h.key(registering: [h.bucket("b1"), h.bucket("b2"), h.bucket("b3")])
        try await h.engine.disable(key.id, context: h.ops)

        let group = ServiceGroup(configuration: .init(services: [h.dispatcher], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        let clock = ContinuousClock()
        // Bounded, and generous: with the whole suite running on two cores the hand-overs can start late.
        let deadline = clock.now + .seconds(60)
        while holder.arrivals.count < 2, clock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(holder.arrivals.count == 2)

        await group.triggerGracefulShutdown()
        try await Task.sleep(for: .milliseconds(100))
        holder.release()
        try await running.value

        // The two in flight were recorded sent; the third was never started and is still due.
        #expect(holder.arrivals.count == 2)
        let statuses = try await h.notifications(key.id).filter { $0.event.kind == .disable }.map(\.status)
        #expect(statuses.sorted { $0.rawValue < $1.rawValue } == [.pending, .sent, .sent])
    }
}
