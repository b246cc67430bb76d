import Foundation
import KeyRelayCore
import Testing

@Suite struct KMIPRulesTests {
    let now = Date(timeIntervalSince1970: 1_767_225_600)

    func object(_ state: KMIPObjectState) -> KMIPObject {
        KMIPObject(id: "o1", adapterID: "a1", state: state, createdAt: now)
    }

    @Test func deletingAnObjectDestroysIt() throws {
        let destroyed = try object(.deactivated).destroyed(at: now, by: "alice", force: false)
        #expect(destroyed.state == .destroyed && destroyed.destroyedAt == now && destroyed.destroyedBy == "alice")
        #expect(try object(.compromised).destroyed(at: now, by: "alice", force: false).state == .destroyedCompromised)
        #expect(try object(.preActive).destroyed(at: now, by: "alice", force: false).state == .destroyed)
    }

    @Test func anActiveObjectNeedsForce() throws {
        #expect(throws: KeyRelayError.self) { try object(.active).destroyed(at: now, by: "alice", force: false) }
        #expect(try object(.active).destroyed(at: now, by: "alice", force: true).state == .destroyed)
        #expect(throws: KeyRelayError.self) { try object(.destroyed).destroyed(at: now, by: "alice", force: true) }
    }

    @Test func namesAreShortPlainAndNotUUIDs() {
        #expect(throws: Never.self) { try KMIPNames.validate("adapter_1-a", operation: "op") }
        for bad in ["x", String(repeating: "a", count: 41), "has space", "00000000-0000-4000-8000-000000000000", "ümlaut"] {
            #expect(throws: KeyRelayError.self, "\(bad)") { try KMIPNames.validate(bad, operation: "op") }
        }
    }

    @Test func listsShowEveryStateButDestroyedByDefault() {
        #expect(KMIPObjectState.listedByDefault == [.preActive, .active, .deactivated, .compromised])
    }
}
