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
        await expectError(.keyNotFound) { _ = try await engine.key(key.id, context: RequestContext(instanceID: nul, principal: "p")) }
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
}
