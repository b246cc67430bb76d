import Foundation
import Testing
@testable import KeyRelay

/// The engine's overview, drift and events-with-deliveries queries (`KeyRelayEngine+Overview.swift`).
@Suite("Key overview queries")
struct KeyOverviewTests {
    func bucket(_ name: String) -> String { CRN.bucket(account: "acct", serviceInstance: "cos-1", bucket: name) }

    @Test func aPageOfOverviewsCountsEachKeysRegistrationsDriftAndDeliveries() async throws {
        let (engine, clock) = try await makeEngine()
        let quiet = try await engine.createKey(KeySpec(name: "quiet"), context: alice)
        let busy = try await engine.createKey(KeySpec(name: "busy"), context: alice)
        try await engine.register(keyID: busy.id, resourceCRN: bucket("b1"), context: alice)
        try await engine.register(keyID: busy.id, resourceCRN: bucket("b2"), input: RegistrationInput(preventKeyDeletion: true), context: alice)
        clock.advance(by: 60)
        try await engine.disable(busy.id, context: alice)
        // b1 honours the disable; b2 has heard nothing.
        let disable = try #require(try await engine.events(keyID: busy.id).last)
        try await engine.acknowledge(EventAcknowledgement(eventID: disable.id, resourceCRN: bucket("b1"), adopterKeyState: .disabled,
                                                          keyVersionID: nil, timestamp: clock.now()), context: alice)

        var query = KeyQuery()
        query.sort = .creationDate
        let page = try await engine.keyOverviews(query, context: alice)
        #expect(page.total == 2 && page.items.map(\.key.id) == [quiet.id, busy.id])
        let first = page.items[0], second = page.items[1]
        #expect(first.registrations == RegistrationSummary(count: 0, preventingDeletion: 0) && first.drifted == 0 && first.driftSince == nil)
        #expect(first.deliveries == DeliveryCounts())
        #expect(second.registrations == RegistrationSummary(count: 2, preventingDeletion: 1))
        #expect(second.drifted == 1 && second.driftSince == start.addingTimeInterval(60))
        #expect(second.deliveries.pending + second.deliveries.acknowledged == 2 && second.deliveries.acknowledged == 1)
        // What each key accepts, from the rules: a registration with preventKeyDeletion rules delete out.
        #expect(first.actions.map(\.action) == [.rotate, .disable, .delete, .sync])
        #expect(second.actions.map(\.action) == [.enable, .sync])
        #expect(second.syncAllowedFrom == start.addingTimeInterval(60 + 3601))
        // The same answers one key at a time, and the drift query agrees.
        #expect(try await engine.keyOverview(busy.id, context: alice) == second)
        let associations = try await engine.associations(keyID: busy.id, limit: 1, offset: 1, context: alice)
        #expect(associations.overview == second && associations.registrations.total == 2)
        #expect(associations.registrations.items.map(\.registration.resourceCRN) == [bucket("b2")])
        #expect(associations.registrations.items.first?.drift?.expected == .disabled)
        #expect(try await engine.drift(context: alice).map(\.registration.resourceCRN) == [bucket("b2")])
        // Another instance sees none of it.
        #expect(try await engine.keyOverviews(context: mallory).total == 0)
    }

    @Test func destroyedKeysJoinANotDeletedViewExactlyWhileTheyDrift() async throws {
        let (engine, clock) = try await makeEngine()
        let protector = try await engine.createKey(KeySpec(name: "protector"), context: alice)
        let unused = try await engine.createKey(KeySpec(name: "unused"), context: alice)
        let kept = try await engine.createKey(KeySpec(name: "kept"), context: alice)
        try await engine.register(keyID: protector.id, resourceCRN: bucket("b1"), context: alice)
        try await engine.register(keyID: protector.id, resourceCRN: bucket("b2"), context: alice)
        try await engine.delete(protector.id, force: true, context: alice)
        try await engine.delete(unused.id, context: alice)

        func view() async throws -> [String] {
            try await engine.keyOverviews(includingDestroyedWithDrift: true, context: alice).items.map(\.key.name)
        }
        #expect(try await engine.keyOverviews(context: alice).items.map(\.key.id) == [kept.id])
        #expect(Set(try await view()) == ["protector", "kept"])
        // One resource acknowledges the delete: the other still drifts, so the key stays.
        let delete = try #require(try await engine.events(keyID: protector.id).last)
        for (crn, state) in [(bucket("b1"), AdopterKeyState.deleted), (bucket("b2"), .enabled)] {
            try await engine.acknowledge(EventAcknowledgement(eventID: delete.id, resourceCRN: crn, adopterKeyState: state,
                                                              keyVersionID: protector.currentVersion.id, timestamp: clock.now()),
                                         context: alice)
        }
        #expect(Set(try await view()) == ["protector", "kept"])
        #expect(try await engine.keyOverview(protector.id, context: alice).drifted == 1)
        try await engine.acknowledge(EventAcknowledgement(eventID: delete.id, resourceCRN: bucket("b2"), adopterKeyState: .deleted,
                                                          keyVersionID: nil, timestamp: clock.now()), context: alice)
        // The store's predicate and Registration.isDrifted agree: no drift, not listed.
        #expect(try await engine.keyOverview(protector.id, context: alice).drifted == 0)
        #expect(try await view() == ["kept"])
    }

    @Test func overviewPagesAreBounded() async throws {
        let (engine, _) = try await makeEngine()
        var query = KeyQuery()
        for limit in [0, 1001] {
            query.limit = limit
            await expectError(.invalidQueryParam) { _ = try await engine.keyOverviews(query, context: alice) }
        }
        await expectError(.invalidQueryParam) { _ = try await engine.eventsWithDeliveries(keyID: "k", limit: 1001, context: alice) }
        await expectError(.keyNotFound) { _ = try await engine.eventsWithDeliveries(keyID: "no-such-key", context: alice) }
    }

    @Test func eventsComeNewestFirstEachWithItsDeliveries() async throws {
        let (engine, clock) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "evented"), context: alice)
        try await engine.register(keyID: key.id, resourceCRN: bucket("b2"), context: alice)
        try await engine.register(keyID: key.id, resourceCRN: bucket("b1"), context: alice)
        clock.advance(by: 60)
        try await engine.disable(key.id, context: alice)
        clock.advance(by: 60)
        try await engine.enable(key.id, context: alice)

        let answer = try await engine.eventsWithDeliveries(keyID: key.id, limit: 2, context: alice)
        #expect(answer.key.id == key.id && answer.key.state == .active)
        let page = answer.events
        #expect(page.total == 3 && page.items.map(\.event.kind) == [.enable, .disable])
        #expect(page.items[0].deliveries.map(\.resourceCRN) == [bucket("b1"), bucket("b2")])
        #expect(page.items[0].deliveries.allSatisfy { $0.event.id == page.items[0].event.id })
        #expect(page.items[1].counts.pending == 2)
        let rest = try await engine.eventsWithDeliveries(keyID: key.id, limit: 2, offset: 2, context: alice).events
        #expect(rest.items.map(\.event.kind) == [.create] && rest.items[0].deliveries.isEmpty)
    }

    @Test func anExpiryDurationIsAddedOnTheEnginesClock() async throws {
        let (engine, clock) = try await makeEngine()
        clock.advance(by: 3600)
        let key = try await engine.createKey(KeySpec(name: "short-lived"), expiringAfter: 30 * 86400, context: alice)
        #expect(key.expirationDate == start.addingTimeInterval(3600 + 30 * 86400))
        for duration in [0, -1, .infinity, .nan, KeyRelayEngine.maximumExpiryDuration + 1] as [TimeInterval] {
            await expectError(.invalidField) {
                _ = try await engine.createKey(KeySpec(name: "never"), expiringAfter: duration, context: alice)
            }
        }
    }
}
