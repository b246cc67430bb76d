import Foundation
import Testing
@testable import KeyRelay
import KeyRelaySQLite

@Suite("Engine lifecycle")
struct LifecycleTests {
    @Test func theStoryOfDesignMD() async throws {
        let (engine, clock) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "bucket-root-key"), context: alice)
        try await engine.register(keyID: key.id, resourceCRN: bucketCRN, context: alice)
        await expectError(.protectedResource) { try await engine.delete(key.id, context: alice) }
        let deleted = try await engine.delete(key.id, force: true, context: alice)
        #expect(deleted.state == .destroyed)
        clock.advance(by: 4 * 3600)
        let receipt = try await engine.sync(key.id, context: alice)
        #expect(receipt.notifications == 1)
        #expect(receipt.event.keyState == .destroyed)
        #expect(receipt.event.kind == .sync)
        let refusal = await expectError(.requestTooEarly) { try await engine.sync(key.id, context: alice) }
        #expect(refusal?.message.hasSuffix("Sync cannot be performed until at least 2026-01-01T05:00:01Z") == true)
        clock.advance(by: 3600)
        await expectError(.requestTooEarly) { try await engine.sync(key.id, context: alice) }
        clock.advance(by: 1)
        #expect(try await engine.sync(key.id, context: alice).notifications == 1)
    }

    @Test func createThenSyncIsAcceptedAndAPolicyChangeDoesNotStartTheCooldown() async throws {
        let (engine, _) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "fresh"), context: alice)
        try await engine.setPolicies(key.id, rotation: RotationPolicy(enabled: true, intervalMonth: 3), context: alice)
        try await engine.sync(key.id, context: alice)
    }

    @Test func syncReEmitsTheCurrentStateAndVersionToEveryRegistration() async throws {
        let (engine, clock) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "fan-out"), context: alice)
        for index in 0..<5 {
            try await engine.register(keyID: key.id, resourceCRN: CRN.bucket(account: "a", serviceInstance: "s", bucket: "b\(index)"), context: alice)
        }
        let rotated = try await engine.rotate(key.id, context: alice)
        clock.advance(by: 3601)
        let receipt = try await engine.sync(key.id, context: alice)
        #expect(receipt.notifications == 5)
        #expect(receipt.event.keyVersion == rotated.currentVersion)
        let notifications = try await engine.notifications(keyID: key.id)
        let ofSync = notifications.filter { $0.event.id == receipt.event.id }
        #expect(Set(ofSync.map(\.resourceCRN)).count == 5)
        #expect(ofSync.allSatisfy { $0.status == .pending && $0.event.keyState == .active })
        // rotate also notified all five
        #expect(notifications.count == 10)
    }

    @Test func aRefusedSyncWritesNothing() async throws {
        let (engine, clock) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "quiet"), context: alice)
        try await engine.register(keyID: key.id, resourceCRN: bucketCRN, context: alice)
        try await engine.disable(key.id, context: alice)
        let before = try await engine.events(keyID: key.id)
        clock.advance(by: 1800)
        await expectError(.requestTooEarly) { try await engine.sync(key.id, context: alice) }
        #expect(try await engine.events(keyID: key.id) == before)
        #expect(try await engine.key(key.id, context: alice).lastSyncDate == nil)
        clock.advance(by: 1801)
        try await engine.sync(key.id, context: alice)
    }

    /// A client retrying a refused sync in a loop never takes the store's writer: the refusal is answered from a
    /// read. A key whose expiry is due still goes through the write, which records the expiry.
    @Test func aRefusedSyncDoesNotTakeTheWriter() async throws {
        let store = try SQLiteStore(.inMemory)
        let clock = ManualClock(start: start)
        let engine = try await KeyRelayEngine(storage: store, masterKey: testMaster, clock: clock, ids: SeededIdentifiers(seed: 7))
        let key = try await engine.createKey(KeySpec(name: "retried", expirationDate: start.addingTimeInterval(7200)), context: alice)
        try await engine.register(keyID: key.id, resourceCRN: bucketCRN, context: alice)
        try await engine.rotate(key.id, context: alice)  // the sync cooldown runs from here
        clock.advance(by: 600)
        let writes = store.groupCommitStatistics.commands
        for _ in 0..<5 {
            let refusal = await expectError(.requestTooEarly) { try await engine.sync(key.id, context: alice) }
            #expect(refusal?.earliestAllowed == start.addingTimeInterval(3601))
        }
        await expectError(.keyNotFound) { try await engine.sync("no-such-key", context: alice) }
        #expect(store.groupCommitStatistics.commands == writes)
        // Past its expiration date the key must expire first: that sync is one write (the expiry event, then the
        // accepted sync); the next one is refused from a read again.
        clock.advance(by: 7200)
        try await engine.sync(key.id, context: alice)
        #expect(store.groupCommitStatistics.commands == writes + 1)
        #expect(try await engine.events(keyID: key.id).suffix(2).map(\.kind) == [.expire, .sync])
        await expectError(.requestTooEarly) { try await engine.sync(key.id, context: alice) }
        #expect(store.groupCommitStatistics.commands == writes + 1)
    }

    @Test func everyLifecycleActionIsOneEventWithAPerKeySequenceAndTheKeyVersion() async throws {
        let (engine, clock) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "seq"), context: alice)
        let rotated = try await engine.rotate(key.id, context: alice)
        try await engine.disable(key.id, context: alice)
        clock.advance(by: 30)
        try await engine.enable(key.id, context: alice)
        try await engine.delete(key.id, context: alice)
        clock.advance(by: 30)
        try await engine.restore(key.id, context: alice)
        let events = try await engine.events(keyID: key.id)
        #expect(events.map(\.kind) == [.create, .rotate, .disable, .enable, .delete, .restore])
        #expect(events.map(\.keySequence) == [1, 2, 3, 4, 5, 6])
        #expect(events.map(\.keyState) == [.active, .active, .suspended, .active, .destroyed, .active])
        #expect(events.dropFirst().allSatisfy { $0.keyVersion == rotated.currentVersion })
        #expect(zip(events, events.dropFirst()).allSatisfy { $0.sequence < $1.sequence })
    }

    @Test func rotateOncePerHourEnableAndRestoreAfter30Seconds() async throws {
        let (engine, clock) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "timing"), context: alice)
        try await engine.rotate(key.id, context: alice)
        clock.advance(by: 3599)
        await expectError(.keyRotationNotPermitted) { try await engine.rotate(key.id, context: alice) }
        clock.advance(by: 1)
        #expect(try await engine.rotate(key.id, context: alice).versionCount == 3)
        try await engine.disable(key.id, context: alice)
        clock.advance(by: 29)
        await expectError(.requestTooEarly) { try await engine.enable(key.id, context: alice) }
        clock.advance(by: 1)
        try await engine.enable(key.id, context: alice)
        try await engine.delete(key.id, context: alice)
        clock.advance(by: 29)
        await expectError(.requestTooEarly) { try await engine.restore(key.id, context: alice) }
        clock.advance(by: 1)
        #expect(try await engine.restore(key.id, context: alice).state == .active)
    }

    @Test func restoreWithin30DaysPurgeAfter4HoursThenTheKeyIsGone() async throws {
        let (engine, clock) = try await makeEngine()
        let late = try await engine.createKey(KeySpec(name: "late"), context: alice)
        try await engine.delete(late.id, context: alice)
        clock.advance(by: 30 * 86400)
        await expectError(.keyRestoreExpired) { try await engine.restore(late.id, context: alice) }

        let key = try await engine.createKey(KeySpec(name: "purge-me", aliases: ["purge-alias"]), context: alice)
        try await engine.register(keyID: key.id, resourceCRN: bucketCRN, context: alice)
        try await engine.delete(key.id, force: true, context: alice)
        clock.advance(by: 4 * 3600 - 1)
        await expectError(.requestTooEarly) { try await engine.purge(key.id, context: alice) }
        clock.advance(by: 1)
        try await engine.purge("purge-alias", context: alice)
        await expectError(.keyNotFound) { _ = try await engine.key(key.id, context: alice) }
        await expectError(.keyNotFound) { _ = try await engine.key("purge-alias", context: alice) }
        await expectError(.keyNotFound) { try await engine.restore(key.id, context: alice) }
        await expectError(.keyNotFound) { try await engine.sync(key.id, context: alice) }
        #expect(try await engine.registrations(context: alice).total == 0)
        #expect(try await engine.events(keyID: key.id).last?.kind == .purge)
    }

    @Test func deleteRulesRegistrationRetentionAndDoubleDelete() async throws {
        let (engine, _) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "retained"), context: alice)
        try await engine.register(keyID: key.id, resourceCRN: bucketCRN, input: RegistrationInput(preventKeyDeletion: true), context: alice)
        await expectError(.protectedResource) { try await engine.delete(key.id, context: alice) }
        await expectError(.preventKeyDeletion) { try await engine.delete(key.id, force: true, context: alice) }
        try await engine.updateRegistration(keyID: key.id, resourceCRN: bucketCRN, input: RegistrationInput(preventKeyDeletion: false), context: alice)
        try await engine.delete(key.id, force: true, context: alice)
        await expectError(.keyDeleted) { try await engine.delete(key.id, force: true, context: alice) }
        // Registrations stay associated after a forced delete: sync still reaches them.
        #expect(try await engine.registrations(keyID: key.id, context: alice).total == 1)
    }

    @Test func dualAuthorizationThroughTheEngine() async throws {
        let (engine, clock) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "two-person", dualAuthDelete: true), context: alice)
        await expectError(.authorizationsNotMet) { try await engine.delete(key.id, context: bob) }
        try await engine.setKeyForDeletion(key.id, context: alice)
        await expectError(.authorizationsNotMet) { try await engine.delete(key.id, context: alice) }
        clock.advance(by: 7 * 86400)
        await expectError(.authorizationsNotMet) { try await engine.delete(key.id, context: bob) }
        try await engine.setKeyForDeletion(key.id, context: alice)
        clock.advance(by: 7 * 86400 - 1)
        #expect(try await engine.delete(key.id, context: bob).deletedBy == "bob")
        await expectError(.featureRestricted) {
            let other = try await engine.createKey(KeySpec(name: "locked", dualAuthDelete: true), context: alice)
            try await engine.setPolicies(other.id, dualAuthDelete: false, context: alice)
        }
    }

    @Test func expiryIsDrivenByTheClockAndWritesAnEvent() async throws {
        let (engine, clock) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "short-lived", expirationDate: start.addingTimeInterval(600)), context: alice)
        let wrapped = try await engine.wrap(key.id, context: alice)
        clock.advance(by: 600)
        #expect(try await engine.expireDueKeys() == 1)
        let events = try await engine.events(keyID: key.id)
        #expect(events.last?.kind == .expire)
        #expect(try await engine.key(key.id, context: alice).state == .deactivated)
        await expectError(.keyActionInvalidState) { _ = try await engine.wrap(key.id, context: alice) }
        #expect(try await engine.unwrap(key.id, ciphertext: wrapped.ciphertext, context: alice).plaintext == wrapped.plaintext)
        #expect(try await engine.expireDueKeys() == 0)
    }

    @Test func anExpiredKeyReadsAsDeactivatedEvenBeforeTheExpiryRuns() async throws {
        let (engine, clock) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "lazy", expirationDate: start.addingTimeInterval(60)), context: alice)
        clock.advance(by: 61)
        #expect(try await engine.key(key.id, context: alice).state == .deactivated)
        // A command applies the due expiry first: disable now sees a deactivated key.
        await expectError(.keyActionInvalidState) { try await engine.disable(key.id, context: alice) }
    }

    @Test func oneInstanceNeverSeesAnothersKeys() async throws {
        let (engine, _) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "private", aliases: ["mine"]), context: alice)
        await expectError(.keyNotFound) { _ = try await engine.key(key.id, context: mallory) }
        await expectError(.keyNotFound) { _ = try await engine.key("mine", context: mallory) }
        await expectError(.keyNotFound) { try await engine.delete(key.id, context: mallory) }
        await expectError(.keyNotFound) { _ = try await engine.wrap(key.id, context: mallory) }
        #expect(try await engine.listKeys(context: mallory).total == 0)
        #expect(try await engine.listKeys(context: alice).total == 1)
    }

    @Test func badInputGetsAnErrorAndChangesNothing() async throws {
        let (engine, _) = try await makeEngine()
        await expectError(.invalidField) { _ = try await engine.createKey(KeySpec(name: "x"), context: alice) }
        await expectError(.invalidField) { _ = try await engine.createKey(KeySpec(name: "ok-name", aliases: ["keys"]), context: alice) }
        await expectError(.invalidField) { _ = try await engine.createKey(KeySpec(name: "ok-name", payload: Data(count: 17)), context: alice) }
        await expectError(.keyRingNotFound) { _ = try await engine.createKey(KeySpec(name: "ok-name", keyRingID: "nope-ring"), context: alice) }
        #expect(try await engine.listKeys(context: alice).total == 0)
        #expect(try await engine.events().isEmpty)
        let key = try await engine.createKey(KeySpec(name: "valid"), context: alice)
        await expectError(.invalidField) { try await engine.register(keyID: key.id, resourceCRN: "crn:v1:not-enough", context: alice) }
        #expect(try await engine.registrations(keyID: key.id, context: alice).total == 0)
    }

    @Test func listingHidesDestroyedKeysByDefaultAndPages() async throws {
        let (engine, _) = try await makeEngine()
        var ids: [String] = []
        for index in 0..<7 { ids.append(try await engine.createKey(KeySpec(name: "key-\(index)"), context: alice).id) }
        try await engine.delete(ids[0], context: alice)
        var query = KeyQuery()
        query.limit = 3
        let first = try await engine.listKeys(query, context: alice)
        #expect(first.total == 6 && first.items.count == 3)
        query.offset = 3
        #expect(try await engine.listKeys(query, context: alice).items.count == 3)
        query.states = [.destroyed]
        query.offset = 0
        #expect(try await engine.listKeys(query, context: alice).items.map(\.id) == [ids[0]])
        query.limit = 0
        await expectError(.invalidQueryParam) { _ = try await engine.listKeys(query, context: alice) }
    }
}

@Suite("Embedding example")
struct ExampleTests {
    /// The README's embedding example is a real program: run it and check it tells the story.
    @Test func theStoryExampleTellsTheStory() throws {
        let process = Process()
        process.executableURL = productsDirectory().appending(path: "StoryExample")
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0)
        #expect(output.contains("sync accepted: 1 notification(s) of state destroyed"))
        #expect(output.contains("sync refused: REQ_TOO_EARLY_ERR (409)"))
        #expect(output.contains("after 1h 1s: accepted again"))
    }
}
