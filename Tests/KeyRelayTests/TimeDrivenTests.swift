import Foundation
import KeyRelayBus
import Testing
@testable import KeyRelay

/// What the clock does on its own (issue #13 item 6): rotation policies rotate, deleted keys are purged after 90
/// days — performed by the dispatcher at the instants the manual clock passes, as `serve` does on the real clock.
@Suite("Time-driven behaviour")
struct TimeDrivenTests {
    static let day: TimeInterval = 86400

    @Test func aRotationPolicyRotatesEveryIntervalOfThirtyDayMonths() async throws {
        let (engine, clock) = try await makeEngine()
        let dispatcher = engine.makeDispatcher(bus: ServiceBus())
        let key = try await engine.createKey(KeySpec(name: "rotated", rotation: RotationPolicy(enabled: true, intervalMonth: 1)), context: alice)
        #expect(try await engine.nextPolicyRotationDate() == start.addingTimeInterval(30 * Self.day))
        try await dispatcher.advance(clock, by: 30 * Self.day - 1)
        #expect(try await engine.key(key.id, context: alice).versionCount == 1)
        try await dispatcher.advance(clock, by: 1)
        let rotated = try await engine.key(key.id, context: alice)
        #expect(rotated.versionCount == 2)
        #expect(rotated.lastRotateDate == start.addingTimeInterval(30 * Self.day))
        let event = try #require(try await engine.events(keyID: key.id, context: alice).last)
        #expect(event.kind == .rotate && event.principal == KeyRelayEngine.systemPrincipal)
        // The next one counts from this rotation: 30 days later, not 60 after creation.
        try await dispatcher.advance(clock, by: 30 * Self.day)
        #expect(try await engine.key(key.id, context: alice).versionCount == 3)
    }

    /// A policy rotation a rule refuses (here a "month" of 10 minutes meets the one-rotation-an-hour rule) is passed
    /// over at its due instant: the other keys still rotate on time and the dispatcher is not held at the past instant.
    @Test func aRefusedPolicyRotationDoesNotHoldBackTheOthers() async throws {
        var configuration = KeyRelayConfiguration()
        configuration.lifecycle.rotationPolicyMonth = 600
        let (engine, clock) = try await makeEngine(configuration: configuration)
        let dispatcher = engine.makeDispatcher(bus: ServiceBus())
        let monthly = RotationPolicy(enabled: true, intervalMonth: 1)
        let first = try await engine.createKey(KeySpec(name: "refused-next", rotation: monthly), context: alice)
        try await dispatcher.advance(clock, by: 1000)   // first rotates at +600; its next (+1200) is inside the hour
        let second = try await engine.createKey(KeySpec(name: "on-time", rotation: monthly), context: alice)
        try await dispatcher.advance(clock, by: 1000)   // to +2000: first refused at +1200, second due at +1600
        #expect(try await engine.key(first.id, context: alice).versionCount == 2)
        let rotated = try await engine.key(second.id, context: alice)
        #expect(rotated.versionCount == 2 && rotated.lastRotateDate == start.addingTimeInterval(1600))
        // The refused instant (+1200) is not what the dispatcher waits for next: the second key's next one (+2200) is.
        #expect(try await engine.nextPolicyRotationDate() == start.addingTimeInterval(2200))
    }

    @Test func aRotationByHandMovesThePolicysNextRotation() async throws {
        let (engine, clock) = try await makeEngine()
        let dispatcher = engine.makeDispatcher(bus: ServiceBus())
        let key = try await engine.createKey(KeySpec(name: "rotated", rotation: RotationPolicy(enabled: true, intervalMonth: 2)), context: alice)
        try await dispatcher.advance(clock, by: 40 * Self.day)
        _ = try await engine.rotate(key.id, context: alice)
        try await dispatcher.advance(clock, by: 59 * Self.day)       // 60 days after creation, 19 before the policy's next
        #expect(try await engine.key(key.id, context: alice).versionCount == 2)
        try await dispatcher.advance(clock, by: 1 * Self.day)        // 60 days after the rotation by hand
        #expect(try await engine.key(key.id, context: alice).versionCount == 3)
    }

    @Test func onlyActiveGeneratedRootKeysWithAnEnabledPolicyRotate() async throws {
        let (engine, clock) = try await makeEngine()
        let dispatcher = engine.makeDispatcher(bus: ServiceBus())
        let monthly = RotationPolicy(enabled: true, intervalMonth: 1)
        let disabledPolicy = try await engine.createKey(KeySpec(name: "off", rotation: RotationPolicy(enabled: false, intervalMonth: 1)), context: alice)
        let imported = try await engine.createKey(KeySpec(name: "imported", payload: Data(repeating: 3, count: 32), rotation: monthly), context: alice)
        let suspended = try await engine.createKey(KeySpec(name: "suspended", rotation: monthly), context: alice)
        _ = try await engine.disable(suspended.id, context: alice)
        try await dispatcher.advance(clock, by: 100 * Self.day)
        for key in [disabledPolicy, imported, suspended] {
            #expect(try await engine.key(key.id, context: alice).versionCount == 1, "\(key.name)")
        }
        #expect(try await engine.nextPolicyRotationDate() == nil)
    }

    @Test func anInstanceRotationPolicyAppliesToRootKeysCreatedAfterIt() async throws {
        let (engine, clock) = try await makeEngine()
        let dispatcher = engine.makeDispatcher(bus: ServiceBus())
        let before = try await engine.createKey(KeySpec(name: "before"), context: alice)
        try await engine.setInstancePolicy(type: "rotation", enabled: true, attributesJSON: #"{"interval_month":2}"#, context: alice)
        let after = try await engine.createKey(KeySpec(name: "after"), context: alice)
        let own = try await engine.createKey(KeySpec(name: "own", rotation: RotationPolicy(enabled: true, intervalMonth: 3)), context: alice)
        let standard = try await engine.createKey(KeySpec(name: "standard", extractable: true), context: alice)
        #expect(try await engine.key(after.id, context: alice).rotation == RotationPolicy(enabled: true, intervalMonth: 2))
        #expect(try await engine.key(standard.id, context: alice).rotation == nil)
        try await dispatcher.advance(clock, by: 60 * Self.day)
        #expect(try await engine.key(before.id, context: alice).versionCount == 1)
        #expect(try await engine.key(after.id, context: alice).versionCount == 2)
        #expect(try await engine.key(own.id, context: alice).versionCount == 1)   // its own policy: 90 days
        try await dispatcher.advance(clock, by: 30 * Self.day)
        #expect(try await engine.key(own.id, context: alice).versionCount == 2)
    }

    @Test func aPolicyRotationNotifiesTheKeysResources() async throws {
        let (engine, clock) = try await makeEngine()
        let dispatcher = engine.makeDispatcher(bus: ServiceBus())
        let key = try await engine.createKey(KeySpec(name: "protecting", rotation: RotationPolicy(enabled: true, intervalMonth: 1)), context: alice)
        try await engine.register(keyID: key.id, resourceCRN: bucketCRN, context: alice)
        try await dispatcher.advance(clock, by: 30 * Self.day)
        let rotate = try #require(try await engine.events(keyID: key.id, context: alice).last)
        #expect(rotate.kind == .rotate)
        let notifications = try await engine.notifications(keyID: key.id)
        #expect(notifications.contains { $0.event.id == rotate.id && $0.resourceCRN == bucketCRN })
    }

    @Test func aDeletedKeyIsPurgedNinetyDaysAfterItsDeletion() async throws {
        let (engine, clock) = try await makeEngine()
        let dispatcher = engine.makeDispatcher(bus: ServiceBus())
        let key = try await engine.createKey(KeySpec(name: "doomed"), context: alice)
        let kept = try await engine.createKey(KeySpec(name: "kept"), context: alice)
        clock.advance(by: 10 * Self.day)
        _ = try await engine.delete(key.id, context: alice)
        #expect(try await engine.nextAutomaticPurgeDate() == start.addingTimeInterval(100 * Self.day))
        try await dispatcher.advance(clock, by: 90 * Self.day - 1)
        #expect(try await engine.key(key.id, context: alice).state == .destroyed)
        try await dispatcher.advance(clock, by: 1)
        await expectError(.keyNotFound) { _ = try await engine.key(key.id, context: alice) }
        let purge = try #require(try await engine.events(keyID: key.id, context: alice).last)
        #expect(purge.kind == .purge && purge.principal == KeyRelayEngine.systemPrincipal)
        #expect(purge.date == start.addingTimeInterval(100 * Self.day))
        #expect(try await engine.key(kept.id, context: alice).state == .active)
        #expect(try await engine.nextAutomaticPurgeDate() == nil)
    }

    @Test func anActionNotAcknowledgedIn4hOrAcknowledgedWithAnotherStateDidNotComplete() async throws {
        let (engine, clock) = try await makeEngine()
        let bus = ServiceBus()
        let dispatcher = engine.makeDispatcher(bus: bus)
        let key = try await engine.createKey(KeySpec(name: "protecting"), context: alice)
        try await engine.register(keyID: key.id, resourceCRN: bucketCRN, context: alice)
        // The disable is handed over (the bus drops it: the service never hears of it) and never acknowledged.
        bus.dropNext(1, for: ServiceTopic.objectStorage)
        _ = try await engine.disable(key.id, context: alice)
        try await dispatcher.drain()
        try await dispatcher.advance(clock, by: 4 * 3600 - 1)
        #expect(try await engine.incompleteActions(context: alice).total == 0)
        try await dispatcher.advance(clock, by: 1)
        let unacknowledged = try await engine.incompleteActions(context: alice)
        #expect(unacknowledged.counts == [.notAcknowledged: 1])
        let dead = try #require(unacknowledged.recent.first)
        #expect(dead.status == .dead && dead.event.kind == .disable && dead.resourceCRN == bucketCRN)
        #expect(dead.lastError == "Lifecycle action on a key with registrations did not complete: not acknowledged within 4h0m0s (408)")

        // The enable reaches the service, which acknowledges a state other than the enabled key's.
        bus.dropNext(1, for: ServiceTopic.objectStorage)
        _ = try await engine.enable(key.id, context: alice)
        try await dispatcher.drain()
        let enable = try #require(try await engine.events(keyID: key.id, context: alice).last)
        try await engine.acknowledge(eventID: enable.id, resourceCRN: bucketCRN, adopterKeyState: .disabled, keyVersionID: nil,
                                     timestamp: clock.now(), context: alice)
        let both = try await engine.incompleteActions(context: alice)
        #expect(both.counts == [.notAcknowledged: 1, .stateConflict: 1])
        let conflict = try #require(both.recent.first)
        #expect(conflict.event.id == enable.id && conflict.status == .acknowledged && conflict.incomplete == .stateConflict)
        #expect(conflict.lastError?.hasPrefix("Lifecycle action on a key with registrations did not complete: the resource acknowledged DEK_DISABLED") == true)
        // Another instance sees none of it.
        #expect(try await engine.incompleteActions(context: mallory).total == 0)
        // An acknowledgement of the state the event put the key in is no conflict.
        try await engine.acknowledge(eventID: enable.id, resourceCRN: bucketCRN, adopterKeyState: .enabled, keyVersionID: key.currentVersion.id,
                                     timestamp: clock.now(), context: alice)
        #expect(try await engine.incompleteActions(context: alice).counts == [.notAcknowledged: 1, .stateConflict: 1])
    }
}
