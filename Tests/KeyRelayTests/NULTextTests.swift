import Foundation
import Testing
@testable import KeyRelay

/// U+0000 in text: PostgreSQL's `text` cannot hold it and SQLite would, so the engine answers it the same way on
/// every backend (this suite also runs on PostgreSQL in scripts/test): a write naming it is refused with
/// INVALID_FIELD_ERR and changes nothing; a lookup naming it finds nothing. Never a store error (a 500).
@Suite("Text containing U+0000")
struct NULTextTests {
    let nul = "a\u{0}b"

    @Test func writesNamingItAreRefusedAndChangeNothing() async throws {
        let (engine, _) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "ok-key"), context: alice)
        let eventsBefore = try await engine.events().count
        func refused(_ field: String, _ body: () async throws -> Void) async {
            let error = await expectError(.invalidField, body)
            #expect(error?.target?.name == field, "\(field): \(String(describing: error))")
        }
        await refused("name") { _ = try await engine.createKey(KeySpec(name: "n\(nul)"), context: alice) }
        await refused("description") { _ = try await engine.createKey(KeySpec(name: "nn", description: nul), context: alice) }
        await refused("tags") { _ = try await engine.createKey(KeySpec(name: "nn", tags: ["fine", nul]), context: alice) }
        let badCRN = "crn:v1:bluemix:public:cloud-object-storage:global:a/acct:cos-1:bucket:b\(nul)"
        await refused("resourceCrn") { try await engine.register(keyID: key.id, resourceCRN: badCRN, context: alice) }
        await refused("description") {
            try await engine.register(keyID: key.id, resourceCRN: bucketCRN.description, input: RegistrationInput(description: nul), context: alice)
        }
        await refused("registrationMetadata") {
            try await engine.register(keyID: key.id, resourceCRN: bucketCRN.description, input: RegistrationInput(registrationMetadata: nul),
                                      context: alice)
        }
        await refused("resourceCrn") {
            try await engine.acknowledge(eventID: "e", resourceCRN: badCRN, adopterKeyState: .disabled, keyVersionID: nil,
                                         timestamp: start, context: alice)
        }
        await refused("description") {
            _ = try await engine.createKMIPAdapter(KMIPAdapterSpec(name: "adapter-1", description: nul, crkID: key.id), context: alice)
        }
        // Nothing was written: one key, no registration, no new event.
        #expect(try await engine.listKeys(context: alice).total == 1)
        #expect(try await engine.registrations(keyID: key.id, context: alice).total == 0)
        #expect(try await engine.events().count == eventsBefore)
    }

    @Test func lookupsNamingItFindNothing() async throws {
        let (engine, _) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "ok-key"), context: alice)
        await expectError(.keyNotFound) { _ = try await engine.key(nul, context: alice) }
        await expectError(.keyNotFound) { try await engine.disable(nul, context: alice) }
        #expect(try await engine.event(id: nul, context: alice) == nil)
        await expectError(.notFound) {
            try await engine.acknowledge(eventID: nul, resourceCRN: bucketCRN.description, adopterKeyState: .disabled, keyVersionID: nil,
                                         timestamp: start, context: alice)
        }
        await expectError(.registrationNotFound) { try await engine.unregister(keyID: key.id, resourceCRN: nul, context: alice) }
        await expectError(.notFound) { _ = try await engine.kmipAdapter(nul, context: alice) }
        await expectError(.invalidQueryParam) {
            _ = try await engine.searchKeys({ var q = KeyQuery(); q.search = KeySearch(nul); return q }(), context: alice)
        }
        await expectError(.invalidQueryParam) {
            _ = try await engine.registrations(filter: RegistrationFilter(crnQuery: nul), context: alice)
        }
    }

    /// A context is the embedder's to build, and nothing stops U+0000 in it: without the engine's check a write
    /// stored it on SQLite and failed with a store error on PostgreSQL. Every call refuses it, naming the field.
    @Test(arguments: ["instanceID", "principal", "correlationID", "keyRingID"])
    func aContextContainingItIsRefusedByEveryCall(field: String) async throws {
        let (engine, _) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "ok-key"), context: alice)
        try await engine.register(keyID: key.id, resourceCRN: bucketCRN.description, context: alice)
        let eventsBefore = try await engine.events().count
        var bad = alice
        switch field {
        case "instanceID": bad.instanceID = nul
        case "principal": bad.principal = nul
        case "correlationID": bad.correlationID = nul
        default: bad.keyRingID = nul
        }
        let context = bad
        let calls: [(String, @Sendable () async throws -> Void)] = [
            ("createKey", { _ = try await engine.createKey(KeySpec(name: "new-key"), context: context) }),
            ("key", { _ = try await engine.key(key.id, context: context) }),
            ("listKeys", { _ = try await engine.listKeys(context: context) }),
            ("wrap", { _ = try await engine.wrap(key.id, context: context) }),
            ("disable", { try await engine.disable(key.id, context: context) }),
            ("rotate", { _ = try await engine.rotate(key.id, context: context) }),
            ("sync", { try await engine.sync(key.id, context: context) }),
            ("register", {
                try await engine.register(keyID: key.id, resourceCRN: CRN.bucket(account: "acct", serviceInstance: "cos-1",
                                                                                  bucket: "other").description, context: context)
            }),
            ("unregister", { try await engine.unregister(keyID: key.id, resourceCRN: bucketCRN.description, context: context) }),
            ("registrations", { _ = try await engine.registrations(keyID: key.id, context: context) }),
            ("createKeyRing", { try await engine.createKeyRing("ring-2", context: context) }),
            ("keyRings", { _ = try await engine.keyRings(context: context) }),
            ("events", { _ = try await engine.events(context: context) }),
            ("eventStream", {
                var events = engine.eventStream(context: context).makeAsyncIterator()
                _ = try await events.next()
            }),
            ("drift", { _ = try await engine.drift(context: context) }),
            ("keyOverviews", { _ = try await engine.keyOverviews(context: context) }),
            ("createKMIPAdapter", {
                _ = try await engine.createKMIPAdapter(KMIPAdapterSpec(name: "adapter-1", crkID: key.id), context: context)
            }),
        ]
        for (name, call) in calls {
            let error = await expectError(.invalidField, call)
            #expect(error?.target?.name == field, "\(name): \(String(describing: error))")
            #expect(error?.target?.type == .field, "\(name)")
        }
        // Nothing was written: one key, still active, its one registration, no new event.
        #expect(try await engine.listKeys(context: alice).total == 1)
        #expect(try await engine.key(key.id, context: alice).state == .active)
        #expect(try await engine.registrations(keyID: key.id, context: alice).total == 1)
        #expect(try await engine.events().count == eventsBefore)
    }
}
