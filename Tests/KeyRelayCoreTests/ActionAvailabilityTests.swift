import Foundation
import Testing
@testable import KeyRelayCore

/// `LifecycleRules.availability`: what a front end may offer on a key, answered by the rules themselves.
@Suite("Action availability")
struct ActionAvailabilityTests {
    let none = RegistrationSummary(count: 0, preventingDeletion: 0)

    func actions(_ list: [ActionAvailability]) -> [KeyAction] { list.map(\.action) }

    @Test func anActiveRootKeyOffersRotateDisableDeleteAndSyncAtOnce() {
        let list = rules.availability(makeKey(), at: t0, by: "op", registrations: none)
        #expect(actions(list) == [.rotate, .disable, .delete, .sync])
        #expect(list.allSatisfy { $0.allowedFrom == nil })
    }

    @Test func aStandardKeyIsNeverOfferedRotate() {
        let list = rules.availability(makeKey(extractable: true), at: t0, by: "op", registrations: none)
        #expect(!actions(list).contains(.rotate))
    }

    @Test func aSuspendedKeyOffersEnableOnlyThirtySecondsAfterItsDisable() throws {
        let disabled = try rules.disable(makeKey(), at: t0, by: "op")
        let list = rules.availability(disabled, at: t0.addingTimeInterval(10), by: "op", registrations: none)
        #expect(actions(list) == [.enable, .delete, .sync])
        #expect(list.first { $0.action == .enable }?.allowedFrom == t0.addingTimeInterval(30))
        #expect(list.first { $0.action == .sync }?.allowedFrom == t0.addingTimeInterval(3601))
        let later = rules.availability(disabled, at: t0.addingTimeInterval(30), by: "op", registrations: none)
        #expect(later.first { $0.action == .enable }?.allowedFrom == nil)
    }

    @Test func aDestroyedKeyOffersRestoreSyncAndPurgeFromFourHours() {
        let key = makeKey(state: .destroyed)
        let list = rules.availability(key, at: t0.addingTimeInterval(60), by: "op", registrations: none)
        #expect(actions(list) == [.restore, .purge, .sync])
        #expect(list.first { $0.action == .purge }?.allowedFrom == t0.addingTimeInterval(4 * 3600))
        #expect(list.first { $0.action == .restore }?.allowedFrom == nil)
        // After the restore window, restore is gone for good (not merely later).
        let late = rules.availability(key, at: t0.addingTimeInterval(31 * 86400), by: "op", registrations: none)
        #expect(actions(late) == [.purge, .sync])
    }

    @Test func aRotationWithinTheHourIsOfferedFromTheHour() throws {
        let rotated = try rules.rotate(makeKey(), at: t0, newVersion: KeyVersion(id: "v2", creationDate: t0),
                                       payloadSupplied: false, by: "op")
        let list = rules.availability(rotated, at: t0.addingTimeInterval(60), by: "op", registrations: none)
        #expect(list.first { $0.action == .rotate }?.allowedFrom == t0.addingTimeInterval(3600))
    }

    @Test func deleteIsLeftOutWhenARegistrationPreventsIt() {
        let blocked = RegistrationSummary(count: 2, preventingDeletion: 1)
        #expect(!actions(rules.availability(makeKey(), at: t0, by: "op", registrations: blocked)).contains(.delete))
        // Registrations without the retention policy only need force, which the console asks for.
        let forced = RegistrationSummary(count: 2, preventingDeletion: 0)
        #expect(actions(rules.availability(makeKey(), at: t0, by: "op", registrations: forced)).contains(.delete))
    }

    @Test func aDualAuthKeyOffersDeleteOnlyToAnotherPrincipalAfterSetForDeletion() throws {
        let key = makeKey(dualAuth: true)
        #expect(!actions(rules.availability(key, at: t0, by: "bob", registrations: none)).contains(.delete))
        let set = try rules.setForDeletion(key, at: t0, by: "alice")
        #expect(!actions(rules.availability(set, at: t0, by: "alice", registrations: none)).contains(.delete))
        #expect(actions(rules.availability(set, at: t0, by: "bob", registrations: none)).contains(.delete))
    }
}
