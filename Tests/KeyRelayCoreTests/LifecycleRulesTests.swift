import Foundation
import Testing
@testable import KeyRelayCore

let t0 = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01T00:00:00Z
let rules = LifecycleRules()

func makeKey(state: KeyState = .active, extractable: Bool = false, imported: Bool = false, expires: Date? = nil,
             dualAuth: Bool = false) -> Key {
    var key = Key(id: "k1", instanceID: "i1", name: "key-one", extractable: extractable, imported: imported,
                  creationDate: t0, createdBy: "alice", expirationDate: expires,
                  currentVersion: KeyVersion(id: "v1", creationDate: t0), dualAuthDelete: DualAuthDelete(enabled: dualAuth))
    key.state = state
    if state == .destroyed { key.deletionDate = t0; key.lastLifecycleActionDate = t0 }
    return key
}

/// The KeyRelayError `body` throws, or nil (recording an issue) if it succeeds or throws something else.
func caught(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> KeyRelayError? {
    do {
        try body()
    } catch {
        if let error = error as? KeyRelayError { return error }
        Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        return nil
    }
    Issue.record("expected an error, got success", sourceLocation: sourceLocation)
    return nil
}

func expectCode(_ code: ReasonCode, _ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) {
    guard let error = caught(body, sourceLocation: sourceLocation) else { return }
    #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    #expect(error.status == code.status, sourceLocation: sourceLocation)
}

@Suite("Sync cooldown")
struct SyncRuleTests {
    @Test func syncOnNewKeyIsAcceptedAtOnceBecauseCreationDoesNotStartTheCooldown() throws {
        let key = makeKey()
        let synced = try rules.sync(key, at: t0, by: "op")
        #expect(synced.lastSyncDate == t0)
    }

    @Test func syncIsRefusedAtExactlyOneHourAfterALifecycleActionAndAcceptedOneSecondLater() throws {
        let disabled = try rules.disable(makeKey(), at: t0, by: "op")
        expectCode(.requestTooEarly) { _ = try rules.sync(disabled, at: t0.addingTimeInterval(3600), by: "op") }
        let accepted = try rules.sync(disabled, at: t0.addingTimeInterval(3601), by: "op")
        #expect(accepted.lastSyncDate == t0.addingTimeInterval(3601))
    }

    @Test func refusalNamesTheEarliestAcceptedTimeInKeyProtectWording() throws {
        let disabled = try rules.disable(makeKey(), at: t0, by: "op")
        if let error = caught({ _ = try rules.sync(disabled, at: t0.addingTimeInterval(600), by: "op") }) {
            #expect(error.message == "The key was updated recently: Please wait and try again: Sync cannot be performed until at least 2026-01-01T01:00:01Z")
            #expect(error.operation == "Could not initiate sync requests to associated resources")
            #expect(error.earliestAllowed == t0.addingTimeInterval(3601))
            #expect(error.status == 409)
        }
        #expect(rules.earliestSync(disabled) == t0.addingTimeInterval(3601))
    }

    @Test func aRefusedSyncDoesNotRestartTheCooldown() throws {
        let disabled = try rules.disable(makeKey(), at: t0, by: "op")
        expectCode(.requestTooEarly) { _ = try rules.sync(disabled, at: t0.addingTimeInterval(3000), by: "op") }
        // The refusal changed nothing: the key value is unchanged, so 1 h 1 s after the action it is accepted.
        _ = try rules.sync(disabled, at: t0.addingTimeInterval(3601), by: "op")
    }

    @Test func anAcceptedSyncStartsTheCooldown() throws {
        let synced = try rules.sync(makeKey(), at: t0, by: "op")
        expectCode(.requestTooEarly) { _ = try rules.sync(synced, at: t0.addingTimeInterval(3600), by: "op") }
        _ = try rules.sync(synced, at: t0.addingTimeInterval(3601), by: "op")
    }

    @Test func theCooldownRunsFromTheLaterOfLastActionAndLastSync() throws {
        var key = try rules.sync(makeKey(), at: t0, by: "op")
        key = try rules.disable(key, at: t0.addingTimeInterval(1800), by: "op")
        expectCode(.requestTooEarly) { _ = try rules.sync(key, at: t0.addingTimeInterval(5400), by: "op") }
        _ = try rules.sync(key, at: t0.addingTimeInterval(5401), by: "op")
    }

    @Test(arguments: [KeyState.active, .suspended, .deactivated, .destroyed])
    func syncWorksInEveryState(state: KeyState) throws {
        _ = try rules.sync(makeKey(state: state), at: t0.addingTimeInterval(7200), by: "op")
    }

    @Test func policyChangesDoNotStartTheCooldown() throws {
        // Policies are not lifecycle actions: setForDeletion leaves lastLifecycleActionDate alone.
        let key = try rules.setForDeletion(makeKey(dualAuth: true), at: t0, by: "alice")
        #expect(key.lastLifecycleActionDate == nil)
        _ = try rules.sync(key, at: t0, by: "op")
    }

    @Test func theCooldownIsConfigurable() throws {
        var config = LifecycleConfiguration()
        config.syncCooldown = 60
        let custom = LifecycleRules(configuration: config)
        let disabled = try custom.disable(makeKey(), at: t0, by: "op")
        expectCode(.requestTooEarly) { _ = try custom.sync(disabled, at: t0.addingTimeInterval(60), by: "op") }
        _ = try custom.sync(disabled, at: t0.addingTimeInterval(61), by: "op")
    }
}

@Suite("Rotation")
struct RotationRuleTests {
    let v2 = KeyVersion(id: "v2", creationDate: t0)

    @Test func firstRotationAfterCreationIsFreeAndMakesANewVersion() throws {
        let rotated = try rules.rotate(makeKey(), at: t0, newVersion: v2, payloadSupplied: false, by: "op")
        #expect(rotated.currentVersion == v2)
        #expect(rotated.versionCount == 2)
        #expect(rotated.lastRotateDate == t0)
        #expect(rotated.lastLifecycleActionDate == t0)
    }

    @Test func secondRotationWithinTheHourIsRefusedAndAllowedAtTheHour() throws {
        let once = try rules.rotate(makeKey(), at: t0, newVersion: v2, payloadSupplied: false, by: "op")
        let v3 = KeyVersion(id: "v3", creationDate: t0)
        expectCode(.keyRotationNotPermitted) {
            _ = try rules.rotate(once, at: t0.addingTimeInterval(3599), newVersion: v3, payloadSupplied: false, by: "op")
        }
        let twice = try rules.rotate(once, at: t0.addingTimeInterval(3600), newVersion: v3, payloadSupplied: false, by: "op")
        #expect(twice.versionCount == 3)
    }

    @Test func standardKeysCannotRotate() {
        expectCode(.keyRootRequired) { _ = try rules.rotate(makeKey(extractable: true), at: t0, newVersion: v2, payloadSupplied: false, by: "op") }
    }

    @Test func importedKeysNeedAPayloadAndGeneratedKeysMustNotSendOne() {
        expectCode(.keyPayloadRequired) { _ = try rules.rotate(makeKey(imported: true), at: t0, newVersion: v2, payloadSupplied: false, by: "op") }
        expectCode(.invalidQueryParam) { _ = try rules.rotate(makeKey(), at: t0, newVersion: v2, payloadSupplied: true, by: "op") }
    }

    @Test func deactivatedKeysRotateSuspendedAndDestroyedDoNot() throws {
        _ = try rules.rotate(makeKey(state: .deactivated), at: t0, newVersion: v2, payloadSupplied: false, by: "op")
        expectCode(.keyActionInvalidState) { _ = try rules.rotate(makeKey(state: .suspended), at: t0, newVersion: v2, payloadSupplied: false, by: "op") }
        expectCode(.keyActionInvalidState) { _ = try rules.rotate(makeKey(state: .destroyed), at: t0, newVersion: v2, payloadSupplied: false, by: "op") }
    }
}

@Suite("Disable, enable, restore")
struct EnableRestoreRuleTests {
    @Test func disableOnlyFromActive() throws {
        let disabled = try rules.disable(makeKey(), at: t0, by: "op")
        #expect(disabled.state == .suspended)
        expectCode(.keyActionInvalidState) { _ = try rules.disable(disabled, at: t0, by: "op") }
    }

    @Test func enableIsRefusedWithin30SecondsOfTheLastActionAndAllowedAt30() throws {
        let disabled = try rules.disable(makeKey(), at: t0, by: "op")
        expectCode(.requestTooEarly) { _ = try rules.enable(disabled, at: t0.addingTimeInterval(29.999), by: "op") }
        let enabled = try rules.enable(disabled, at: t0.addingTimeInterval(30), by: "op")
        #expect(enabled.state == .active)
    }

    @Test func enableOnlyFromSuspended() {
        expectCode(.keyActionInvalidState) { _ = try rules.enable(makeKey(), at: t0, by: "op") }
    }

    @Test func enablingAnExpiredSuspendedKeyIsRefused() throws {
        let disabled = try rules.disable(makeKey(expires: t0.addingTimeInterval(60)), at: t0, by: "op")
        expectCode(.keyActionInvalidState) { _ = try rules.enable(disabled, at: t0.addingTimeInterval(120), by: "op") }
    }

    @Test func restoreIsRefusedWithin30SecondsOfDeletion() throws {
        let deleted = try rules.delete(makeKey(), at: t0, by: "op", force: false, registrations: RegistrationSummary(count: 0, preventingDeletion: 0))
        expectCode(.requestTooEarly) { _ = try rules.restore(deleted, at: t0.addingTimeInterval(29), by: "op") }
        let restored = try rules.restore(deleted, at: t0.addingTimeInterval(30), by: "op")
        #expect(restored.state == .active)
        #expect(restored.deletionDate == nil)
    }

    @Test func restoreWindowIs30DaysFromDeletion() throws {
        let deleted = try rules.delete(makeKey(), at: t0, by: "op", force: false, registrations: RegistrationSummary(count: 0, preventingDeletion: 0))
        let window: TimeInterval = 30 * 86400
        _ = try rules.restore(deleted, at: t0.addingTimeInterval(window - 1), by: "op")
        expectCode(.keyRestoreExpired) { _ = try rules.restore(deleted, at: t0.addingTimeInterval(window), by: "op") }
        #expect(rules.restoreExpirationDate(deleted) == t0.addingTimeInterval(window))
    }

    @Test func anExpiredKeyCannotBeRestored() throws {
        let deleted = try rules.delete(makeKey(expires: t0.addingTimeInterval(3600)), at: t0, by: "op", force: false,
                                       registrations: RegistrationSummary(count: 0, preventingDeletion: 0))
        expectCode(.keyExpired) { _ = try rules.restore(deleted, at: t0.addingTimeInterval(3600), by: "op") }
        _ = try rules.restore(deleted, at: t0.addingTimeInterval(3599), by: "op")
    }
}

@Suite("Delete and purge")
struct DeletePurgeRuleTests {
    let none = RegistrationSummary(count: 0, preventingDeletion: 0)

    @Test func deleteFromEveryLiveState() throws {
        for state in [KeyState.active, .suspended, .deactivated] {
            let deleted = try rules.delete(makeKey(state: state), at: t0, by: "bob", force: false, registrations: none)
            #expect(deleted.state == .destroyed)
            #expect(deleted.deletionDate == t0)
            #expect(deleted.deletedBy == "bob")
        }
    }

    @Test func deletingADeletedKeyIsGone410() {
        expectCode(.keyDeleted) { _ = try rules.delete(makeKey(state: .destroyed), at: t0, by: "op", force: true, registrations: none) }
    }

    @Test func anyRegistrationBlocksDeleteUnlessForced() throws {
        let one = RegistrationSummary(count: 1, preventingDeletion: 0)
        if let error = caught({ _ = try rules.delete(makeKey(), at: t0, by: "op", force: false, registrations: one) }) {
            #expect(error.code == .protectedResource)
            #expect(error.target == ErrorTarget(.queryParam, "force"))
            #expect(error.message == "Key is protecting one or more cloud resources")
        }
        _ = try rules.delete(makeKey(), at: t0, by: "op", force: true, registrations: one)
    }

    @Test func preventKeyDeletionBlocksEvenWithForce() {
        let retained = RegistrationSummary(count: 2, preventingDeletion: 1)
        expectCode(.preventKeyDeletion) { _ = try rules.delete(makeKey(), at: t0, by: "op", force: true, registrations: retained) }
        expectCode(.protectedResource) { _ = try rules.delete(makeKey(), at: t0, by: "op", force: false, registrations: retained) }
    }

    @Test func purgeOnlyDestroyedKeysAndOnlyFourHoursAfterDeletion() throws {
        expectCode(.keyActionInvalidState) { try rules.checkPurge(makeKey(), at: t0) }
        let deleted = try rules.delete(makeKey(), at: t0, by: "op", force: false, registrations: none)
        if let error = caught({ try rules.checkPurge(deleted, at: t0.addingTimeInterval(4 * 3600 - 1)) }) {
            #expect(error.code == .requestTooEarly)
            #expect(error.message == "The key was updated recently: Please wait and try again: Purge operation is allowed 4h0m0s after key is deleted")
            #expect(error.operation == "Key could not be purged")
            #expect(error.earliestAllowed == t0.addingTimeInterval(4 * 3600))
        }
        try rules.checkPurge(deleted, at: t0.addingTimeInterval(4 * 3600))
        #expect(rules.purgeAllowedFrom(deleted) == t0.addingTimeInterval(4 * 3600))
    }
}

@Suite("Dual authorization")
struct DualAuthRuleTests {
    let none = RegistrationSummary(count: 0, preventingDeletion: 0)

    @Test func deleteNeedsAPriorAuthorizationByAnotherPrincipal() throws {
        let key = makeKey(dualAuth: true)
        expectCode(.authorizationsNotMet) { _ = try rules.delete(key, at: t0, by: "bob", force: false, registrations: none) }
        let authorized = try rules.setForDeletion(key, at: t0, by: "alice")
        expectCode(.authorizationsNotMet) { _ = try rules.delete(authorized, at: t0, by: "alice", force: false, registrations: none) }
        let deleted = try rules.delete(authorized, at: t0, by: "bob", force: false, registrations: none)
        #expect(deleted.state == .destroyed)
    }

    @Test func theAuthorizationLapsesAfterSevenDays() throws {
        let authorized = try rules.setForDeletion(makeKey(dualAuth: true), at: t0, by: "alice")
        let week: TimeInterval = 7 * 86400
        _ = try rules.delete(authorized, at: t0.addingTimeInterval(week - 1), by: "bob", force: false, registrations: none)
        expectCode(.authorizationsNotMet) { _ = try rules.delete(authorized, at: t0.addingTimeInterval(week), by: "bob", force: false, registrations: none) }
    }

    @Test func unsetCancelsAndNonDualAuthKeysRefuse() throws {
        let authorized = try rules.setForDeletion(makeKey(dualAuth: true), at: t0, by: "alice")
        let cancelled = try rules.unsetForDeletion(authorized, at: t0, by: "alice")
        expectCode(.authorizationsNotMet) { _ = try rules.delete(cancelled, at: t0, by: "bob", force: false, registrations: none) }
        expectCode(.notDualAuth) { _ = try rules.setForDeletion(makeKey(), at: t0, by: "alice") }
        expectCode(.keyActionInvalidState) { _ = try rules.setForDeletion(makeKey(state: .suspended, dualAuth: true), at: t0, by: "alice") }
    }
}

@Suite("Expiry")
struct ExpiryRuleTests {
    @Test func anActiveKeyDeactivatesWhenItsExpirationDateIsReached() throws {
        let key = makeKey(expires: t0.addingTimeInterval(100))
        #expect(rules.expire(key, at: t0.addingTimeInterval(99)) == nil)
        let expired = try #require(rules.expire(key, at: t0.addingTimeInterval(100)))
        #expect(expired.state == .deactivated)
        #expect(rules.expire(makeKey(state: .suspended, expires: t0), at: t0) == nil)
    }
}

@Suite("State table")
struct StateTableTests {
    /// Key Protect's allowed-actions table (reference §2.2).
    static let table: [KeyAction: Set<KeyState>] = [
        .rotate: [.active, .deactivated], .wrap: [.active], .unwrap: [.active, .deactivated],
        .rewrap: [.active, .deactivated], .disable: [.active], .enable: [.suspended],
        .delete: [.active, .suspended, .deactivated], .restore: [.destroyed],
    ]

    @Test func everyActionInEveryState() {
        for (action, allowed) in Self.table {
            for state in [KeyState.active, .suspended, .deactivated, .destroyed] {
                let key = makeKey(state: state)
                if allowed.contains(state) {
                    #expect(throws: Never.self, "\(action) in \(state)") { try rules.checkState(action, key) }
                } else {
                    let expected: ReasonCode = (action == .delete && state == .destroyed) ? .keyDeleted : .keyActionInvalidState
                    expectCode(expected) { try rules.checkState(action, key) }
                }
            }
        }
    }

    @Test func registrationsNeedAnActiveRootKey() {
        expectCode(.keyInvalidState) { try rules.checkRegistrable(makeKey(state: .suspended)) }
        expectCode(.keyRootRequiredForRegistration) { try rules.checkRegistrable(makeKey(extractable: true)) }
        #expect(throws: Never.self) { try rules.checkRegistrable(makeKey()) }
    }

    @Test(arguments: [KeyState.active, .suspended, .deactivated, .destroyed])
    func registrationsAreDeletedOnlyForActiveOrSuspendedKeys(_ state: KeyState) {
        if [.active, .suspended].contains(state) {
            #expect(throws: Never.self) { try rules.checkRegistrationRemovable(makeKey(state: state)) }
        } else {
            expectCode(.keyInvalidState) { try rules.checkRegistrationRemovable(makeKey(state: state)) }
        }
    }
}

/// Key Protect's order of refusals (reference §2.3) and its wording, with KeyRelay's explanation as a hint.
@Suite("Rule order and wording")
struct RuleOrderTests {
    @Test func rotateIsRootOnlyBeforeItLooksAtTheState() {
        expectCode(.keyRootRequired) {
            _ = try rules.rotate(makeKey(state: .suspended, extractable: true), at: t0, newVersion: KeyVersion(id: "v2", creationDate: t0),
                                 payloadSupplied: false, by: "alice")
        }
    }

    @Test func deleteChecksDualAuthorizationThenRegistrationsThenAlreadyDeleted() {
        let none = RegistrationSummary(count: 0, preventingDeletion: 0)
        expectCode(.authorizationsNotMet) {
            _ = try rules.delete(makeKey(state: .destroyed, dualAuth: true), at: t0, by: "bob", force: false, registrations: none)
        }
        expectCode(.protectedResource) {
            _ = try rules.delete(makeKey(state: .destroyed), at: t0, by: "bob", force: false,
                                 registrations: RegistrationSummary(count: 1, preventingDeletion: 0))
        }
        expectCode(.preventKeyDeletion) {
            _ = try rules.delete(makeKey(state: .destroyed), at: t0, by: "bob", force: true,
                                 registrations: RegistrationSummary(count: 1, preventingDeletion: 1))
        }
        expectCode(.keyDeleted) { _ = try rules.delete(makeKey(state: .destroyed), at: t0, by: "bob", force: false, registrations: none) }
    }

    @Test func registrationsWhoseProtectionEndedDoNotBlockDelete() throws {
        // The summary counts only protecting registrations; `total` (every listed one) does not block.
        let ended = RegistrationSummary(count: 0, preventingDeletion: 0, total: 3)
        #expect(try rules.delete(makeKey(), at: t0, by: "bob", force: false, registrations: ended).state == .destroyed)
    }

    @Test func stateRefusalsUseKeyProtectsMessageAndExplainInTheHint() throws {
        let error = try #require(caught { _ = try rules.disable(makeKey(state: .suspended), at: t0, by: "alice") })
        #expect(error.message == "Key is not in a valid state")
        #expect(error.operation == "Key is not in active state: Key could not be disabled")
        #expect(error.hint == "disable needs a key that is active, and this key is suspended")
    }
}
